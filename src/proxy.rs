//! The readiness loop: one thread, one `Poller`, every socket.
//!
//! Each pass:
//! 1. derive interest from state: the listener while below the connection
//!    limit, and for every connection what its directions can use now;
//!    collect the nearest deadline (connect or idle timeout);
//! 2. handle connections whose deadline passed;
//! 3. wait (never longer than `MAX_WAIT`, never forever);
//! 4. hand each ready socket to its connection; accept last, so a slot freed
//!    in this pass is not reused under a stale event.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::config::Config;
use crate::conn::{Conn, Context, Reason, Side, Upstreams};
use crate::log::{event, notice};
use crate::relay::BufferPool;
use crate::sys::{self, Event, Listener, Poller};

/// The listener's token; connection tokens are `key * 2 + side`.
const LISTENER: usize = usize::MAX;
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

pub struct Proxy {
    listener: Listener,
    upstreams: Upstreams,
    conns: Slab<Conn>,
    poller: Poller,
    pool: BufferPool,
    idle_timeout: Option<Duration>,
    max_conns: usize,
    next_id: u64,
    accept_paused_until: Option<Instant>,
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
    pub fn new(cfg: &Config, listener: Listener, upstreams: Vec<SocketAddr>) -> Proxy {
        Proxy {
            listener,
            upstreams: Upstreams { addrs: upstreams, connect_timeout: cfg.connect_timeout },
            conns: Slab::new(),
            poller: Poller::new(),
            pool: BufferPool::new(cfg.buffer_size, SPARE_BUFFERS),
            idle_timeout: cfg.idle_timeout,
            max_conns: cfg.max_conns,
            next_id: 1,
            accept_paused_until: None,
            ready: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Runs until the poller itself fails (not for anything a peer does).
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            let wake_at = self.register(now);
            if !self.expired.is_empty() {
                self.expire(now);
                continue; // their interest changed: derive it again
            }
            self.poller.wait(wake_at.saturating_duration_since(now))?;

            self.ready.clear();
            self.ready.extend(self.poller.events());
            let now = Instant::now();
            let mut accept = false;
            for i in 0..self.ready.len() {
                let ev = self.ready[i];
                if ev.token == LISTENER {
                    accept = true;
                } else {
                    let (key, side) = from_token(ev.token);
                    self.dispatch(key, now, |conn, cx| conn.on_ready(side, ev.readable, ev.writable, cx));
                }
            }
            if accept {
                self.accept(now);
            }
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
        wake_at
    }

    /// Step 2: connect and idle timeouts.
    fn expire(&mut self, now: Instant) {
        for i in 0..self.expired.len() {
            let key = self.expired[i];
            self.dispatch(key, now, |conn, cx| conn.on_timeout(cx));
        }
    }

    /// Run `f` on connection `key`; if it reports the end, log and close it.
    fn dispatch(&mut self, key: usize, now: Instant, f: impl FnOnce(&mut Conn, &mut Context<'_>) -> Result<(), Reason>) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let mut cx = Context { upstreams: &self.upstreams, pool: &mut self.pool, now };
        if let Err(reason) = f(conn, &mut cx) {
            conn.log_close(&reason, now);
            self.conns.remove(key); // dropping it closes both sockets
        }
    }

    /// Step 4: take new clients until the backlog is empty, the batch is
    /// used up, or the connection limit is reached.
    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.conns.len() >= self.max_conns {
                return; // the listener is left out of the interest until a slot frees
            }
            let (client, client_addr) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if sys::would_block(&e) => return,
                // The client gave up before we got to it: nothing to pause for.
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) => {
                    notice!("accept failed: {e}; pausing accepts for {}ms", ACCEPT_PAUSE.as_millis());
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            let cx = Context { upstreams: &self.upstreams, pool: &mut self.pool, now };
            match Conn::start(id, client, client_addr, &cx) {
                Ok(conn) => {
                    self.conns.insert(conn);
                }
                Err((_client, e)) => {
                    event!("close #{id} client={client_addr} to_upstream=0 to_client=0 duration=0.000s reason=connect-failed error=\"{e}\"");
                }
            }
        }
    }
}

fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
