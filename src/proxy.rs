//! The readiness loop: one thread, one `Poller`, every socket.
//!
//! Each pass:
//! 1. derive interest from state: the listener while below the connection
//!    limit, and for every connection what its directions can use now;
//!    collect the nearest deadline (connect, idle or scrape timeout, summary);
//! 2. handle whatever is past its deadline;
//! 3. wait (never longer than `MAX_WAIT`, never forever);
//! 4. hand each ready socket to its owner; accept last, so a slot freed in
//!    this pass is not reused under a stale event.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::config::{Config, Dump};
use crate::conn::{self, Conn, Context, Reason, Side, Upstreams};
use crate::log::{Level, Record};
use crate::metrics::{Scrape, Stats};
use crate::relay::BufferPool;
use crate::sys::{self, Event, Listener, Poller};

/// Tokens: connections are `key * 2 + side`; scrapes are `SCRAPE | key`.
const LISTENER: usize = usize::MAX;
const METRICS: usize = usize::MAX - 1;
const SCRAPE: usize = 1 << (usize::BITS - 2);
/// An upper bound on one wait, so the loop always wakes to check its timers.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Accepts per wake-up: a flood of new clients must not starve the others.
const ACCEPT_BATCH: usize = 64;
/// After an accept error such as EMFILE (no descriptors left), stop accepting
/// for this long instead of spinning on a listener that stays readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Spare buffers kept for reuse (memory held by an idle proxy: this many
/// times the buffer size).
const SPARE_BUFFERS: usize = 64;
/// Metrics requests served at once; more wait in the backlog.
const MAX_SCRAPES: usize = 16;

/// The periodic summary line (`--summary-interval`).
struct Summary {
    every: Duration,
    next: Instant,
    /// Byte counters at the last summary, for the rates.
    last: (u64, u64),
}

/// What every connection borrows, kept apart from the connection table so
/// both can be borrowed at once.
struct Shared {
    route: String,
    upstreams: Upstreams,
    pool: BufferPool,
    stats: Stats,
    dump: Dump,
}

impl Shared {
    fn context(&mut self, now: Instant) -> Context<'_> {
        Context {
            upstreams: &self.upstreams,
            pool: &mut self.pool,
            stats: &mut self.stats,
            route: &self.route,
            dump: self.dump,
            now,
        }
    }
}

pub struct Proxy {
    listener: Listener,
    shared: Shared,
    conns: Slab<Conn>,
    poller: Poller,
    idle_timeout: Option<Duration>,
    max_conns: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    metrics: Option<Listener>,
    scrapes: Slab<Scrape>,
    summary: Option<Summary>,
    /// Reused between passes so the loop does not allocate.
    ready: Vec<Event>,
    expired: Vec<usize>,
}

fn token(key: usize, side: Side) -> usize {
    key * 2 + (side == Side::Upstream) as usize
}

fn from_token(token: usize) -> (usize, Side) {
    (token / 2, if token % 2 == 1 { Side::Upstream } else { Side::Client })
}

impl Proxy {
    pub fn new(cfg: &Config, listener: Listener, upstreams: Vec<SocketAddr>, metrics: Option<Listener>) -> Proxy {
        // The route is named by the address it really listens on (LOCAL may say port 0).
        let route = listener.local_addr().unwrap_or(cfg.local).to_string();
        let now = Instant::now();
        Proxy {
            listener,
            shared: Shared {
                stats: Stats::new(route.clone(), &upstreams),
                route,
                upstreams: Upstreams { addrs: upstreams, connect_timeout: cfg.connect_timeout },
                pool: BufferPool::new(cfg.buffer_size, SPARE_BUFFERS),
                dump: cfg.dump,
            },
            conns: Slab::new(),
            poller: Poller::new(),
            idle_timeout: cfg.idle_timeout,
            max_conns: cfg.max_conns,
            next_id: 1,
            accept_paused_until: None,
            metrics,
            scrapes: Slab::new(),
            summary: cfg.summary_interval.map(|every| Summary { every, next: now + every, last: (0, 0) }),
            ready: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Runs until the poller itself fails (not for anything a peer does).
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.shared.stats.iterations += 1;
            let now = Instant::now();
            let wake_at = self.register(now);
            if !self.expired.is_empty() {
                self.expire(now);
                continue; // their interest changed: derive it again
            }
            self.poller.wait(wake_at.saturating_duration_since(now))?;

            self.ready.clear();
            self.ready.extend(self.poller.events());
            if !self.ready.is_empty() {
                self.shared.stats.wakeups += 1;
            }
            let now = Instant::now();
            let (mut accept, mut scrape) = (false, false);
            let ready = std::mem::take(&mut self.ready);
            for &ev in &ready {
                match ev.token {
                    LISTENER => accept = true,
                    METRICS => scrape = true,
                    t if t & SCRAPE != 0 => self.serve_scrape(t & !SCRAPE, now),
                    t => {
                        let (key, side) = from_token(t);
                        self.dispatch(key, now, |conn, cx| conn.on_ready(side, ev.readable, ev.writable, cx));
                    }
                }
            }
            self.ready = ready; // keep its capacity for the next pass
            if accept {
                self.accept(now);
            }
            if scrape {
                self.accept_scrapes(now);
            }
            self.summarize(now);
        }
    }

    /// Step 1: interest and deadlines. Returns when to wake at the latest;
    /// fills `expired` with connections whose deadline has passed.
    fn register(&mut self, now: Instant) -> Instant {
        self.poller.clear();
        self.expired.clear();
        let mut wake_at = now + MAX_WAIT;

        if let Some(until) = self.accept_paused_until {
            if until <= now {
                self.accept_paused_until = None;
            } else {
                wake_at = wake_at.min(until);
            }
        }
        if self.accept_paused_until.is_none() && self.conns.len() < self.max_conns {
            self.poller.add(self.listener.handle(), LISTENER, true, false);
        }
        if let Some(summary) = &self.summary {
            wake_at = wake_at.min(summary.next);
        }

        for (key, conn) in &self.conns {
            if let Some(deadline) = conn.deadline(self.idle_timeout) {
                if deadline <= now {
                    self.expired.push(key);
                    continue;
                }
                wake_at = wake_at.min(deadline);
            }
            let want = conn.interest();
            if want.client != (false, false) {
                let (r, w) = want.client;
                self.poller.add(conn.client().handle(), token(key, Side::Client), r, w);
            }
            if want.upstream != (false, false) {
                let (r, w) = want.upstream;
                self.poller.add(conn.upstream().handle(), token(key, Side::Upstream), r, w);
            }
        }

        if let Some(metrics) = &self.metrics {
            if self.scrapes.len() < MAX_SCRAPES {
                self.poller.add(metrics.handle(), METRICS, true, false);
            }
        }
        // A scraper that stalls is simply dropped at its deadline.
        self.scrapes.retain(|_, s| s.deadline > now);
        for (key, s) in &self.scrapes {
            let (r, w) = s.interest();
            self.poller.add(s.stream().handle(), SCRAPE | key, r, w);
            wake_at = wake_at.min(s.deadline);
        }
        wake_at
    }

    /// Step 2: connect and idle timeouts.
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
        let before = conn.bytes();
        let result = f(conn, &mut self.shared.context(now));
        let after = conn.bytes();
        self.shared.stats.to_upstream += after.0 - before.0;
        self.shared.stats.to_client += after.1 - before.1;
        if let Err(reason) = result {
            conn.log_close(&reason, &self.shared.route, now);
            self.shared.stats.closed(reason.name());
            if let Some(upstream) = conn.relaying_to() {
                self.shared.stats.upstream_closed(upstream);
            }
            if reason.is_abort() {
                conn.abort();
            }
            self.conns.remove(key); // dropping it closes both sockets
        }
    }

    /// Step 4: take new clients until the backlog is empty, the batch is
    /// used up, or the connection limit is reached.
    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.accept_paused_until.is_some() {
                return;
            }
            if self.conns.len() >= self.max_conns {
                Record::new(Level::Debug, "limit").num("max_conns", self.max_conns as u64).str("action", "pausing accepts").emit();
                return; // the listener is left out of the interest until a slot frees
            }
            let (client, client_addr) = match self.listener.accept() {
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
            self.shared.stats.connections += 1;
            match Conn::start(id, client, client_addr, &mut self.shared.context(now)) {
                Ok(conn) => {
                    self.conns.insert(conn);
                }
                Err((_client, upstream, e)) => {
                    // No descriptor for the upstream socket: let the next
                    // clients wait in the backlog instead of being dropped too.
                    if sys::out_of_descriptors(&e) {
                        self.pause_accepting(&e, now);
                    }
                    let reason = Reason::ConnectFailed(e);
                    self.shared.stats.closed(reason.name());
                    conn::log_close(id, &self.shared.route, client_addr, upstream, (0, 0), Duration::ZERO, &reason);
                }
            }
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
        let active = self.conns.len();
        if let Some(scrape) = self.scrapes.get_mut(key) {
            if !scrape.on_ready(&self.shared.stats, active) || scrape.deadline <= now {
                self.scrapes.remove(key);
            }
        }
    }

    /// The periodic one-line summary, when it is due.
    fn summarize(&mut self, now: Instant) {
        let Some(summary) = &mut self.summary else { return };
        if now < summary.next {
            return;
        }
        let secs = summary.every.as_secs_f64();
        let (up, down) = (self.shared.stats.to_upstream, self.shared.stats.to_client);
        Record::new(Level::Info, "summary")
            .num("active", self.conns.len() as u64)
            .num("connections", self.shared.stats.connections)
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

fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
