//! The connection's unit tests: failover and timeouts driven through the
//! real platform layer on the Linux host (real sockets, a real poller).

use super::*;
use crate::pool::{FailPolicy, Pool};
use crate::relay::Buffers;
use crate::settings::Dump;
use crate::route::{Policy, Remote};
use crate::sys::{Listener, Poller};
use std::net::TcpListener;

/// What the tests vary: the upstream addresses (in order) and the connect timeout.
struct Upstreams {
    addrs: Vec<SocketAddr>,
    connect_timeout: Duration,
}

fn pool(ups: &Upstreams) -> Pool {
    let remotes = ups.addrs.iter().map(|a| Remote { host: a.ip().to_string(), port: a.port() }).collect();
    let resolved = ups.addrs.iter().map(|a| vec![*a]).collect();
    Pool::new(remotes, resolved, Policy::Failover, FailPolicy { threshold: 3, cooldown: Duration::from_secs(10) })
}

/// Drive one connection through the real platform layer until it has
/// connected (Ok) or given up (Err), firing its timeout when due.
fn until_connected(conn: &mut Conn, upstreams: &Upstreams, up: &mut Pool) -> Result<SocketAddr, String> {
    let (mut pool, mut poller) = (Buffers::new(1024, 1), Poller::new().unwrap());
    let give_up = Instant::now() + Duration::from_secs(10);
    while matches!(conn.phase, Phase::Connecting(_)) {
        let now = Instant::now();
        assert!(now < give_up, "still connecting");
        let mut cx = context(upstreams, up, &mut pool, now);
        if conn.deadline(None).is_some_and(|d| d <= now) {
            conn.on_timeout(&mut cx).map_err(|r| r.to_string())?;
            continue;
        }
        poller.begin(true);
        poller.add(conn.upstream().handle(), 1, false, true);
        poller.wait(Duration::from_millis(50)).unwrap();
        if let Some(ev) = poller.events().next() {
            conn.on_ready(Side::Upstream, ev, &mut cx).map_err(|r| r.to_string())?;
        }
    }
    Ok(conn.upstream_addr())
}

fn start(upstreams: &Upstreams, up: &mut Pool) -> (Conn, Listener) {
    // A real client socket, accepted from a real listener.
    let front = Listener::bind("127.0.0.1:0".parse().unwrap(), 8).unwrap();
    let _client = std::net::TcpStream::connect(front.local_addr().unwrap()).unwrap();
    let (stream, addr) = loop {
        match front.accept() {
            Ok(pair) => break pair,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut pool = Buffers::new(1024, 1);
    let mut cx = context(upstreams, up, &mut pool, Instant::now());
    let conn = Conn::start(1, 0, (stream, addr, None), (b"", b""), None, &mut cx).map_err(|e| e.reason.to_string()).unwrap();
    (conn, front)
}

fn context<'a>(
    ups: &Upstreams,
    upstreams: &'a mut Pool,
    buffers: &'a mut Buffers,
    now: Instant,
) -> Context<'a> {
    let dump = Dump { mode: crate::settings::DumpMode::Off, limit: 0 };
    let shapes = Box::leak(Box::default()); // a few bytes per test
    Context { route: "test", backend: None, opener: None, upstreams, buffers, connect_timeout: ups.connect_timeout, dump, nodelay: true, coalesce: None, shapes, tls: None, upstream_tls: None, unix_upstream: None, now }
}

fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() // closed again: refuses
}

#[test]
fn refused_address_moves_on_to_the_next() {
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let ups = Upstreams { addrs: vec![dead_addr(), live.local_addr().unwrap()], connect_timeout: Duration::from_secs(5) };
    let mut up = pool(&ups);
    let (mut conn, _front) = start(&ups, &mut up);
    assert_eq!(until_connected(&mut conn, &ups, &mut up), Ok(ups.addrs[1]));
    live.set_nonblocking(false).unwrap();
    live.accept().expect("the live upstream got the connection");
}

#[test]
fn every_address_refused_is_connect_failed() {
    let ups = Upstreams { addrs: vec![dead_addr(), dead_addr()], connect_timeout: Duration::from_secs(5) };
    let mut up = pool(&ups);
    let (mut conn, _front) = start(&ups, &mut up);
    let err = until_connected(&mut conn, &ups, &mut up).unwrap_err();
    assert!(err.starts_with("connect-failed"), "{err}");
}

#[test]
fn silent_address_times_out_and_the_next_is_tried() {
    // A listener whose accept queue is full drops SYNs: connects hang.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    full.listen(0).unwrap();
    let silent = full.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect_timeout(&silent, Duration::from_millis(100))).collect();
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let ups = Upstreams { addrs: vec![silent, live.local_addr().unwrap()], connect_timeout: Duration::from_millis(300) };
    let mut up = pool(&ups);
    let (mut conn, _front) = start(&ups, &mut up);
    let t = Instant::now();
    assert_eq!(until_connected(&mut conn, &ups, &mut up), Ok(ups.addrs[1]));
    assert!(t.elapsed() >= Duration::from_millis(250), "the silent address had its full timeout");
}

/// The README promises a small fixed part per connection beyond its
/// buffers (which exist only while they hold bytes): keep it true.
#[test]
fn fixed_memory_per_connection_is_small() {
    // A slab slot is the Conn plus a tag word.
    let per_conn = std::mem::size_of::<Conn>() + std::mem::size_of::<usize>();
    println!("fixed bytes per connection: {per_conn}");
    assert!(per_conn <= 496, "{per_conn} bytes");
}
