//! The readiness loop: one thread, one `Poller`, every socket of every route.
//!
//! Each pass:
//! 1. scheduled work, when due: DNS re-resolution and health-check connects
//!    (`health`), and dropping whatever is past its deadline that has no
//!    connection yet (a PROXY header not sent, a check not answered);
//! 2. derive interest from state: each route's listener while below the
//!    connection limit, and for every connection what its directions can use
//!    now; collect the nearest deadline. Connections quiet for `QUIET_AFTER`
//!    are left out of most passes while others are busy (see `register`);
//!    every pass includes them when nothing else is going on;
//! 3. handle connections past their deadline (connect or idle timeout);
//! 4. wait (never longer than `MAX_WAIT`, never forever);
//! 5. hand each ready socket to its owner; accept last, so a slot freed in
//!    this pass is not reused under a stale event.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::coalesce::Shapes;
use crate::config::{Config, Dump};
use crate::conn::{self, Conn, Context, Reason, Side};
use crate::health::{self, Check};
use crate::log::{Level, Record};
use crate::metrics::{self, RouteView, Scrape, Stats};
use crate::pool::{Health, Pool};
use crate::proxy_header::{self, Received};
use crate::relay::BufferPool;
use crate::route::{Acl, ProxyVersion, RouteSpec};
use crate::sys::{self, Event, Listener, Poller, Stream};

/// A token is a kind in its top bits and an index below them. Connections
/// use `key * 2 + side`; the others their slab key or route index.
const KIND_SHIFT: u32 = usize::BITS - 4;
const CONN: usize = 0;
const LISTENER: usize = 1;
const METRICS: usize = 2;
const SCRAPE: usize = 3;
const PENDING: usize = 4;
const CHECK: usize = 5;
/// An upper bound on one wait, so the loop always wakes to check its timers.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Accepts per listener per wake-up: a flood of new clients must not starve the others.
const ACCEPT_BATCH: usize = 64;
/// After an accept error such as EMFILE (no descriptors left), stop accepting
/// for this long instead of spinning on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Spare buffers kept for reuse (memory held by an idle proxy: this many
/// times the buffer size).
const SPARE_BUFFERS: usize = 64;
/// Metrics requests served at once; more wait in the backlog.
const MAX_SCRAPES: usize = 16;
/// A connection with no byte either way for this long is "quiet": while
/// others are busy, it is watched only in full passes.
const QUIET_AFTER: Duration = Duration::from_secs(1);
/// How often a busy loop makes a full pass: `FULL_PASS_SHARE` times what the
/// last full wait cost when it did not have to block (so that full passes,
/// whose cost grows with every socket, take about a tenth of the time; the
/// pass after a full one pays as much again to drop what it no longer
/// watches), within these bounds. The upper bound is the extra delay a quiet
/// connection may see when it speaks while others keep the loop busy.
const FULL_PASS_SHARE: u32 = 20;
const FULL_PASS_MIN: Duration = Duration::from_millis(2);
const FULL_PASS_MAX: Duration = Duration::from_millis(500);

fn tok(kind: usize, index: usize) -> usize {
    (kind << KIND_SHIFT) | index
}

fn split(token: usize) -> (usize, usize) {
    (token >> KIND_SHIFT, token & ((1 << KIND_SHIFT) - 1))
}

fn conn_token(key: usize, side: Side) -> usize {
    tok(CONN, key * 2 + (side == Side::Upstream) as usize)
}

/// The other way: a `CONN` token's index back to (slab key, side).
fn conn_of(index: usize) -> (usize, Side) {
    (index / 2, if index % 2 == 1 { Side::Upstream } else { Side::Client })
}

/// The periodic summary line (`--summary-interval`).
struct Summary {
    every: Duration,
    next: Instant,
    /// Byte counters at the last summary, for the rates.
    last: (u64, u64),
}

/// One route at run time: its listener, pool, rules and counters.
pub struct Route {
    name: String,
    listener: Listener,
    pool: Pool,
    stats: Stats,
    acl: Acl,
    send_proxy: Option<ProxyVersion>,
    accept_proxy: bool,
    /// How answers arrive in each direction, as its connections learned it
    /// (`coalesce`).
    shapes: Shapes,
}

impl Route {
    /// `resolved[i]` holds the addresses of `spec.upstreams[i]`.
    pub fn new(spec: &RouteSpec, listener: Listener, resolved: Vec<Vec<SocketAddr>>, health: Health) -> Route {
        // A route is named by the address it really listens on (it may say port 0).
        let name = listener.local_addr().unwrap_or(spec.listen).to_string();
        Route {
            name,
            listener,
            pool: Pool::new(spec.upstreams.clone(), resolved, spec.policy, health),
            stats: Stats::default(),
            acl: spec.acl.clone(),
            send_proxy: spec.send_proxy,
            accept_proxy: spec.accept_proxy,
            shapes: Shapes::default(),
        }
    }

    /// The address it listens on, as a string: its name in logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every upstream address, comma-separated, for the start line.
    pub fn upstream_list(&self) -> String {
        let addrs: Vec<String> = self.pool.servers.iter().map(|s| s.addr.to_string()).collect();
        addrs.join(",")
    }
}

/// A client of an `accept-proxy` route whose PROXY header is still arriving.
struct Pending {
    id: u64,
    route: usize,
    client: Stream,
    peer: SocketAddr,
    reader: proxy_header::Reader,
    deadline: Instant,
}

/// What every connection borrows, kept apart from the connection table so
/// both can be borrowed at once.
struct Shared {
    routes: Vec<Route>,
    buffers: BufferPool,
    connect_timeout: Duration,
    dump: Dump,
    nodelay: bool,
    coalesce: Option<Duration>,
}

impl Shared {
    fn context(&mut self, route: usize, now: Instant) -> Option<Context<'_>> {
        let r = self.routes.get_mut(route)?;
        Some(Context {
            route: &r.name,
            upstreams: &mut r.pool,
            stats: &mut r.stats,
            buffers: &mut self.buffers,
            connect_timeout: self.connect_timeout,
            dump: self.dump,
            nodelay: self.nodelay,
            coalesce: self.coalesce,
            shapes: &mut r.shapes,
            now,
        })
    }
}

pub struct Proxy {
    shared: Shared,
    conns: Slab<Conn>,
    pending: Slab<Pending>,
    checks: Slab<Check>,
    poller: Poller,
    idle_timeout: Option<Duration>,
    header_timeout: Duration,
    max_conns: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    metrics: Option<Listener>,
    scrapes: Slab<Scrape>,
    summary: Option<Summary>,
    /// Scheduled work: (interval, next time).
    health_check: Option<(Duration, Instant)>,
    resolve: Option<(Duration, Instant)>,
    iterations: u64,
    wakeups: u64,
    /// Connections watched in every pass: (slab key, id), as a key may be reused.
    busy: Vec<(usize, u64)>,
    /// When the next full pass (every connection watched) is due, and
    /// whether this pass is one.
    next_full: Instant,
    full_pass: bool,
    /// Reused between passes so the loop does not allocate.
    ready: Vec<Event>,
    expired: Vec<usize>,
    listeners_ready: Vec<usize>,
}

impl Proxy {
    /// `nodelay`: TCP_NODELAY really works on this runtime (`nagle::probe`).
    pub fn new(cfg: &Config, routes: Vec<Route>, metrics: Option<Listener>, nodelay: bool) -> Proxy {
        let now = Instant::now();
        Proxy {
            shared: Shared {
                routes,
                buffers: BufferPool::new(cfg.buffer_size, SPARE_BUFFERS),
                connect_timeout: cfg.connect_timeout,
                dump: cfg.dump,
                nodelay,
                coalesce: cfg.coalesce.cap(nodelay),
            },
            conns: Slab::new(),
            pending: Slab::new(),
            checks: Slab::new(),
            poller: Poller::new(),
            idle_timeout: cfg.idle_timeout,
            header_timeout: cfg.proxy_header_timeout,
            max_conns: cfg.max_conns,
            next_id: 1,
            accept_paused_until: None,
            metrics,
            scrapes: Slab::new(),
            summary: cfg.summary_interval.map(|every| Summary { every, next: now + every, last: (0, 0) }),
            // The first checks run at once: a dead upstream is known before the first client.
            health_check: cfg.health_check.map(|every| (every, now)),
            resolve: cfg.resolve_interval.map(|every| (every, now + every)),
            iterations: 0,
            wakeups: 0,
            busy: Vec::new(),
            next_full: now,
            full_pass: true,
            ready: Vec::new(),
            expired: Vec::new(),
            listeners_ready: Vec::new(),
        }
    }

    /// Runs until the poller itself fails (not for anything a peer does).
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.iterations += 1;
            let now = Instant::now();
            self.scheduled(now);
            let wake_at = self.register(now);
            if !self.expired.is_empty() {
                self.expire(now);
                continue; // their interest changed: derive it again
            }
            self.poller.wait(wake_at.saturating_duration_since(now))?;
            if self.full_pass && !self.busy.is_empty() {
                // Busy: this wait returned at once with work, so the pass's
                // length (from `now`) is the cost of watching everything.
                // Space full passes by it.
                let cost = now.elapsed();
                self.next_full = now + (cost * FULL_PASS_SHARE).clamp(FULL_PASS_MIN, FULL_PASS_MAX);
            }

            self.ready.clear();
            self.ready.extend(self.poller.events());
            if !self.ready.is_empty() {
                self.wakeups += 1;
            }
            let now = Instant::now();
            let mut scrape = false;
            self.listeners_ready.clear();
            let ready = std::mem::take(&mut self.ready);
            for &ev in &ready {
                let (kind, index) = split(ev.token);
                match kind {
                    CONN => {
                        let (key, side) = conn_of(index);
                        self.dispatch(key, now, |conn, cx| conn.on_ready(side, ev.readable, ev.writable, cx));
                    }
                    LISTENER => self.listeners_ready.push(index),
                    METRICS => scrape = true,
                    SCRAPE => self.serve_scrape(index, now),
                    PENDING => self.on_header(index, now),
                    CHECK => self.on_check(index, now),
                    _ => {}
                }
            }
            self.ready = ready; // keep its capacity for the next pass
            for i in 0..self.listeners_ready.len() {
                if let Some(&route) = self.listeners_ready.get(i) {
                    self.accept(route, now);
                }
            }
            if scrape {
                self.accept_scrapes(now);
            }
            self.summarize(now);
        }
    }

    fn active(&self) -> usize {
        self.conns.len() + self.pending.len()
    }

    /// Step 1: re-resolution and health checks when due; drop headers and
    /// checks that ran out of time.
    fn scheduled(&mut self, now: Instant) {
        if let Some((every, next)) = &mut self.resolve {
            if *next <= now {
                for r in &mut self.shared.routes {
                    health::re_resolve(&r.name, &mut r.pool);
                }
                *next = Instant::now() + *every;
            }
        }
        if let Some((every, next)) = &mut self.health_check {
            if *next <= now {
                *next = now + *every;
                let in_flight: Vec<(usize, SocketAddr)> = self.checks.iter().map(|(_, c)| (c.route, c.addr)).collect();
                for (i, r) in self.shared.routes.iter_mut().enumerate() {
                    for check in health::start_checks(i, &r.name, &mut r.pool, &in_flight, self.shared.connect_timeout, now) {
                        self.checks.insert(check);
                    }
                }
            }
        }
        let routes = &mut self.shared.routes;
        self.checks.retain(|_, c| {
            if c.deadline > now {
                return true;
            }
            if let Some(r) = routes.get_mut(c.route) {
                health::log_check_failed(&r.name, c.addr, "timed out");
                r.pool.record(&r.name, c.addr, false, now, false);
            }
            false
        });
        self.pending.retain(|_, p| {
            if p.deadline > now {
                return true;
            }
            if let Some(r) = routes.get_mut(p.route) {
                let reason = Reason::BadProxyHeader("no PROXY header in time".into());
                close_early(&mut r.stats, &r.name, p.id, p.peer, None, &reason);
            }
            false
        });
    }

    /// Step 2: interest and deadlines. Returns when to wake at the latest;
    /// fills `expired` with connections whose deadline has passed.
    ///
    /// Waiting costs in proportion to the sockets watched (WasmEdge's
    /// poll_oneoff makes one epoll_ctl per subscription per call, poll()
    /// scans its array), so thousands of quiet connections would tax every
    /// wake-up of the few busy ones. So: a *full* pass watches everything;
    /// a *busy* pass watches only the connections in `busy` (new, or active
    /// within `QUIET_AFTER`) plus listeners and the rest. Full passes happen
    /// whenever no connection is busy (then the loop blocks on everything, as
    /// a plain loop would) and, while some are, at an interval that keeps
    /// their cost a small share of the time (`FULL_PASS_*`).
    fn register(&mut self, now: Instant) -> Instant {
        self.expired.clear();
        let quiet_since = now.checked_sub(QUIET_AFTER).unwrap_or(now);
        let conns = &mut self.conns;
        // Drop from `busy` what closed (or whose key now holds another) and what went quiet.
        self.busy.retain(|&(key, id)| match conns.get_mut(key) {
            Some(c) if c.id() == id => {
                c.busy = !c.quiet_since(quiet_since);
                c.busy
            }
            _ => false,
        });
        let conns = &self.conns;
        // Full when nothing is busy, when everything is (there is nobody to
        // leave out: no short timer for catching up), or when one is due.
        let full = self.busy.is_empty() || self.busy.len() >= self.conns.len() || now >= self.next_full;
        self.full_pass = full;
        self.poller.begin(full);
        let mut wake_at = now + MAX_WAIT;

        if let Some(until) = self.accept_paused_until {
            if until <= now {
                self.accept_paused_until = None;
            } else {
                wake_at = wake_at.min(until);
            }
        }
        // Listed even when not accepting (with no interest): a backend that
        // keeps watching unlisted sockets must hear "none".
        let accepting = self.accept_paused_until.is_none() && self.active() < self.max_conns;
        for (i, r) in self.shared.routes.iter().enumerate() {
            self.poller.add(r.listener.handle(), tok(LISTENER, i), accepting, false);
        }
        for next in [self.summary.as_ref().map(|s| s.next), self.health_check.map(|h| h.1), self.resolve.map(|r| r.1)].into_iter().flatten() {
            wake_at = wake_at.min(next);
        }

        let watch = |key: usize, conn: &Conn, poller: &mut Poller, expired: &mut Vec<usize>, wake_at: &mut Instant| {
            if let Some(deadline) = conn.deadline(self.idle_timeout) {
                if deadline <= now {
                    expired.push(key);
                    return;
                }
                *wake_at = (*wake_at).min(deadline);
            }
            // Every socket of a listed connection, even with no interest:
            // a backend that keeps watching unlisted sockets must hear "none".
            let want = conn.interest();
            let (r, w) = want.client;
            poller.add(conn.client().handle(), conn_token(key, Side::Client), r, w);
            let (r, w) = want.upstream;
            poller.add(conn.upstream().handle(), conn_token(key, Side::Upstream), r, w);
        };
        if full {
            for (key, conn) in conns {
                watch(key, conn, &mut self.poller, &mut self.expired, &mut wake_at);
            }
            self.next_full = now + FULL_PASS_MIN; // until the wait tells what a full pass costs
        } else {
            for &(key, _) in &self.busy {
                if let Some(conn) = conns.get(key) {
                    watch(key, conn, &mut self.poller, &mut self.expired, &mut wake_at);
                }
            }
            wake_at = wake_at.min(self.next_full);
        }
        for (key, p) in &self.pending {
            self.poller.add(p.client.handle(), tok(PENDING, key), true, false);
            wake_at = wake_at.min(p.deadline);
        }
        for (key, c) in &self.checks {
            self.poller.add(c.stream.handle(), tok(CHECK, key), false, true);
            wake_at = wake_at.min(c.deadline);
        }

        if let Some(metrics) = &self.metrics {
            self.poller.add(metrics.handle(), tok(METRICS, 0), self.scrapes.len() < MAX_SCRAPES, false);
        }
        // A scraper that stalls is simply dropped at its deadline.
        self.scrapes.retain(|_, s| s.deadline > now);
        for (key, s) in &self.scrapes {
            let (r, w) = s.interest();
            self.poller.add(s.stream().handle(), tok(SCRAPE, key), r, w);
            wake_at = wake_at.min(s.deadline);
        }
        wake_at
    }

    /// Step 3: connect and idle timeouts.
    fn expire(&mut self, now: Instant) {
        let expired = std::mem::take(&mut self.expired);
        for &key in &expired {
            self.dispatch(key, now, |conn, cx| conn.on_timeout(cx));
        }
        self.expired = expired;
    }

    /// Run `f` on connection `key`, count the bytes it moved; if it reports
    /// the end, log, count and close it.
    fn dispatch(&mut self, key: usize, now: Instant, f: impl FnOnce(&mut Conn, &mut Context<'_>) -> Result<(), Reason>) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Some(mut cx) = self.shared.context(conn.route, now) else { return };
        let before = conn.bytes();
        let result = f(conn, &mut cx);
        let after = conn.bytes();
        cx.stats.to_upstream += after.0 - before.0;
        cx.stats.to_client += after.1 - before.1;
        if result.is_ok() && !conn.busy {
            conn.busy = true;
            self.busy.push((key, conn.id()));
        }
        if let Err(reason) = result {
            conn.log_close(&reason, cx.route, now);
            cx.stats.closed(reason.name());
            if let Some(upstream) = conn.relaying_to() {
                cx.upstreams.closed(upstream);
            }
            if reason.is_abort() {
                conn.abort();
            }
            self.conns.try_remove(key); // dropping it closes both sockets
        }
    }

    /// Step 5: take new clients of `route` until its backlog is empty, the
    /// batch is used up, or the connection limit is reached.
    fn accept(&mut self, route: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.accept_paused_until.is_some() {
                return;
            }
            if self.active() >= self.max_conns {
                Record::new(Level::Debug, "limit").num("max_conns", self.max_conns as u64).str("action", "pausing accepts").emit();
                return; // the listeners are left out of the interest until a slot frees
            }
            let Some(r) = self.shared.routes.get_mut(route) else { return };
            let (client, peer) = match r.listener.accept() {
                Ok(pair) => pair,
                Err(e) if sys::would_block(&e) => return,
                // The client gave up before we got to it: nothing to pause for.
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) => {
                    self.pause_accepting(&e, now);
                    return;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            r.stats.connections += 1;
            r.stats.active += 1;
            if r.accept_proxy {
                let reader = proxy_header::Reader::default();
                self.pending.insert(Pending { id, route, client, peer, reader, deadline: now + self.header_timeout });
            } else {
                self.admit(route, id, client, peer, None, now);
            }
        }
    }

    /// A client is here (and has sent its PROXY header, if its route wants
    /// one): check it against the route's lists and start its upstream connect.
    fn admit(&mut self, route: usize, id: u64, client: Stream, peer: SocketAddr, header: Option<Received>, now: Instant) {
        let Some(r) = self.shared.routes.get_mut(route) else { return };
        let (from, to, rest) = match header {
            Some(Received { addrs: Some((from, to)), rest }) => (from, Some(to), rest),
            Some(Received { addrs: None, rest }) => (peer, None, rest),
            None => (peer, None, Vec::new()),
        };
        if !r.acl.permits(from.ip()) {
            close_early(&mut r.stats, &r.name, id, from, None, &Reason::Denied);
            return; // dropping `client` closes it: no upstream ever saw it
        }
        let mut early = match r.send_proxy {
            Some(v) => proxy_header::encode(v, from, to.or_else(|| client.local_addr().ok()).unwrap_or(peer)),
            None => Vec::new(),
        };
        early.extend_from_slice(&rest);
        let Some(mut cx) = self.shared.context(route, now) else { return };
        match Conn::start(id, route, client, from, &early, &mut cx) {
            Ok(mut conn) => {
                conn.busy = true; // connecting: watched in every pass
                let id = conn.id();
                let key = self.conns.insert(conn);
                self.busy.push((key, id));
            }
            Err((_client, upstream, reason)) => {
                close_early(cx.stats, cx.route, id, from, upstream, &reason);
                // No descriptor for the upstream socket: let the next
                // clients wait in the backlog instead of being dropped too.
                if let Reason::ConnectFailed(e) = &reason {
                    if sys::out_of_descriptors(e) {
                        self.pause_accepting(e, now);
                    }
                }
            }
        }
    }

    /// An accept-proxy client sent something: read at most the rest of its
    /// header; once complete, admit it.
    fn on_header(&mut self, key: usize, now: Instant) {
        let Some(p) = self.pending.get_mut(key) else { return };
        let mut buf = [0u8; 512];
        let outcome = loop {
            let want = p.reader.want().min(buf.len());
            let Some(chunk) = buf.get_mut(..want) else { break Err("header buffer".to_string()) };
            match p.client.read(chunk) {
                Ok(0) => break Err("the client closed before its PROXY header ended".to_string()),
                Ok(n) => match p.reader.push(chunk.get(..n).unwrap_or_default()) {
                    Ok(Some(received)) => break Ok(Some(received)),
                    Ok(None) => continue,
                    Err(why) => break Err(why),
                },
                Err(e) if sys::would_block(&e) => break Ok(None),
                Err(e) => break Err(e.to_string()),
            }
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(received)) => {
                let Some(p) = self.pending.try_remove(key) else { return };
                self.admit(p.route, p.id, p.client, p.peer, Some(received), now);
            }
            Err(why) => {
                let Some(p) = self.pending.try_remove(key) else { return };
                if let Some(r) = self.shared.routes.get_mut(p.route) {
                    close_early(&mut r.stats, &r.name, p.id, p.peer, None, &Reason::BadProxyHeader(why));
                }
            }
        }
    }

    /// A health-check connect finished: its outcome goes to the pool.
    fn on_check(&mut self, key: usize, now: Instant) {
        let Some(check) = self.checks.try_remove(key) else { return };
        let result = check.stream.finish_connect();
        if let Some(r) = self.shared.routes.get_mut(check.route) {
            if let Err(e) = &result {
                health::log_check_failed(&r.name, check.addr, &e.to_string());
            }
            r.pool.record(&r.name, check.addr, result.is_ok(), now, false);
        }
    }

    /// Stop accepting for `ACCEPT_PAUSE`: the listener stays readable while
    /// the failure lasts (EMFILE, mostly), and the loop must not spin on it.
    fn pause_accepting(&mut self, e: &io::Error, now: Instant) {
        Record::new(Level::Warn, "accept-paused")
            .str("error", e)
            .num("for_ms", ACCEPT_PAUSE.as_millis() as u64)
            .emit();
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
    }

    fn accept_scrapes(&mut self, now: Instant) {
        let Some(metrics) = &self.metrics else { return };
        while self.scrapes.len() < MAX_SCRAPES {
            match metrics.accept() {
                Ok((stream, _)) => {
                    self.scrapes.insert(Scrape::new(stream, now));
                }
                Err(e) if sys::would_block(&e) || transient_accept_error(&e) => return,
                Err(e) => {
                    Record::new(Level::Warn, "accept-failed").str("listener", "metrics").str("error", e).emit();
                    return;
                }
            }
        }
    }

    fn serve_scrape(&mut self, key: usize, now: Instant) {
        let (routes, iterations, wakeups) = (&self.shared.routes, self.iterations, self.wakeups);
        let body = || {
            let views: Vec<RouteView<'_>> = routes.iter().map(|r| RouteView { name: &r.name, stats: &r.stats, pool: &r.pool }).collect();
            metrics::render(&views, iterations, wakeups, now)
        };
        if let Some(scrape) = self.scrapes.get_mut(key) {
            if !scrape.on_ready(body) || scrape.deadline <= now {
                self.scrapes.try_remove(key);
            }
        }
    }

    /// The periodic one-line summary, when it is due.
    fn summarize(&mut self, now: Instant) {
        let active = self.active() as u64;
        let Some(summary) = &mut self.summary else { return };
        if now < summary.next {
            return;
        }
        let secs = summary.every.as_secs_f64();
        let routes = &self.shared.routes;
        let (up, down) = (routes.iter().map(|r| r.stats.to_upstream).sum(), routes.iter().map(|r| r.stats.to_client).sum());
        Record::new(Level::Info, "summary")
            .num("active", active)
            .num("connections", routes.iter().map(|r| r.stats.connections).sum())
            .num("to_upstream", up)
            .num("to_client", down)
            .num("to_upstream_per_s", ((up - summary.last.0) as f64 / secs) as u64)
            .num("to_client_per_s", ((down - summary.last.1) as f64 / secs) as u64)
            .emit();
        summary.last = (up, down);
        while summary.next <= now {
            summary.next += summary.every;
        }
    }
}

/// Close a client that never got as far as a `Conn` (denied, a bad or
/// missing PROXY header, no upstream to try): count it and log it.
fn close_early(stats: &mut Stats, route: &str, id: u64, client: SocketAddr, upstream: Option<SocketAddr>, reason: &Reason) {
    stats.closed(reason.name());
    conn::log_close(id, route, client, upstream, (0, 0), Duration::ZERO, reason);
}

fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
