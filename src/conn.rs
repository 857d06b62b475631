//! One proxied connection: a client, its upstream, and the two directions
//! between them.
//!
//! Life of a connection:
//! 1. accepted; a non-blocking connect to the first upstream address starts;
//! 2. connecting: only the upstream is watched (for writable); a failure or
//!    the connect timeout moves on to the next address, and after the last one
//!    the client is closed;
//! 3. relaying: client->upstream and upstream->client run independently
//!    (`relay::Direction`), so one side's FIN half-closes only its direction;
//! 4. closed when both directions are done, on a read error (a reset), or
//!    after the idle timeout.

use std::fmt::{self, Write as _};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{Dump, DumpMode};
use crate::log::{Level, Record};
use crate::metrics::Stats;
use crate::relay::{BufferPool, Direction, Endpoint, Failure, State};
use crate::sys::Stream;

impl Endpoint for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Stream::read(self, buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Stream::write(self, buf)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        Stream::shutdown_write(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

/// Why a connection ended: the `reason=` of its close line.
#[derive(Debug)]
pub enum Reason {
    /// Both directions finished; this side sent its FIN first.
    Closed(Side),
    /// A read or write on this side failed (a reset, mostly).
    Error(Side, io::Error),
    ConnectFailed(io::Error),
    ConnectTimeout,
    IdleTimeout,
}

impl Reason {
    /// The `reason=` value; one of `metrics::REASONS`.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Closed(Side::Client) => "client-closed",
            Reason::Closed(Side::Upstream) => "upstream-closed",
            Reason::Error(Side::Client, _) => "client-error",
            Reason::Error(Side::Upstream, _) => "upstream-error",
            Reason::ConnectFailed(_) => "connect-failed",
            Reason::ConnectTimeout => "connect-timeout",
            Reason::IdleTimeout => "idle-timeout",
        }
    }

    /// Ended by a fault or a timeout rather than by both sides finishing:
    /// the sockets are reset, not closed gracefully, so that nothing waits
    /// in FIN_WAIT_2 or CLOSE_WAIT for a peer that may never answer.
    pub fn is_abort(&self) -> bool {
        matches!(self, Reason::Error(..) | Reason::IdleTimeout)
    }

    fn error(&self) -> Option<&io::Error> {
        match self {
            Reason::Error(_, e) | Reason::ConnectFailed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            Some(e) => write!(f, "{}: {e}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// Where connections go: the resolved upstream addresses, tried in order.
pub struct Upstreams {
    pub addrs: Vec<SocketAddr>,
    pub connect_timeout: Duration,
}

/// What a connection borrows from the proxy on every call.
pub struct Context<'a> {
    pub upstreams: &'a Upstreams,
    pub pool: &'a mut BufferPool,
    pub stats: &'a mut Stats,
    pub route: &'a str,
    pub dump: Dump,
    pub now: Instant,
}

enum Phase {
    /// Trying `upstreams[attempt]`, until `deadline`.
    Connecting { attempt: usize, deadline: Instant },
    /// Connected to `upstreams[upstream]`.
    Relaying { upstream: usize },
}

pub struct Conn {
    id: u64,
    client: Stream,
    client_addr: SocketAddr,
    upstream: Stream,
    upstream_addr: SocketAddr,
    phase: Phase,
    to_upstream: Direction,
    to_client: Direction,
    /// The first side to send FIN, for the close reason.
    first_fin: Option<Side>,
    /// A write failure ends one direction only; kept for the close line.
    write_error: Option<(Side, io::Error)>,
    /// Bytes shown by the traffic dump so far (capped by `Dump::limit`).
    dumped: usize,
    opened: Instant,
    last_active: Instant,
}

/// What the interest of a connection is, per socket: (read, write).
pub struct Interest {
    pub client: (bool, bool),
    pub upstream: (bool, bool),
}

impl Conn {
    /// Start connecting upstream for a newly accepted client. Addresses that
    /// fail at once are skipped; if all do, the client is handed back with
    /// the last error, to be closed.
    pub fn start(
        id: u64,
        client: Stream,
        client_addr: SocketAddr,
        cx: &mut Context<'_>,
    ) -> Result<Conn, (Stream, SocketAddr, io::Error)> {
        match connect_from(id, 0, cx) {
            Ok((attempt, upstream_addr, upstream)) => Ok(Conn {
                id,
                client,
                client_addr,
                upstream,
                upstream_addr,
                phase: Phase::Connecting { attempt, deadline: cx.now + cx.upstreams.connect_timeout },
                to_upstream: Direction::new(),
                to_client: Direction::new(),
                first_fin: None,
                write_error: None,
                dumped: 0,
                opened: cx.now,
                last_active: cx.now,
            }),
            Err((addr, e)) => Err((client, addr, e)),
        }
    }

    pub fn client(&self) -> &Stream {
        &self.client
    }

    pub fn upstream(&self) -> &Stream {
        &self.upstream
    }

    pub fn interest(&self) -> Interest {
        match self.phase {
            // Nothing is read from the client until there is somewhere to send it.
            Phase::Connecting { .. } => Interest { client: (false, false), upstream: (false, true) },
            Phase::Relaying { .. } => Interest {
                client: (self.to_upstream.wants_read(), self.to_client.wants_write()),
                upstream: (self.to_client.wants_read(), self.to_upstream.wants_write()),
            },
        }
    }

    /// When this connection next needs attention without any I/O.
    pub fn deadline(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline, .. } => Some(deadline),
            Phase::Relaying { .. } => idle_timeout.map(|t| self.last_active + t),
        }
    }

    /// A socket of this connection is ready. `Err` means it is over.
    pub fn on_ready(&mut self, side: Side, readable: bool, writable: bool, cx: &mut Context<'_>) -> Result<(), Reason> {
        if let Phase::Connecting { attempt, .. } = self.phase {
            if side == Side::Upstream && (readable || writable) {
                let result = self.upstream.finish_connect();
                cx.stats.upstream_result(attempt, result.is_ok());
                match result {
                    Ok(()) => self.connected(attempt, cx)?,
                    Err(e) => self.next_upstream(attempt + 1, e, cx)?,
                }
            }
            return Ok(());
        }
        // Client readable or upstream writable: client->upstream can move.
        // Upstream readable or client writable: upstream->client can move.
        let (up, down) = match side {
            Side::Client => (readable, writable),
            Side::Upstream => (writable, readable),
        };
        if up {
            self.pump(Side::Client, cx)?;
        }
        if down {
            self.pump(Side::Upstream, cx)?;
        }
        self.finished()
    }

    /// The deadline passed: a connect attempt timed out, or the connection idled.
    pub fn on_timeout(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        match self.phase {
            Phase::Connecting { attempt, .. } => {
                cx.stats.upstream_result(attempt, false);
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                self.next_upstream(attempt + 1, e, cx)
            }
            Phase::Relaying { .. } => Err(Reason::IdleTimeout),
        }
    }

    fn connected(&mut self, upstream: usize, cx: &mut Context<'_>) -> Result<(), Reason> {
        self.phase = Phase::Relaying { upstream };
        self.last_active = cx.now;
        Record::new(Level::Info, "open")
            .num("conn", self.id)
            .str("route", cx.route)
            .str("client", self.client_addr)
            .str("upstream", self.upstream_addr)
            .emit();
        // A client usually speaks first (an HTTP request is already waiting).
        self.pump(Side::Client, cx)?;
        self.finished()
    }

    /// Give up on the current upstream address and try the following ones.
    fn next_upstream(&mut self, from: usize, last: io::Error, cx: &mut Context<'_>) -> Result<(), Reason> {
        let timed_out = last.kind() == io::ErrorKind::TimedOut;
        log_attempt_failed(self.id, self.upstream_addr, &last);
        if from >= cx.upstreams.addrs.len() {
            return Err(if timed_out { Reason::ConnectTimeout } else { Reason::ConnectFailed(last) });
        }
        match connect_from(self.id, from, cx) {
            Ok((attempt, addr, upstream)) => {
                self.upstream = upstream;
                self.upstream_addr = addr;
                self.phase = Phase::Connecting { attempt, deadline: cx.now + cx.upstreams.connect_timeout };
                Ok(())
            }
            Err((addr, e)) => {
                self.upstream_addr = addr;
                Err(Reason::ConnectFailed(e))
            }
        }
    }

    /// Run the direction whose bytes come from `from`.
    fn pump(&mut self, from: Side, cx: &mut Context<'_>) -> Result<(), Reason> {
        let (dir, src, dst) = match from {
            Side::Client => (&mut self.to_upstream, &mut self.client, &mut self.upstream),
            Side::Upstream => (&mut self.to_client, &mut self.upstream, &mut self.client),
        };
        let to = if from == Side::Client { Side::Upstream } else { Side::Client };
        let was_open = dir.state() == State::Open;
        let (dump, id, dumped) = (cx.dump, self.id, &mut self.dumped);
        match dir.pump(src, dst, cx.pool, |bytes| dump_bytes(dump, id, to, dumped, bytes)) {
            Ok(true) => self.last_active = cx.now,
            Ok(false) => {}
            // A reset (or other read error) aborts both directions.
            Err(Failure::Read(e)) => return Err(Reason::Error(from, e)),
            // The destination is gone; the other direction may still finish.
            Err(Failure::Write(e)) => {
                self.write_error.get_or_insert((to, e));
            }
        }
        if was_open && dir.state() != State::Open && self.first_fin.is_none() {
            self.first_fin = Some(from);
        }
        Ok(())
    }

    /// Reset both sockets when they are dropped (see `Reason::is_abort`).
    pub fn abort(&self) {
        self.client.abort();
        self.upstream.abort();
    }

    /// The index of the upstream address this connection relays to, once connected.
    pub fn relaying_to(&self) -> Option<usize> {
        match self.phase {
            Phase::Relaying { upstream } => Some(upstream),
            Phase::Connecting { .. } => None,
        }
    }

    /// Bytes moved so far: (to the upstream, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (self.to_upstream.bytes, self.to_client.bytes)
    }

    fn finished(&mut self) -> Result<(), Reason> {
        if !(self.to_upstream.is_done() && self.to_client.is_done()) {
            return Ok(());
        }
        Err(match self.write_error.take() {
            Some((side, e)) => Reason::Error(side, e),
            None => Reason::Closed(self.first_fin.unwrap_or(Side::Client)),
        })
    }

    /// The close line: who, where, how much, how long, and why.
    pub fn log_close(&self, reason: &Reason, route: &str, now: Instant) {
        let bytes = (self.to_upstream.bytes, self.to_client.bytes);
        let duration = now.duration_since(self.opened);
        log_close(self.id, route, self.client_addr, self.upstream_addr, bytes, duration, reason);
    }
}

/// The one place a close record is written, whether the connection got as
/// far as a `Conn` or failed at its first connect.
pub fn log_close(
    id: u64,
    route: &str,
    client: SocketAddr,
    upstream: SocketAddr,
    (to_upstream, to_client): (u64, u64),
    duration: Duration,
    reason: &Reason,
) {
    let mut r = Record::new(Level::Info, "close")
        .num("conn", id)
        .str("route", route)
        .str("client", client)
        .str("upstream", upstream)
        .num("to_upstream", to_upstream)
        .num("to_client", to_client)
        .str("duration", format_args!("{:.3}s", duration.as_secs_f64()))
        .str("reason", reason.name());
    if let Some(e) = reason.error() {
        r = r.str("error", e);
    }
    r.emit();
}

/// The traffic dump (`--dump`): one line per chunk read, as text with C-style
/// escapes or as hex, until the connection's limit; then one `truncated` line.
fn dump_bytes(dump: Dump, conn: u64, to: Side, dumped: &mut usize, bytes: &[u8]) {
    if dump.mode == DumpMode::Off || *dumped > dump.limit {
        return;
    }
    let take = bytes.len().min(dump.limit - *dumped);
    let dir = if to == Side::Upstream { "to_upstream" } else { "to_client" };
    if take > 0 {
        let shown = bytes.get(..take).unwrap_or(bytes);
        let r = Record::new(Level::Info, "dump").num("conn", conn).str("dir", dir).num("len", take as u64);
        if r.is_on() {
            match dump.mode {
                DumpMode::Hex => {
                    let mut hex = String::with_capacity(take * 3);
                    for (i, b) in shown.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        let _ = write!(hex, "{sep}{b:02x}");
                    }
                    r.str("hex", hex).emit();
                }
                _ => r.escaped("data", shown.escape_ascii()).emit(),
            }
        }
    }
    *dumped += take;
    if take < bytes.len() {
        Record::new(Level::Info, "dump").num("conn", conn).str("dir", dir).str("truncated", format_args!("limit {} bytes reached", dump.limit)).emit();
        *dumped = dump.limit + 1; // say it once
    }
}

/// One upstream address failed (at once, later, or by timing out).
fn log_attempt_failed(conn: u64, upstream: SocketAddr, e: &io::Error) {
    Record::new(Level::Debug, "connect-failed").num("conn", conn).str("upstream", upstream).str("error", e).emit();
}

/// Start a connect to the first address from `from` on that does not fail at
/// once. Returns its index, address and the (usually still connecting)
/// stream, or the last address tried and its error.
fn connect_from(conn: u64, from: usize, cx: &mut Context<'_>) -> Result<(usize, SocketAddr, Stream), (SocketAddr, io::Error)> {
    let mut last = None;
    for (i, addr) in cx.upstreams.addrs.iter().enumerate().skip(from) {
        match Stream::connect(*addr) {
            Ok(stream) => return Ok((i, *addr, stream)),
            Err(e) => {
                cx.stats.upstream_result(i, false);
                log_attempt_failed(conn, *addr, &e);
                last = Some((*addr, e));
            }
        }
    }
    // `from` is always a valid index when called, so `last` is set.
    Err(last.unwrap_or_else(|| (SocketAddr::from(([0, 0, 0, 0], 0)), io::ErrorKind::NotFound.into())))
}

#[cfg(all(test, unix))] // drives real sockets on the Linux host
mod tests {
    use super::*;
    use crate::sys::{Listener, Poller};
    use std::net::TcpListener;

    /// Drive one connection through the real platform layer until it has
    /// connected (Ok) or given up (Err), firing its timeout when due.
    fn until_connected(conn: &mut Conn, upstreams: &Upstreams) -> Result<SocketAddr, String> {
        let (mut pool, mut poller) = (BufferPool::new(1024, 1), Poller::new());
        let mut stats = Stats::new("test".into(), &upstreams.addrs);
        let give_up = Instant::now() + Duration::from_secs(10);
        while matches!(conn.phase, Phase::Connecting { .. }) {
            let now = Instant::now();
            assert!(now < give_up, "still connecting");
            let mut cx = context(upstreams, &mut pool, &mut stats, now);
            if conn.deadline(None).is_some_and(|d| d <= now) {
                conn.on_timeout(&mut cx).map_err(|r| r.to_string())?;
                continue;
            }
            poller.clear();
            poller.add(conn.upstream().handle(), 1, false, true);
            poller.wait(Duration::from_millis(50)).unwrap();
            if poller.events().next().is_some() {
                conn.on_ready(Side::Upstream, false, true, &mut cx).map_err(|r| r.to_string())?;
            }
        }
        Ok(conn.upstream_addr)
    }

    fn start(upstreams: &Upstreams) -> (Conn, Listener) {
        // A real client socket, accepted from a real listener.
        let front = Listener::bind("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        let _client = std::net::TcpStream::connect(front.local_addr().unwrap()).unwrap();
        let (stream, addr) = loop {
            match front.accept() {
                Ok(pair) => break pair,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let (mut pool, mut stats) = (BufferPool::new(1024, 1), Stats::new("test".into(), &upstreams.addrs));
        let mut cx = context(upstreams, &mut pool, &mut stats, Instant::now());
        let conn = Conn::start(1, stream, addr, &mut cx).map_err(|(_, _, e)| e).unwrap();
        (conn, front)
    }

    fn context<'a>(upstreams: &'a Upstreams, pool: &'a mut BufferPool, stats: &'a mut Stats, now: Instant) -> Context<'a> {
        Context { upstreams, pool, stats, route: "test", dump: Dump { mode: DumpMode::Off, limit: 0 }, now }
    }

    fn dead_addr() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() // closed again: refuses
    }

    #[test]
    fn refused_address_moves_on_to_the_next() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let ups = Upstreams { addrs: vec![dead_addr(), live.local_addr().unwrap()], connect_timeout: Duration::from_secs(5) };
        let (mut conn, _front) = start(&ups);
        assert_eq!(until_connected(&mut conn, &ups), Ok(ups.addrs[1]));
        live.set_nonblocking(false).unwrap();
        live.accept().expect("the live upstream got the connection");
    }

    #[test]
    fn every_address_refused_is_connect_failed() {
        let ups = Upstreams { addrs: vec![dead_addr(), dead_addr()], connect_timeout: Duration::from_secs(5) };
        let (mut conn, _front) = start(&ups);
        let err = until_connected(&mut conn, &ups).unwrap_err();
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
        let (mut conn, _front) = start(&ups);
        let t = Instant::now();
        assert_eq!(until_connected(&mut conn, &ups), Ok(ups.addrs[1]));
        assert!(t.elapsed() >= Duration::from_millis(250), "the silent address had its full timeout");
    }

    /// The README promises a small fixed part per connection beyond its
    /// buffers (which exist only while they hold bytes): keep it true.
    #[test]
    fn fixed_memory_per_connection_is_small() {
        // A slab slot is the Conn plus a tag word.
        let per_conn = std::mem::size_of::<Conn>() + std::mem::size_of::<usize>();
        println!("fixed bytes per connection: {per_conn}");
        assert!(per_conn <= 320, "{per_conn} bytes");
    }
}
