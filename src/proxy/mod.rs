//! The readiness loop: one thread, one `Poller`, every socket of every route.
//!
//! Each pass:
//! 1. scheduled work, when due: DNS re-resolution and health-check connects
//!    (`health`), and dropping whatever is past its deadline that has no
//!    connection yet (a front that did not say enough in time, a check not
//!    answered);
//! 2. derive interest from state: each door's listener while below the
//!    connection limit, and for every connection what its directions can use
//!    now; collect the nearest deadline. Connections quiet for `QUIET_AFTER`
//!    are left out of most passes while others are busy (see `register`);
//!    every pass includes them when nothing else is going on;
//! 3. handle connections past their deadline (connect or idle timeout);
//! 4. wait (never longer than `MAX_WAIT`, never forever);
//! 5. hand each ready socket to its owner; accept last, so a slot freed in
//!    this pass is not reused under a stale event.
//!
//! Beside it: `state.rs` (what the loop keeps per listen address and per
//! route), `token.rs` (whose socket an event is), `interest.rs` (step 2),
//! `busy.rs` (who every pass watches), `admission.rs` (new clients through
//! their `front`, until they are connections), `chores.rs` (checks,
//! re-resolution, scrapes, the summary) and `reload.rs` (the routes file,
//! applied again while running).

use std::io;
use std::time::{Duration, Instant};

use slab::Slab;

mod admin;
mod admission;
mod answering;
mod asking;
mod budgets;
mod datagrams;
mod interest;
mod parked;
mod busy;
mod chores;
mod reload;
mod state;
mod token;

pub use state::{Bound, Door, Keys, RouteState, Served};
use state::{watch, Summary, Watch};

use busy::Busy;
use state::Shared;
use token::{Kind, Token};

use crate::pool::FailPolicy;
use crate::route::RouteSpec;
use crate::limits::Budget;
use crate::settings::Config;
use crate::close::Reason;
use crate::conn::{Conn, Context};
use crate::dns::{LookupId, Resolver};
use crate::front::Front;
use crate::health::Check;
use crate::metrics::{LoopCounts, Reloads};
use crate::served::Scrape;
use crate::relay::Buffers;
use crate::log::Record;
use crate::sys::{self, Event, Poller};

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
/// Metrics and admin requests served at once; more wait in the backlog.
const MAX_SCRAPES: usize = 16;
/// A connection with no byte either way for this long is "quiet": while
/// others are busy, it is watched only in full passes, or in slices where
/// the poller lists afresh (`ROTATION`).
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
/// Where the poller lists afresh, a full pass's cost is estimated rather
/// than timed (its wait, after a lull, may well block): what each socket
/// costs stock WasmEdge, an epoll_ctl to list it and one in the next call
/// to drop it, with the rest of the pass (measured with 10,000 held: two
/// full passes a second took 11% of a core).
const FULL_PASS_PER_SOCKET: Duration = Duration::from_micros(6);
/// Where the poller lists afresh on every call (WasmEdge's poll_oneoff,
/// poll()), a busy pass also watches a slice of the quiet connections, so
/// that each is watched at least once per `ROTATION` while others are busy:
/// their cost is spread over the passes instead of falling on one full pass
/// (which, with thousands held open, was the p99 of the busy ones).
const ROTATION: Duration = Duration::from_millis(200);
/// ...but never more than `SLICE_RATE` sockets a second: each costs stock
/// WasmEdge an epoll_ctl to add it and one to drop it (about 3 us in all),
/// so 5,000 idle clients (10,000 sockets) each watched every 200 ms took 15%
/// of a core from a proxy that was otherwise nearly idle. At this rate they
/// take about 5%, and a round of them lasts 0.67 s, at most `ROTATION_MAX`:
/// how long a quiet connection that speaks may wait while others are busy.
const SLICE_RATE: f64 = 15_000.0;
const ROTATION_MAX: Duration = Duration::from_secs(1);
/// A busy pass waits at most this long, so that the slices go round while
/// the busy connections are silent. One that heard nothing (a lull: the
/// busy ones wait on something, a slow server, a client that stopped
/// reading, a connect) makes the next pass full, so that every quiet
/// connection is heard at once again, but no sooner than `FULL_PASS_*`
/// allows: a full pass over thousands of quiet ones costs an epoll_ctl each
/// on stock WasmEdge, and the pass after it as many again to drop them. With
/// one client that paused 10 ms between requests, a full pass at every
/// pause took 57% of a core for 46 requests/s.
const SLICE_WAIT: Duration = Duration::from_millis(10);

pub struct Proxy {
    /// One per listen address: its listener and how its routes are picked.
    doors: Vec<Door>,
    shared: Shared,
    conns: Slab<Conn>,
    /// Clients not yet connections (`front`).
    fronts: Slab<Front>,
    /// Names looked up inside the loop (forward routes' destinations, and
    /// upstream names on schedule).
    resolver: Resolver,
    /// Upstream names being looked up again: (lookup, route, upstream index).
    re_resolving: Vec<(LookupId, usize, usize)>,
    /// The routes in force, each with its index in `shared.routes`.
    specs: Vec<(RouteSpec, usize)>,
    /// The routes file, read again on schedule (`reload`).
    watch: Option<Watch>,
    /// How often the routes and secrets files are read again (`None`: never).
    reload_every: Option<Duration>,
    reloads: Reloads,
    /// SIGHUPs already handled.
    hups_seen: u32,
    /// For the pools of routes a reload adds.
    health: FailPolicy,
    checks: Slab<Check>,
    poller: Poller,
    idle_timeout: Option<Duration>,
    header_timeout: Duration,
    peek_timeout: Duration,
    /// How long open connections may finish after a stop request, and
    /// until when, once one came.
    drain: Duration,
    drain_until: Option<Instant>,
    max_conns: usize,
    /// The descriptors the process has: accepting stops while the next
    /// client could not have its upstream (`limits`).
    budget: Budget,
    /// A listener's backlog, for the listeners a reload adds.
    backlog: u32,
    next_id: u64,
    accept_paused_until: Option<Instant>,
    /// The metrics and admin listeners, and their requests in progress.
    served: Served,
    scrapes: Slab<Scrape>,
    summary: Option<Summary>,
    /// Scheduled work: (interval, next time).
    health_check: Option<(Duration, Instant)>,
    resolve: Option<(Duration, Instant)>,
    /// Passes, wake-ups and full passes, for the metrics.
    counts: LoopCounts,
    /// Connections watched in every pass.
    busy: Busy,
    /// Ask mode: the questions waiting for a person, the answers given and
    /// the grants they left (`crate::ask`; `asking.rs`).
    asks: crate::ask::Board,
    /// Budgets: what each client used of each, and what each budgeted
    /// connection counts toward, by connection id (`budgets.rs`).
    spending: crate::forward::budget::Spending,
    charging: budgets::Charging,
    /// Forward routes' idle connections to destinations, for the next
    /// plain request to the same host.
    parked: parked::Parked,
    /// When the next full pass (every connection watched) is due, and
    /// whether this pass is one.
    next_full: Instant,
    full_pass: bool,
    /// The earliest deadline of the connections a pass did not list, when
    /// the poller keeps what it was told (see `register`).
    untouched_due: Option<Instant>,
    /// Where the next slice of quiet connections starts (a slab key), when
    /// the last one was taken (`ROTATION`), and the fraction of a connection
    /// it was owed and did not take (so that many short passes together
    /// keep to `SLICE_RATE`).
    slice_from: usize,
    sliced_at: Instant,
    slice_owed: f64,
    /// The last busy pass's wait heard nothing: the next pass may be full.
    lull: bool,
    /// Reused between passes so the loop does not allocate.
    ready: Vec<Event>,
    expired: Vec<usize>,
    listeners_ready: Vec<usize>,
}

impl Proxy {
    /// `nodelay`: TCP_NODELAY really works on this runtime (`nagle::probe`);
    /// `budget`: the descriptors measured at start, `backlog` the listeners'.
    /// `keys`: the CA and the secrets (`state::Keys`); `served`: the metrics
    /// and admin listeners.
    pub fn new(cfg: &Config, (doors, routes): (Vec<Door>, Vec<RouteState>), resolver: Resolver, served: Served, nodelay: bool, (budget, backlog): (Budget, u32), mut keys: Keys) -> io::Result<Proxy> {
        let now = Instant::now();
        keys.secrets_text = keys.secrets_file.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
        crate::log::redact(keys.redactions());
        Ok(Proxy {
            doors,
            resolver,
            re_resolving: Vec::new(),
            // Routes are built in the order given: spec i is route i.
            specs: cfg.routes.iter().cloned().zip(0..).collect(),
            watch: watch(cfg.routes_file.as_deref(), cfg.reload_interval, &cfg.routes, now),
            reload_every: cfg.reload_interval,
            reloads: Reloads::default(),
            hups_seen: 0,
            health: FailPolicy { threshold: cfg.fail_threshold, cooldown: cfg.cooldown },
            shared: Shared {
                routes,
                buffers: Buffers::new(cfg.buffer_size, SPARE_BUFFERS),
                connect_timeout: cfg.connect_timeout,
                dump: cfg.dump,
                nodelay,
                coalesce: cfg.coalesce.cap(nodelay),
                keys,
            },
            conns: Slab::new(),
            fronts: Slab::new(),
            checks: Slab::new(),
            poller: Poller::new()?,
            idle_timeout: cfg.idle_timeout,
            header_timeout: cfg.proxy_header_timeout,
            peek_timeout: cfg.peek_timeout,
            drain: cfg.drain_timeout,
            drain_until: None,
            max_conns: budget.max_conns,
            budget,
            backlog,
            next_id: 1,
            accept_paused_until: None,
            served,
            scrapes: Slab::new(),
            summary: cfg.summary_interval.map(|every| Summary { every, next: now + every, last: (0, 0) }),
            // The first checks run at once: a dead upstream is known before the first client.
            health_check: cfg.health_check.map(|every| (every, now)),
            resolve: cfg.resolve_interval.map(|every| (every, now + every)),
            counts: LoopCounts::default(),
            busy: Busy::default(),
            parked: parked::Parked::default(),
            asks: crate::ask::Board::default(),
            spending: Default::default(),
            charging: Default::default(),
            next_full: now,
            full_pass: true,
            untouched_due: None,
            slice_from: 0,
            sliced_at: now,
            slice_owed: 0.0,
            lull: false,
            ready: Vec::new(),
            expired: Vec::new(),
            listeners_ready: Vec::new(),
        })
    }

    /// Runs until the poller itself fails (not for anything a peer does),
    /// or until asked to stop (natively: SIGTERM or SIGINT): then it stops
    /// accepting, lets open connections finish for up to `drain`, and
    /// returns; a second request stops it at once.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            self.counts.iterations += 1;
            let now = Instant::now();
            if self.stopping(now) {
                return Ok(());
            }
            self.scheduled(now);
            let wake_at = self.register(now);
            if !self.expired.is_empty() {
                self.expire(now);
                continue; // their interest changed: derive it again
            }
            crate::log::flush(); // this pass's lines, in one write, before blocking
            self.poller.wait(wake_at.saturating_duration_since(now))?;
            if Poller::KEEPS && self.full_pass && !self.busy.is_empty() {
                // Busy: this wait returned at once with work, so the pass's
                // length (from `now`) is the cost of watching everything.
                // Space full passes by it.
                let cost = now.elapsed();
                self.next_full = now + (cost * FULL_PASS_SHARE).clamp(FULL_PASS_MIN, FULL_PASS_MAX);
            }

            self.ready.clear();
            self.ready.extend(self.poller.events());
            self.lull = !self.full_pass && self.ready.is_empty();
            if !self.ready.is_empty() {
                self.counts.wakeups += 1;
            }
            let now = Instant::now();
            let mut scrape = false;
            self.listeners_ready.clear();
            let ready = std::mem::take(&mut self.ready);
            for &ev in &ready {
                let Some(kind) = Token::kind(ev.token) else { continue };
                match kind {
                    Kind::Conn(key, side) => {
                        self.dispatch(key, now, |conn, cx| conn.on_ready(side, ev, cx));
                    }
                    Kind::Listener(route) => self.listeners_ready.push(route),
                    Kind::Metrics => scrape = true,
                    Kind::Scrape(key) => self.serve_scrape(key, now),
                    Kind::Front(key) => self.on_front(key, now),
                    Kind::Check(key) => self.on_check(key, now),
                    Kind::Dns(key) => self.resolver.on_ready(key, now),
                    Kind::Answering(door, sub) => self.on_dns_server(door, sub, now),
                    Kind::Udp(door, sub) => self.on_udp(door, sub, now),
                }
            }
            self.on_resolved(now);
            self.ready = ready; // keep its capacity for the next pass
            for i in 0..self.listeners_ready.len() {
                if let Some(&door) = self.listeners_ready.get(i) {
                    self.accept(door, now);
                }
            }
            if scrape {
                self.accept_scrapes(now);
            }
            self.summarize(now);
        }
    }

    fn active(&self) -> usize {
        self.conns.len() + self.fronts.len()
    }

    /// Below `--max-conns`, with descriptors for one more client and its
    /// upstream beside those the accepted clients still need (one each).
    fn room(&self) -> bool {
        self.active() < self.max_conns && self.budget.room(sys::open_sockets(), self.fronts.len())
    }

    /// A stop was asked for: true when it is time to return (nothing left
    /// open, the drain time over, or a second request).
    fn stopping(&mut self, now: Instant) -> bool {
        let asked = sys::stop_requests();
        if asked == 0 {
            return false;
        }
        let until = *self.drain_until.get_or_insert_with(|| {
            Record::always("stopping").num("open", self.conns.len() as u64 + self.fronts.len() as u64)
                .str("action", format_args!("no new clients; open connections may finish for {}s", self.drain.as_secs_f64()))
                .emit();
            now + self.drain
        });
        let done = self.active() == 0 || now >= until || asked >= 2;
        if done {
            self.log_drafts();
            self.close_udp_flows(None, "stopped");
            Record::always("stopped")
                .num("left_open", self.active() as u64)
                .num("connections", self.shared.routes.iter().map(|r| r.stats.connections).sum())
                .num("to_upstream", self.shared.routes.iter().map(|r| r.stats.to_upstream).sum())
                .num("to_client", self.shared.routes.iter().map(|r| r.stats.to_client).sum())
                .str("why", if self.active() == 0 { "drained" } else if asked >= 2 { "asked twice" } else { "drain time over" })
                .emit();
        }
        done
    }

    /// Step 3: connect and idle timeouts.
    fn expire(&mut self, now: Instant) {
        self.parked.expire(now);
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
        let Some((mut cx, stats)) = self.shared.context(conn.route, now) else { return };
        let before = conn.bytes();
        let result = f(conn, &mut cx);
        let after = conn.bytes();
        stats.to_upstream += after.0 - before.0;
        stats.to_client += after.1 - before.1;
        let id = conn.id();
        // A budgeted connection's bytes count toward its budget as they move.
        let result = match (result, self.charging.is_empty()) {
            (Ok(()), false) => budgets::charge_bytes(&self.charging, &mut self.spending, id, (after.0 - before.0, after.1 - before.1), now),
            (result, _) => result,
        };
        if result.is_ok() {
            self.busy.add(key, conn.id());
        }
        if let Err(reason) = result {
            conn.log_close(&reason, &cx);
            let refused = reason.rule().zip(conn.asked_host()).map(|(rule, host)| (conn.route, conn.id(), host.to_string(), rule));
            stats.closed(reason.kind());
            if let Some(upstream) = conn.relaying_to() {
                cx.upstreams.closed(upstream);
            }
            conn.refuse(&reason);
            if reason.is_abort() {
                conn.abort();
            }
            self.charging.remove(&id);
            let conn = self.conns.try_remove(key); // dropping it closes both sockets
            self.busy.forget(key);
            if let (Some(conn), Reason::Answered) = (conn, reason) {
                self.next_request(conn, now); // the client's socket lives on
            }
            if let Some((route, id, asked, rule)) = refused {
                self.tunnel_refused(route, id, &asked, rule);
            }
        }
    }
}
