//! The UDP relay: `udp:LISTEN=UPSTREAM,...` passes datagrams both ways,
//! each whole (never split or merged, up to 64 KiB), with one upstream
//! socket per client address: a *flow*.
//!
//! How a datagram travels:
//! ```text
//!  client ──► listen socket ─recv_from─► flow of that client ─send─► its upstream socket ──► server
//!  client ◄── listen socket ◄─send_to─── flow ◄─recv──────────────── its upstream socket ◄── server
//! ```
//! The listen socket is a bound `sys::Datagram` read in batches when the
//! poller says it is readable, as the allowlist DNS server reads its own
//! (`dns_server`). A datagram from a new client address opens a flow: the
//! route's `pool` picks a server (its policy, its health), and a socket
//! connected to that server carries the flow's datagrams, so the server's
//! replies come back on the flow they answer and nowhere else. The flow
//! table (`flows.rs`) is bounded (`flows=`: the flow idle longest makes way
//! for a new one, counted) and a flow silent both ways for `idle=` closes.
//!
//! A server that answers with ICMP port unreachable shows as
//! `ECONNREFUSED` on the flow's connected socket (Linux reports it there,
//! and the runtimes pass it on): the flow closes, the pool counts a failed
//! attempt (enough in a row mark the server down, as a failed TCP connect
//! does), and the client's next datagram opens a flow to the next server.
//! A server that drops datagrams silently cannot be told from a slow one.
//!
//! Memory: one 64 KiB buffer per route (shared by its flows, since a
//! datagram is sent before the next is read) and about 430 bytes per flow
//! (the table's share, measured natively with 4,000 flows) beside its socket;
//! what waits is in the kernel's socket buffers, which drop when full, as
//! UDP does. Nothing here blocks.
//!
//! Those buffers are sized (`buffers.rs`: `--udp-buffer`, every socket of the route, both
//! ways): the kernel's default, about 212 KiB, holds only some 250 small
//! datagrams, and a burst while the loop is busy elsewhere would be lost.
//! What the kernel still drops at our sockets is counted where the platform
//! tells it (`Datagram::dropped`: natively), as `reason="kernel"`.

mod buffers;
mod flows;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::dump::dump_bytes;
use crate::close::{Close, Side};
use crate::log::{Level, Record};
use crate::metrics::{Stats, UdpView};
use crate::pool::{Outcome, Pool};
use crate::relay::would_block;
use crate::route::{Acl, Udp};
use crate::settings::Dump;
use crate::sys::{Datagram, Handle};
pub use buffers::{configure, DEFAULT_BUFFER};
use buffers::size;
use flows::{Flow, Flows};

/// Datagrams read from one socket per wake-up: a flood on one must not
/// starve the others.
const BATCH: usize = 64;
/// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6):
/// a datagram is never cut.
const MAX_DATAGRAM: usize = 65_536;

/// Why a datagram was not passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Its client's address is not allowed (`allow=`, `deny=`).
    Denied,
    /// Every server of the route is down.
    NoUpstream,
    /// The socket it would leave by had no room (the kernel's buffer).
    Full,
    /// The socket it would leave by failed (or none could be opened).
    Error,
}

impl Dropped {
    pub const ALL: [Dropped; 4] = [Dropped::Denied, Dropped::NoUpstream, Dropped::Full, Dropped::Error];

    pub fn name(self) -> &'static str {
        match self {
            Dropped::Denied => "denied",
            Dropped::NoUpstream => "no-upstream",
            Dropped::Full => "full",
            Dropped::Error => "error",
        }
    }
}

/// Why a flow closed (the `reason=` of its close line).
#[derive(Debug)]
pub enum Ended {
    /// Silent both ways for `idle=`.
    Idle,
    /// The table was full: the flow idle longest made way.
    Evicted,
    /// The server answered ICMP port unreachable.
    Unreachable,
    /// Its socket failed otherwise.
    Error(io::Error),
    /// A reload removed the route, or the proxy stopped.
    Closed(&'static str),
}

impl Ended {
    /// How the route's close counters count it (a reload or a stop: not at all).
    fn kind(&self) -> Option<Close> {
        match self {
            Ended::Idle | Ended::Evicted => Some(Close::IdleTimeout),
            Ended::Unreachable => Some(Close::ConnectFailed),
            Ended::Error(_) => Some(Close::UpstreamError),
            Ended::Closed(_) => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Ended::Idle => "idle-timeout",
            Ended::Evicted => "evicted",
            Ended::Unreachable => "upstream-unreachable",
            Ended::Error(_) => "upstream-error",
            Ended::Closed(why) => why,
        }
    }
}

/// A UDP route's counters beyond the route's `Stats` (which count its flows
/// as connections and its bytes).
#[derive(Default)]
pub struct Counts {
    /// Datagrams passed on: to upstreams, to clients.
    pub datagrams: (u64, u64),
    /// By `Dropped::ALL`'s order.
    pub dropped: [u64; 4],
    pub evicted: u64,
    /// What the kernel dropped at the sockets of flows now closed.
    pub kernel_closed: u64,
}

/// What the relay needs from the loop on each call.
pub struct Cx<'a> {
    /// The route's name (its listen address), for logs.
    pub route: &'a str,
    pub acl: &'a Acl,
    pub pool: &'a mut Pool,
    pub stats: &'a mut Stats,
    pub dump: Dump,
    /// The loop's connection counter: a flow's id is a connection's.
    pub next_id: &'a mut u64,
    pub now: Instant,
}

/// Which socket an event is for: the listen socket, or a flow's.
pub fn sub_of_flow(key: usize) -> usize {
    key + 1
}

/// One UDP route's sockets and flows.
pub struct UdpRelay {
    socket: Datagram,
    settings: Udp,
    flows: Flows,
    /// Shared by the flows: one datagram at a time.
    buf: Vec<u8>,
    pub counts: Counts,
    /// No flow can go idle before this (learnt while `watch` lists the
    /// flows anyway), so `expire` scans the table only when one may have;
    /// None: not known, scan.
    due: Option<Instant>,
    /// The listen socket's buffers as the kernel granted them (receive, send).
    pub granted: Option<(usize, usize)>,
}

impl UdpRelay {
    pub fn new(socket: Datagram, settings: Udp) -> UdpRelay {
        let granted = buffers::sized(&socket);
        UdpRelay { socket, settings, flows: Flows::default(), buf: vec![0; MAX_DATAGRAM], counts: Counts::default(), due: None, granted }
    }

    /// Datagrams the kernel dropped at this route's sockets (its listen
    /// socket's, its flows' now and before), where the platform tells.
    pub fn kernel_dropped(&self) -> Option<u64> {
        let open: u64 = self.flows.iter().filter_map(|(_, f)| f.socket.dropped()).sum();
        Some(self.socket.dropped()? + open + self.counts.kernel_closed)
    }

    /// A reload changed the route's options: for the flows to come (and
    /// the idle time of those open).
    pub fn set(&mut self, settings: Udp) {
        self.settings = settings;
        self.due = None;
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Its counters, for the metrics.
    pub fn view(&self) -> UdpView {
        let mut dropped: Vec<_> = Dropped::ALL.iter().zip(self.counts.dropped).map(|(why, n)| (why.name(), n)).collect();
        // Absent, not 0, where the platform does not tell.
        dropped.extend(self.kernel_dropped().map(|n| ("kernel", n)));
        UdpView { datagrams: self.counts.datagrams, dropped, evicted: self.counts.evicted }
    }

    /// Its sockets, all read interest (a send that finds no room drops, as
    /// UDP does: nothing waits to be written), and when it next has a flow
    /// that may have gone idle.
    pub fn watch(&mut self, mut add: impl FnMut(usize, Handle, bool, bool)) -> Option<Instant> {
        add(0, self.socket.handle(), true, false);
        let mut oldest: Option<Instant> = None;
        for (key, flow) in self.flows.iter() {
            add(sub_of_flow(key), flow.socket.handle(), true, false);
            oldest = Some(oldest.map_or(flow.last, |o| o.min(flow.last)));
        }
        self.due = oldest.map(|last| last + self.settings.idle);
        self.due
    }

    pub fn on_ready(&mut self, sub: usize, cx: &mut Cx<'_>) {
        match sub.checked_sub(1) {
            None => self.read_clients(cx),
            Some(key) => self.downward(key, cx),
        }
    }

    /// Close the flows silent for `idle=`.
    pub fn expire(&mut self, cx: &mut Cx<'_>) {
        if self.due.is_some_and(|due| cx.now < due) {
            return; // flows only grow younger between two passes
        }
        for key in self.flows.idle_since(cx.now, self.settings.idle) {
            self.close(key, Ended::Idle, cx);
        }
    }

    /// Close every flow (a reload removed the route, or the proxy stops).
    pub fn close_all(&mut self, why: &'static str, cx: &mut Cx<'_>) {
        for key in self.flows.keys() {
            self.close(key, Ended::Closed(why), cx);
        }
    }

    fn read_clients(&mut self, cx: &mut Cx<'_>) {
        for _ in 0..BATCH {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => self.upward(n, from, cx),
                Err(e) if would_block(&e) => return,
                // An unconnected socket reports nothing of one client's
                // ICMP; what is left is transient: try on the next wake-up.
                Err(e) => {
                    Record::new(Level::Debug, "udp-recv-failed").str("route", cx.route).str("error", crate::sys::describe(&e)).emit();
                    return;
                }
            }
        }
    }

    /// Datagram `buf[..n]` came from `from`: on to its flow's server.
    fn upward(&mut self, n: usize, from: SocketAddr, cx: &mut Cx<'_>) {
        if !cx.acl.permits(from.ip()) {
            Record::new(Level::Debug, "udp-denied").str("route", cx.route).str("client", from).emit();
            return self.drop_one(Dropped::Denied);
        }
        let key = match self.flows.find(from) {
            Some(key) => key,
            None => match self.open(from, cx) {
                Some(key) => key,
                None => return,
            },
        };
        let Some(flow) = self.flows.get_mut(key) else { return };
        let datagram = self.buf.get(..n).unwrap_or_default();
        match flow.socket.send(datagram) {
            Ok(_) => {
                flow.passed(Side::Upstream, n, cx.now);
                self.counts.datagrams.0 += 1;
                cx.stats.to_upstream += n as u64;
                dump_bytes(cx.dump, flow.id, Side::Upstream, &mut flow.dumped.0, datagram);
            }
            Err(e) if would_block(&e) => self.drop_one(Dropped::Full),
            // The server's ICMP for an earlier datagram can surface here.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                self.drop_one(Dropped::Error);
                self.close(key, Ended::Unreachable, cx);
            }
            Err(e) => {
                self.drop_one(Dropped::Error);
                self.close(key, Ended::Error(e), cx);
            }
        }
    }

    /// A flow for a new client: make room, pick a server, open a socket to it.
    fn open(&mut self, client: SocketAddr, cx: &mut Cx<'_>) -> Option<usize> {
        if self.flows.len() >= self.settings.flows {
            if let Some(key) = self.flows.idlest() {
                self.counts.evicted += 1;
                self.close(key, Ended::Evicted, cx);
            }
        }
        let Some((_, server)) = cx.pool.pick(cx.now, 0) else {
            Record::new(Level::Debug, "udp-no-upstream").str("route", cx.route).str("client", client).emit();
            self.drop_one(Dropped::NoUpstream);
            return None;
        };
        let socket = match Datagram::connect(server) {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, mostly: the client's next datagram tries again.
                Record::new(Level::Warn, "udp-open-failed").str("route", cx.route).str("client", client).str("upstream", server).str("error", crate::sys::describe(&e)).emit();
                self.drop_one(Dropped::Error);
                return None;
            }
        };
        if let Err(e) = size(&socket) {
            // The flow works without: its server's answers wait in the kernel's default.
            Record::new(Level::Debug, "udp-buffer-not-set").str("route", cx.route).str("error", crate::sys::describe(&e)).emit();
        }
        let id = *cx.next_id;
        *cx.next_id += 1;
        cx.stats.connections += 1;
        cx.stats.active += 1;
        Record::new(Level::Info, "open").num("conn", id).str("route", cx.route).str("client", client).str("upstream", server).str("proto", "udp").emit();
        Some(self.flows.insert(Flow::new(id, client, server, socket, cx.now)))
    }

    /// Flow `key`'s socket is readable: the server's datagrams, back to the
    /// client from the listen socket (so they come from the address the
    /// client sent to).
    fn downward(&mut self, key: usize, cx: &mut Cx<'_>) {
        for _ in 0..BATCH {
            let Some(flow) = self.flows.get_mut(key) else { return };
            let n = match flow.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return self.close(key, Ended::Unreachable, cx),
                Err(e) => return self.close(key, Ended::Error(e), cx),
            };
            if !flow.answered {
                // The server is there: as a TCP connect that succeeded.
                flow.answered = true;
                if let Some(change) = cx.pool.record(flow.upstream, Outcome::Relaying, cx.now) {
                    change.log(cx.route, flow.upstream);
                }
            }
            let datagram = self.buf.get(..n).unwrap_or_default();
            match self.socket.send_to(datagram, flow.client) {
                Ok(_) => {
                    flow.passed(Side::Client, n, cx.now);
                    self.counts.datagrams.1 += 1;
                    cx.stats.to_client += n as u64;
                    dump_bytes(cx.dump, flow.id, Side::Client, &mut flow.dumped.1, datagram);
                }
                Err(e) if would_block(&e) => self.drop_one(Dropped::Full),
                Err(_) => self.drop_one(Dropped::Error),
            }
        }
    }

    fn drop_one(&mut self, why: Dropped) {
        if let Some(n) = self.counts.dropped.get_mut(why as usize) {
            *n += 1;
        }
    }

    /// Close flow `key`: its socket, its place in the pool, its close line.
    fn close(&mut self, key: usize, why: Ended, cx: &mut Cx<'_>) {
        let Some(flow) = self.flows.remove(key) else { return };
        self.counts.kernel_closed += flow.socket.dropped().unwrap_or(0);
        match why.kind() {
            Some(kind) => cx.stats.closed(kind),
            None => cx.stats.active = cx.stats.active.saturating_sub(1),
        }
        if flow.answered {
            cx.pool.closed(flow.upstream);
        }
        if matches!(why, Ended::Unreachable) {
            if let Some(change) = cx.pool.record(flow.upstream, Outcome::Failed, cx.now) {
                change.log(cx.route, flow.upstream);
            }
        }
        let mut r = Record::new(Level::Info, "close")
            .num("conn", flow.id)
            .str("route", cx.route)
            .str("client", flow.client)
            .str("upstream", flow.upstream)
            .str("proto", "udp")
            .num("to_upstream", flow.bytes.0)
            .num("to_client", flow.bytes.1)
            .num("datagrams_to_upstream", flow.datagrams.0)
            .num("datagrams_to_client", flow.datagrams.1)
            .str("duration", format_args!("{:.3}s", cx.now.duration_since(flow.opened).as_secs_f64()))
            .str("reason", why.name());
        if let Ended::Error(e) = &why {
            r = r.str("error", crate::sys::describe(e));
        }
        r.emit();
    }
}
