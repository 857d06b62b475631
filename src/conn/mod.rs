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
//!
//! A CONNECT tunnel adds one step to 3: the client's first bytes are read
//! and checked against the tunnel's name (`bind.rs`) before any is relayed.
//!
//! Beside it, in two layers. Below the connection, knowing nothing of it:
//! `context.rs` (what it borrows on each call), `failover.rs` (the connect
//! phase's state: which upstream, until when, what was tried), `chain.rs`
//! (a parent proxy's answer awaited), `ends.rs` (an end as the relay sees
//! it, plain or TLS), `bind.rs` (a tunnel's name). Above it, adding its
//! methods phase by phase: `connecting.rs` (connected: through a parent,
//! or straight to relaying; the next upstream), `relaying.rs` (one
//! direction's pump, TLS flushing, when it is over), `forwarding.rs` (what
//! a forward proxy's connection adds). `crate::close` says why it ended
//! and writes the close record; `crate::dump` shows the bytes.

// Leaves first (none of them takes the connection), then the files that
// add the connection's methods phase by phase (they take it; it takes
// nothing from them): see the tour above.
mod bind;
mod chain;
mod context;
mod ends;
mod failover;
mod connecting;
mod forwarding;
mod relaying;

pub use context::Context;
pub use failover::{Destination, Kept};


use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::close::{log_close, Reason, Side, Who};
use crate::dump::dump_peeked;
use crate::http1::Exchange;
use crate::names::Asked;
use crate::pool::Outcome;
use crate::relay::Direction;
use crate::sys::{Event, Stream};
use crate::tls;
use bind::Bind;
use ends::{read_failed, shape_from, trace_hold, Tls};
use failover::Failover;

enum Phase {
    /// Trying upstreams, one at a time.
    Connecting(Failover),
    /// Connected to a parent proxy, which was asked for the tunnel's
    /// destination: waiting for its answer (`chain.rs`).
    Chaining(Box<chain::Chain>),
    /// Connected to `addr`; a CONNECT tunnel's first bytes wait in `bind`
    /// until they are checked (see `bind.rs`); a forward proxy's plain
    /// request is one `http` exchange (see `crate::http1`).
    Relaying { addr: SocketAddr, bind: Option<Box<Bind>>, http: Option<Box<Exchange>> },
}

pub struct Conn {
    id: u64,
    /// Index of its route in the proxy.
    pub route: usize,
    client: Stream,
    client_addr: SocketAddr,
    /// On a port routed by name: what the client asked for (boxed: most
    /// connections have none, and every one pays for the slot).
    asked: Option<Box<Asked>>,
    upstream: Stream,
    /// Its TLS, on a route that speaks it on either side (boxed: most
    /// connections have none, and every one pays for the slot).
    tls: Option<Box<Tls>>,
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

/// Why a connection could not start: what its client asked for, the last
/// upstream tried (if any), and why.
pub struct NotStarted {
    /// The client, to be closed (dropped) once told, and its TLS if the
    /// proxy opened it (the answer goes through it).
    pub client: Stream,
    pub client_tls: Option<Box<tls::Session>>,
    pub asked: Option<Box<Asked>>,
    pub upstream: Option<SocketAddr>,
    pub reason: Reason,
}

/// A forward client whose request was answered, on its way back to the
/// front (`Conn::into_next`).
pub struct Next {
    pub client: (Stream, SocketAddr),
    /// What it sent past its request: the start of its next.
    pub leftover: Vec<u8>,
    /// The destination's connection, if it may carry another request
    /// (with its TLS, an opened tunnel's).
    pub upstream: Option<failover::Kept>,
    /// The client's TLS, inside a tunnel the proxy opened.
    pub client_tls: Option<Box<tls::Session>>,
    /// The tunnel its requests stay in, if it is inside one.
    pub pinned: Option<(String, u16)>,
}

/// What the interest of a connection is, per socket: (read, write).
pub struct Interest {
    pub client: (bool, bool),
    pub upstream: (bool, bool),
}

impl Conn {
    /// Start connecting upstream for a newly accepted client. `early` is
    /// sent upstream before anything the client sends: a PROXY header of
    /// ours, then `read`, what the front read from the client (bytes past
    /// an incoming PROXY header, a peeked ClientHello). If no upstream can be
    /// tried, the client is closed and the error says why. `forward`: a
    /// forward proxy's destination addresses (tried in order instead of the
    /// route's pool), and whether the client asked for a tunnel (CONNECT:
    /// answered 200 once connected).
    pub fn start(
        id: u64,
        route: usize,
        (client, client_addr, asked): (Stream, SocketAddr, Option<Box<Asked>>),
        (early, read): (&[u8], &[u8]),
        forward: Option<Destination>,
        cx: &mut Context<'_>,
    ) -> Result<Conn, NotStarted> {
        // A terminating route: what the front read (a ClientHello) is the
        // start of the client's TLS, not bytes for the upstream. A client
        // that is not speaking TLS is turned away before any upstream sees it.
        // An opened tunnel's client comes with its TLS already.
        let mut forward = forward;
        let opened = forward.as_mut().and_then(|d| d.client_tls.take());
        let read_was_hello = opened.is_none() && cx.tls.is_some();
        let forward_shown = forward.as_mut().and_then(|d| d.http.as_mut()).and_then(|x| x.shown.take());
        let client_tls = match opened {
            Some(t) => Some(*t),
            None => match cx.tls.map(|config| tls::accept(config, read)) {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => return Err(NotStarted { client, client_tls: None, asked, upstream: None, reason: read_failed(Side::Client, e) }),
            },
        };
        let plain = if read_was_hello { &[][..] } else { read };
        match Failover::start(id, forward, cx) {
            Ok((failover, upstream)) => {
                let mut to_upstream = Direction::with_shape(cx.shapes.to_upstream);
                to_upstream.preload(early, cx.buffers);
                to_upstream.preload(plain, cx.buffers);
                let mut dumped = 0;
                // Where secrets were swapped in, the dump shows what the
                // client sent (the placeholders), never what went out.
                let shown = forward_shown.as_deref().unwrap_or(plain);
                dump_peeked(cx.dump, id, asked.as_deref(), &mut dumped, shown);
                Ok(Conn {
                    id,
                    route,
                    client,
                    client_addr,
                    asked,
                    upstream,
                    tls: client_tls.map(|c| Box::new(Tls { client: Some(c), ..Tls::default() })),
                    phase: Phase::Connecting(failover),
                    to_upstream,
                    to_client: Direction::with_shape(cx.shapes.to_client),
                    first_fin: None,
                    write_error: None,
                    dumped,
                    opened: cx.now,
                    last_active: cx.now,
                })
            }
            Err((upstream, reason)) => Err(NotStarted { client, client_tls: client_tls.map(Box::new), asked, upstream, reason }),
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
            Phase::Connecting(_) => Interest { client: (false, false), upstream: (false, true) },
            Phase::Chaining(_) => Interest { client: (false, false), upstream: (true, false) },
            Phase::Relaying { .. } => Interest {
                client: ((self.binding() || self.to_upstream.wants_read()) && !self.message_ended(Side::Client), self.to_client.wants_write() || self.queued(Side::Client)),
                upstream: (self.to_client.wants_read() && !self.message_ended(Side::Upstream), self.to_upstream.wants_write() || self.queued(Side::Upstream)),
            },
        }
    }

    /// Quiet since `since`: relaying, nothing buffered either way, no byte
    /// moved. Such a connection waits only for a peer to speak, and the loop
    /// may watch it less often (see `proxy::Proxy::register`).
    pub fn quiet_since(&self, since: Instant) -> bool {
        matches!(self.phase, Phase::Relaying { .. })
            && self.last_active <= since
            && !self.to_upstream.wants_write()
            && !self.to_client.wants_write()
            && !self.queued(Side::Client)
            && !self.queued(Side::Upstream)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// When this connection next needs attention without any I/O: a
    /// connect timeout, a hold's window, or the idle timeout.
    pub fn deadline(&self, idle_timeout: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::Connecting(ref f) => Some(f.deadline),
            Phase::Chaining(ref c) => Some(c.deadline),
            Phase::Relaying { .. } if self.backlogged() => Some(self.opened),
            Phase::Relaying { .. } => [self.to_upstream.hold_until(), self.to_client.hold_until(), idle_timeout.map(|t| self.last_active + t)]
                .into_iter()
                .flatten()
                .min(),
        }
    }

    /// A socket of this connection is ready. `Err` means it is over.
    pub fn on_ready(&mut self, side: Side, ev: Event, cx: &mut Context<'_>) -> Result<(), Reason> {
        let (readable, writable) = (ev.readable, ev.writable);
        if let Phase::Connecting(f) = &self.phase {
            if side == Side::Upstream && (readable || writable) {
                let result = self.upstream.connected_by(ev);
                cx.record(f.addr, if result.is_ok() { Outcome::Relaying } else { Outcome::Failed });
                match result {
                    Ok(()) => self.connected(cx)?,
                    Err(e) => self.next_upstream(e, cx)?,
                }
            }
            return Ok(());
        }
        if let Phase::Chaining(_) = &self.phase {
            return if side == Side::Upstream && (readable || ev.trouble) { self.parent_answered(cx) } else { Ok(()) };
        }
        if writable {
            self.flush_tls(side)?;
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
        match &self.phase {
            Phase::Connecting(f) => {
                cx.record(f.addr, Outcome::Failed);
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                self.next_upstream(e, cx)
            }
            Phase::Chaining(_) => Err(Reason::ConnectTimeout), // the parent did not answer in time
            Phase::Relaying { .. } if self.backlogged() => {
                for from in [Side::Client, Side::Upstream] {
                    self.pump(from, cx)?;
                }
                self.finished()
            }
            Phase::Relaying { .. } => {
                let now = cx.now;
                let due = |d: &Direction| d.hold_until().is_some_and(|u| u <= now);
                if !(due(&self.to_upstream) || due(&self.to_client)) {
                    return Err(Reason::IdleTimeout);
                }
                for from in [Side::Client, Side::Upstream] {
                    if due(self.direction(from)) {
                        // A busy loop may come to an expired hold late, with
                        // the next piece already waiting: read first (a
                        // piece releases the hold with everything), and only
                        // then end the hold and write what it has.
                        self.pump(from, cx)?;
                        let id = self.id;
                        let shape = shape_from(cx.shapes, from);
                        self.direction(from).expire_hold(now, shape, |n| trace_hold(id, from.other(), &n));
                        self.pump(from, cx)?;
                    }
                }
                self.finished()
            }
        }
    }

    /// The upstream being tried, or relayed to.
    fn upstream_addr(&self) -> SocketAddr {
        match &self.phase {
            Phase::Connecting(f) => f.addr,
            Phase::Chaining(c) => c.addr,
            Phase::Relaying { addr, .. } => *addr,
        }
    }

    /// Reset both sockets when they are dropped (see `Reason::is_abort`).
    pub fn abort(&self) {
        self.client.abort();
        self.upstream.abort();
    }

    /// The upstream this connection relays to, once connected.
    pub fn relaying_to(&self) -> Option<SocketAddr> {
        match self.phase {
            Phase::Relaying { addr, .. } => Some(addr),
            Phase::Connecting(_) | Phase::Chaining(_) => None,
        }
    }

    /// Bytes moved so far: (to the upstream, to the client).
    pub fn bytes(&self) -> (u64, u64) {
        (self.to_upstream.bytes, self.to_client.bytes)
    }

    fn who<'a>(&'a self, route: &'a str, backend: Option<&'a str>) -> Who<'a> {
        Who { id: self.id, route, backend, client: self.client_addr, asked: self.asked.as_deref() }
    }

    /// The close line: who, where, how much, how long, and why.
    pub fn log_close(&self, reason: &Reason, cx: &Context<'_>) {
        let bytes = (self.to_upstream.bytes, self.to_client.bytes);
        let duration = cx.now.duration_since(self.opened);
        log_close(&self.who(cx.route, cx.backend), Some(self.upstream_addr()), bytes, duration, reason);
    }
}

#[cfg(all(test, unix))] // drives real sockets on the Linux host
mod tests;
