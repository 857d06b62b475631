//! One proxied connection: a client, its upstream, and the two directions
//! between them.
//!
//! Life of a connection:
//! 1. accepted (after the route's access check, and its PROXY header when it
//!    expects one); a non-blocking connect to the upstream that the route's
//!    pool picks starts;
//! 2. connecting: only the upstream is watched (for writable); a failure or
//!    the connect timeout counts against that upstream and moves on to the
//!    next one the pool offers; when none is left, the client is closed;
//! 3. relaying: client->upstream and upstream->client run independently
//!    (`relay::Direction`), so one side's FIN half-closes only its direction;
//! 4. closed when both directions are done, on a read error (a reset), or
//!    after the idle timeout.

use std::fmt::{self, Write as _};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::coalesce::Shapes;
use crate::config::{Dump, DumpMode};
use crate::log::{self, Level, Record};
use crate::metrics::Stats;
use crate::pool::Pool;
use crate::relay::{BufferPool, Direction, Endpoint, Failure, Note, Pace, State};
use crate::sys::{self, Stream};

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
    /// The route's allow/deny lists refused the client.
    Denied,
    /// Every upstream of the route is in its cool-down: nothing to try.
    NoUpstream(usize),
    /// accept-proxy: the client's PROXY header was malformed or missing.
    BadProxyHeader(String),
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
            Reason::Denied => "denied",
            Reason::NoUpstream(_) => "no-upstream",
            Reason::BadProxyHeader(_) => "bad-proxy-header",
        }
    }

    /// Ended by a fault or a timeout rather than by both sides finishing:
    /// the sockets are reset, not closed gracefully, so that nothing waits
    /// in FIN_WAIT_2 or CLOSE_WAIT for a peer that may never answer.
    pub fn is_abort(&self) -> bool {
        matches!(self, Reason::Error(..) | Reason::IdleTimeout)
    }

    /// The `error=` of the close line, if any.
    fn error(&self) -> Option<String> {
        match self {
            Reason::Error(_, e) | Reason::ConnectFailed(e) => Some(e.to_string()),
            Reason::NoUpstream(n) => Some(format!("all {n} upstream addresses are down (cooling down after failures)")),
            Reason::BadProxyHeader(why) => Some(why.clone()),
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

/// What a connection borrows from the proxy on every call: its route's
/// name, pool and counters, and what all routes share.
pub struct Context<'a> {
    pub route: &'a str,
    pub upstreams: &'a mut Pool,
    pub stats: &'a mut Stats,
    pub buffers: &'a mut BufferPool,
    pub connect_timeout: Duration,
    pub dump: Dump,
    /// TCP_NODELAY really works here: set it on every socket.
    pub nodelay: bool,
    /// The longest a direction may hold a piece (`coalesce`); `None`: never.
    pub coalesce: Option<Duration>,
    /// What the route learned of how its answers arrive, per direction.
    pub shapes: &'a mut Shapes,
    pub now: Instant,
}

enum Phase {
    /// Trying `upstream_addr` until `deadline`.
    Connecting { deadline: Instant },
    /// Connected to `upstream_addr`.
    Relaying,
}

pub struct Conn {
    id: u64,
    /// In the loop's list of busy connections (see `proxy::Proxy::register`).
    pub busy: bool,
    /// Index of its route in the proxy.
    pub route: usize,
    /// Pool servers tried so far (a bit per index), and how many attempts.
    tried: u64,
    attempts: u32,
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
    /// Start connecting upstream for a newly accepted client. `early` is
    /// sent upstream before anything the client sends (a PROXY header, and
    /// bytes read with an incoming one). If no upstream can be tried, the
    /// client is handed back with the reason, to be closed.
    pub fn start(
        id: u64,
        route: usize,
        client: Stream,
        client_addr: SocketAddr,
        early: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<Conn, (Stream, Option<SocketAddr>, Reason)> {
        let mut tried = 0;
        let mut attempts = 0;
        if cx.nodelay {
            let _ = client.set_nodelay(); // best effort, as the probe found it works
        }
        match connect_next(id, &mut tried, &mut attempts, None, cx) {
            Ok((upstream_addr, upstream)) => {
                let mut to_upstream = Direction::with_shape(cx.shapes.to_upstream);
                to_upstream.preload(early, cx.buffers);
                Ok(Conn {
                    id,
                    busy: false,
                    route,
                    tried,
                    attempts,
                    client,
                    client_addr,
                    upstream,
                    upstream_addr,
                    phase: Phase::Connecting { deadline: cx.now + cx.connect_timeout },
                    to_upstream,
                    to_client: Direction::with_shape(cx.shapes.to_client),
                    first_fin: None,
                    write_error: None,
                    dumped: 0,
                    opened: cx.now,
                    last_active: cx.now,
                })
            }
            Err((addr, reason)) => Err((client, addr, reason)),
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
            Phase::Relaying => Interest {
                client: (self.to_upstream.wants_read(), self.to_client.wants_write()),
                upstream: (self.to_client.wants_read(), self.to_upstream.wants_write()),
            },
        }
    }

    /// Quiet since `since`: relaying, nothing buffered either way, no byte
    /// moved. Such a connection waits only for a peer to speak, and the loop
    /// may watch it less often (see `proxy::Proxy::register`).
    pub fn quiet_since(&self, since: Instant) -> bool {
        matches!(self.phase, Phase::Relaying)
            && self.last_active <= since
            && !self.to_upstream.wants_write()
            && !self.to_client.wants_write()
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// When this connection next needs attention without any I/O: a
    /// connect timeout, a hold's window, or the idle timeout.
    pub fn deadline(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Relaying => [self.to_upstream.hold_until(), self.to_client.hold_until(), idle_timeout.map(|t| self.last_active + t)]
                .into_iter()
                .flatten()
                .min(),
        }
    }

    /// A socket of this connection is ready. `Err` means it is over.
    pub fn on_ready(&mut self, side: Side, readable: bool, writable: bool, cx: &mut Context<'_>) -> Result<(), Reason> {
        if let Phase::Connecting { .. } = self.phase {
            if side == Side::Upstream && (readable || writable) {
                let result = self.upstream.finish_connect();
                cx.upstreams.record(cx.route, self.upstream_addr, result.is_ok(), cx.now, true);
                match result {
                    Ok(()) => self.connected(cx)?,
                    Err(e) => self.next_upstream(e, cx)?,
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

    /// The deadline passed: a connect attempt timed out, a hold's window
    /// ended (write what it held), or the connection idled.
    pub fn on_timeout(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        match self.phase {
            Phase::Connecting { .. } => {
                cx.upstreams.record(cx.route, self.upstream_addr, false, cx.now, false);
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                self.next_upstream(e, cx)
            }
            Phase::Relaying => {
                let now = cx.now;
                let due = |d: &Direction| d.hold_until().is_some_and(|u| u <= now);
                if !(due(&self.to_upstream) || due(&self.to_client)) {
                    return Err(Reason::IdleTimeout);
                }
                for from in [Side::Client, Side::Upstream] {
                    let (dir, to, shape) = match from {
                        Side::Client => (&mut self.to_upstream, Side::Upstream, &mut cx.shapes.to_upstream),
                        Side::Upstream => (&mut self.to_client, Side::Client, &mut cx.shapes.to_client),
                    };
                    if due(dir) {
                        dir.expire_hold(now, shape, |n| trace_hold(self.id, to, &n));
                        self.pump(from, cx)?;
                    }
                }
                self.finished()
            }
        }
    }

    fn connected(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        self.phase = Phase::Relaying;
        self.last_active = cx.now;
        Record::new(Level::Info, "open")
            .num("conn", self.id)
            .str("route", cx.route)
            .str("client", self.client_addr)
            .str("upstream", self.upstream_addr)
            .emit();
        // A client usually speaks first (an HTTP request is already waiting),
        // and a PROXY header is already buffered.
        self.pump(Side::Client, cx)?;
        self.finished()
    }

    /// Give up on the current upstream and try the next one the pool offers.
    fn next_upstream(&mut self, last: io::Error, cx: &mut Context<'_>) -> Result<(), Reason> {
        log_attempt_failed(self.id, self.upstream_addr, &last);
        match connect_next(self.id, &mut self.tried, &mut self.attempts, Some(last), cx) {
            Ok((addr, upstream)) => {
                self.upstream = upstream;
                self.upstream_addr = addr;
                self.phase = Phase::Connecting { deadline: cx.now + cx.connect_timeout };
                Ok(())
            }
            Err((addr, reason)) => {
                if let Some(addr) = addr {
                    self.upstream_addr = addr;
                }
                Err(reason)
            }
        }
    }

    /// Run the direction whose bytes come from `from`.
    fn pump(&mut self, from: Side, cx: &mut Context<'_>) -> Result<(), Reason> {
        // `back` is the other direction: what goes to the side we read from.
        let (dir, back, src, dst) = match from {
            Side::Client => (&mut self.to_upstream, &mut self.to_client, &mut self.client, &mut self.upstream),
            Side::Upstream => (&mut self.to_client, &mut self.to_upstream, &mut self.upstream, &mut self.client),
        };
        let to = if from == Side::Client { Side::Upstream } else { Side::Client };
        let was_open = dir.state() == State::Open;
        let read_before = dir.read;
        let (dump, id, dumped) = (cx.dump, self.id, &mut self.dumped);
        let shape = match from {
            Side::Client => &mut cx.shapes.to_upstream,
            Side::Upstream => &mut cx.shapes.to_client,
        };
        let mut pace = Pace { now: cx.now, cap: cx.coalesce, route: shape };
        let result = dir.pump(src, dst, cx.buffers, &mut pace, |note| match note {
            Note::Read(bytes) => dump_bytes(dump, id, to, dumped, bytes),
            hold => trace_hold(id, to, &hold),
        });
        if dir.read > read_before {
            // This side spoke: it has acknowledged what it was sent, so what
            // goes to it next starts a new burst.
            back.heard_back();
        }
        match result {
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

    /// The upstream this connection relays to, once connected.
    pub fn relaying_to(&self) -> Option<SocketAddr> {
        match self.phase {
            Phase::Relaying => Some(self.upstream_addr),
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
        log_close(self.id, route, self.client_addr, Some(self.upstream_addr), bytes, duration, reason);
    }
}

/// The one place a close record is written, whether the connection got as
/// far as a `Conn` or failed at its first connect.
pub fn log_close(
    id: u64,
    route: &str,
    client: SocketAddr,
    upstream: Option<SocketAddr>,
    (to_upstream, to_client): (u64, u64),
    duration: Duration,
    reason: &Reason,
) {
    let mut r = Record::new(Level::Info, "close")
        .num("conn", id)
        .str("route", route)
        .str("client", client)
        .str("upstream", format_args!("{}", Upstream(upstream)))
        .num("to_upstream", to_upstream)
        .num("to_client", to_client)
        .str("duration", format_args!("{:.3}s", duration.as_secs_f64()))
        .str("reason", reason.name());
    if let Some(e) = reason.error() {
        r = r.str("error", e);
    }
    r.emit();
}

/// An upstream address, or `-` for a client that never got one (denied).
struct Upstream(Option<SocketAddr>);

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
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

/// `--trace`: a piece held back from the kernel, or released, and why.
fn trace_hold(conn: u64, to: Side, note: &Note<'_>) {
    if !log::tracing() {
        return;
    }
    let dir = if to == Side::Upstream { "to_upstream" } else { "to_client" };
    match note {
        Note::Held { bytes, window } => {
            log::trace_line(format_args!("hold(conn={conn}, {dir}, {bytes} bytes)"), format_args!("until the next piece, {}us at most", window.as_micros()));
        }
        Note::Released { bytes, why, held } => {
            log::trace_line(format_args!("release(conn={conn}, {dir}, {bytes} bytes)"), format_args!("{} after {}us", why.name(), held.as_micros()));
        }
        Note::Read(_) => {}
    }
}

/// One upstream address failed (at once, later, or by timing out).
fn log_attempt_failed(conn: u64, upstream: SocketAddr, e: &io::Error) {
    Record::new(Level::Debug, "connect-failed").num("conn", conn).str("upstream", upstream).str("error", e).emit();
}

/// Start a connect to the next upstream the pool offers that does not fail
/// at once. Returns its address and the (usually still connecting) stream;
/// or, when nothing is left to try, the last address tried and why: the
/// last failure (`last`, or one here), or `NoUpstream` if every server was
/// in its cool-down before any was tried.
fn connect_next(
    conn: u64,
    tried: &mut u64,
    attempts: &mut u32,
    mut last: Option<io::Error>,
    cx: &mut Context<'_>,
) -> Result<(SocketAddr, Stream), (Option<SocketAddr>, Reason)> {
    let mut last_addr = None;
    while (*attempts as usize) < cx.upstreams.servers.len() {
        let Some((index, addr)) = cx.upstreams.pick(cx.now, *tried) else { break };
        *attempts += 1;
        if index < 64 {
            *tried |= 1 << index;
        }
        match Stream::connect(addr) {
            Ok(stream) => {
                if cx.nodelay {
                    let _ = stream.set_nodelay();
                }
                return Ok((addr, stream));
            }
            // Our own shortage, not the upstream's fault: no strike against
            // it, and no point trying others (the caller pauses accepting).
            Err(e) if sys::out_of_descriptors(&e) => return Err((Some(addr), Reason::ConnectFailed(e))),
            Err(e) => {
                cx.upstreams.record(cx.route, addr, false, cx.now, false);
                log_attempt_failed(conn, addr, &e);
                last_addr = Some(addr);
                last = Some(e);
            }
        }
    }
    let reason = match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Reason::ConnectTimeout,
        Some(e) => Reason::ConnectFailed(e),
        None => Reason::NoUpstream(cx.upstreams.servers.len()),
    };
    Err((last_addr, reason))
}

#[cfg(all(test, unix))] // drives real sockets on the Linux host
mod tests {
    use super::*;
    use crate::pool::Health;
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
        Pool::new(remotes, resolved, Policy::Failover, Health { threshold: 3, cooldown: Duration::from_secs(10) })
    }

    /// Drive one connection through the real platform layer until it has
    /// connected (Ok) or given up (Err), firing its timeout when due.
    fn until_connected(conn: &mut Conn, upstreams: &Upstreams, up: &mut Pool) -> Result<SocketAddr, String> {
        let (mut pool, mut poller) = (BufferPool::new(1024, 1), Poller::new());
        let mut stats = Stats::default();
        let give_up = Instant::now() + Duration::from_secs(10);
        while matches!(conn.phase, Phase::Connecting { .. }) {
            let now = Instant::now();
            assert!(now < give_up, "still connecting");
            let mut cx = context(upstreams, up, &mut pool, &mut stats, now);
            if conn.deadline(None).is_some_and(|d| d <= now) {
                conn.on_timeout(&mut cx).map_err(|r| r.to_string())?;
                continue;
            }
            poller.begin(true);
            poller.add(conn.upstream().handle(), 1, false, true);
            poller.wait(Duration::from_millis(50)).unwrap();
            if poller.events().next().is_some() {
                conn.on_ready(Side::Upstream, false, true, &mut cx).map_err(|r| r.to_string())?;
            }
        }
        Ok(conn.upstream_addr)
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
        let (mut pool, mut stats) = (BufferPool::new(1024, 1), Stats::default());
        let mut cx = context(upstreams, up, &mut pool, &mut stats, Instant::now());
        let conn = Conn::start(1, 0, stream, addr, b"", &mut cx).map_err(|(_, _, e)| e.to_string()).unwrap();
        (conn, front)
    }

    fn context<'a>(
        ups: &Upstreams,
        upstreams: &'a mut Pool,
        buffers: &'a mut BufferPool,
        stats: &'a mut Stats,
        now: Instant,
    ) -> Context<'a> {
        let dump = Dump { mode: DumpMode::Off, limit: 0 };
        let shapes = Box::leak(Box::default()); // a few bytes per test
        Context { route: "test", upstreams, stats, buffers, connect_timeout: ups.connect_timeout, dump, nodelay: true, coalesce: None, shapes, now }
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
        assert!(per_conn <= 480, "{per_conn} bytes");
    }
}
