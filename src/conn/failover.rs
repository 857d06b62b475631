//! The connect phase of a connection: try the upstreams its route's pool
//! offers (or a forward proxy's destination addresses, in order), one at a
//! time, until one connects or none is left. Its state only: what the
//! connection does once connected is `connecting.rs`'s.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::bind::Bind;
use super::context::Context;
use crate::close::Reason;
use crate::front::Speaks;
use crate::http1::Exchange;
use crate::log::{Level, Record};
use crate::pool::Outcome;
use crate::sys::{self, Stream};
use crate::tls;

/// The connect phase: which upstream is being tried, until when, and what
/// was tried before it.
pub(super) struct Failover {
    pub(super) addr: SocketAddr,
    pub(super) deadline: Instant,
    /// Pool servers tried so far (a bit per index), and how many attempts.
    pub(super) tried: u64,
    pub(super) attempts: u32,
    /// A forward proxy's destination: these addresses in order, instead of
    /// the pool (and no strikes against the pool's servers).
    /// (Boxed: every connection's slot pays for the field.)
    pub(super) dest: Option<Box<Dest>>,
}

/// A forward proxy's destination.
pub(super) struct Dest {
    addrs: Vec<SocketAddr>,
    /// A tunnel (CONNECT or SOCKS5: answered once connected) and its name,
    /// to check its first bytes against; else a plain HTTP request. Either
    /// is answered in its client's protocol if no connect succeeds.
    pub(super) bind: Option<Box<super::bind::Bind>>,
    /// A plain request's exchange, to carry once connected.
    pub(super) http: Option<Box<crate::http1::Exchange>>,
    /// The client's protocol: how a tunnel is opened, and a failure told.
    pub(super) speaks: Speaks,
    /// A tunnel through a parent proxy: its name, and the CONNECT to ask it.
    pub(super) chain: Option<(String, Vec<u8>)>,
    /// A connection to the destination kept from an earlier request
    /// (`proxy::parked`): tried first, instead of a connect.
    parked: Option<Kept>,
    /// A request of a tunnel the proxy opened: the name its TLS to the
    /// destination is for (`connecting.rs` starts it)...
    pub(super) open: Option<String>,
    /// ...or that TLS already, kept with the parked connection.
    pub(super) kept_tls: Option<Box<tls::Session>>,
}

/// A destination's connection kept from an earlier request: where, its
/// socket, and its TLS (an opened tunnel's request's).
pub type Kept = (SocketAddr, Stream, Option<Box<tls::Session>>);

/// A forward proxy's destination, as the front checked it.
pub struct Destination {
    pub addrs: Vec<SocketAddr>,
    /// A CONNECT tunnel: the name and port it was opened for, whether the
    /// route lets bytes that are not TLS through unread there (`opaque=`),
    /// and the bytes the client sent after the CONNECT (its first bytes,
    /// checked against the name with what follows: `bind.rs`).
    pub tunnel: Option<(String, u16, bool, Vec<u8>)>,
    /// A plain request: its exchange (`crate::http1`).
    pub http: Option<Box<crate::http1::Exchange>>,
    /// The client's protocol (HTTP, or SOCKS5 for a tunnel).
    pub speaks: Speaks,
    /// A tunnel through a parent proxy (`addrs` are the parent's): its
    /// name, and the CONNECT that asks it for the destination.
    pub chain: Option<(String, Vec<u8>)>,
    /// An open connection to one of `addrs`, kept from an earlier request.
    pub parked: Option<Kept>,
    /// A request inside a tunnel the proxy opened (`open=`): the client's
    /// TLS (the connection goes on through it), and the destination's name,
    /// which the proxy's own TLS to it is for.
    pub client_tls: Option<Box<tls::Session>>,
    pub open: Option<String>,
}

/// What a connection relays once connected: a tunnel's binding, a plain
/// request's exchange, and the client's protocol.
pub(super) type Ends = (Option<Box<Bind>>, Option<Box<Exchange>>, Speaks);

/// Why the connect phase gave up: the last address tried (if any) and why.
pub(super) type GaveUp = (Option<SocketAddr>, Reason);

impl Failover {
    /// Start a connect to the first upstream the pool offers that does not
    /// fail at once.
    pub(super) fn start(conn: u64, forward: Option<Destination>, cx: &mut Context<'_>) -> Result<(Failover, Stream), GaveUp> {
        let dest = forward.map(|d| {
            let bind = d.tunnel.map(|(host, port, opaque, first)| Box::new(Bind::new(host, port, opaque, first)));
            Box::new(Dest { addrs: d.addrs, bind, http: d.http, speaks: d.speaks, chain: d.chain, parked: d.parked, open: d.open, kept_tls: None })
        });
        let mut f = Failover { addr: SocketAddr::from(([0, 0, 0, 0], 0)), deadline: cx.now, tried: 0, attempts: 0, dest };
        let stream = f.next(conn, None, cx)?;
        Ok((f, stream))
    }

    /// Start a connect to the next upstream the pool offers that does not
    /// fail at once, after `last` failed (if anything did). When nothing is
    /// left to try: the last address tried and why, the last failure, or
    /// `NoUpstream` if every server was in its cool-down before any was tried.
    pub(super) fn next(&mut self, conn: u64, mut last: Option<io::Error>, cx: &mut Context<'_>) -> Result<Stream, GaveUp> {
        let mut last_addr = None;
        if let Some((addr, stream, tls)) = self.dest.as_mut().and_then(|d| d.parked.take()) {
            // Already connected: the loop goes on at once (`Conn::reused`).
            if let Some(d) = self.dest.as_mut() {
                d.kept_tls = tls;
            }
            self.addr = addr;
            self.deadline = cx.now + cx.connect_timeout;
            return Ok(stream);
        }
        let count = self.dest.as_ref().map_or(cx.upstreams.servers.len(), |d| d.addrs.len());
        while (self.attempts as usize) < count {
            let picked = match &self.dest {
                Some(d) => d.addrs.get(self.attempts as usize).map(|a| (usize::MAX, *a)),
                None => cx.upstreams.pick(cx.now, self.tried),
            };
            let Some((index, addr)) = picked else { break };
            self.attempts += 1;
            if index < 64 {
                self.tried |= 1 << index;
            }
            let connected = match cx.unix_upstream {
                Some(path) if self.dest.is_none() => Stream::connect_unix(path),
                _ => Stream::connect(addr),
            };
            match connected {
                Ok(stream) => {
                    if cx.nodelay {
                        let _ = stream.set_nodelay();
                    }
                    self.addr = addr;
                    self.deadline = cx.now + cx.connect_timeout;
                    return Ok(stream);
                }
                // Our own shortage, not the upstream's fault: no strike against
                // it, and no point trying others (the caller pauses accepting).
                Err(e) if sys::out_of_descriptors(&e) => return Err((Some(addr), Reason::ConnectFailed(e))),
                Err(e) => {
                    if self.dest.is_none() {
                        cx.record(addr, Outcome::Failed);
                    }
                    log_attempt_failed(conn, addr, &e);
                    last_addr = Some(addr);
                    last = Some(e);
                }
            }
        }
        let reason = match last {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => Reason::ConnectTimeout,
            Some(e) => Reason::ConnectFailed(e),
            None => Reason::NoUpstream(count),
        };
        Err((last_addr, reason))
    }
}

/// One upstream address failed (at once, later, or by timing out).
pub(super) fn log_attempt_failed(conn: u64, upstream: SocketAddr, e: &io::Error) {
    Record::new(Level::Debug, "connect-failed").num("conn", conn).str("upstream", crate::sys::show(upstream)).str("error", crate::sys::describe(e)).emit();
}

