//! DNS inside the loop: a stub resolver that never blocks it.
//!
//! A lookup is answered at once from a literal address, `/etc/hosts` or the
//! cache; otherwise it asks the nameservers of resolv.conf (or
//! `--resolver`) over UDP, A and AAAA at once, one fresh socket per query
//! (a random source port and a random id each), and the loop watches those
//! sockets like any other. Names are tried as resolv.conf's `search` and
//! `ndots` say. A server that does not answer within `timeout` is left for
//! the next one, each asked `attempts` times; an answer too large for UDP is
//! asked again over TCP. Answers are cached for their TTL (at most an
//! hour), "no such name" for the zone's negative TTL, in a bounded table.
//! Lookups of one name at once share one set of queries.
//!
//! The loop drives it: `lookup` (answer now, or a `LookupId` to wait for),
//! `watch` (its sockets and their interest), `on_ready` and `expire`, then
//! `take_done` (finished lookups and their results).
//!
//! Beside it: `conf.rs` (resolv.conf and /etc/hosts), `message.rs` (DNS
//! messages, built and checked), `transport.rs` (a query on the wire, over
//! UDP or TCP).

mod conf;
pub mod message;
mod transport;

pub use conf::{Hosts, ResolvConf};
pub use message::Family;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slab::Slab;

use crate::log::{self, Level, Record};
use crate::sys::{Datagram, Handle, Poller, Stream};
use message::Answer;
use transport::{read_udp, step_tcp, Transport};

/// Names remembered at once; the soonest to expire goes first when full.
const MAX_CACHED: usize = 4096;

/// Why a name has no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such name (NXDOMAIN), or no address for it, after every search domain.
    NotFound,
    /// No server answered in time.
    Timeout,
    /// A server failed, or none could be asked.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("no such name"),
            Error::Timeout => f.write_str("no DNS answer in time"),
            Error::Failed(why) => write!(f, "DNS failed: {why}"),
        }
    }
}

pub type Addrs = Result<Vec<IpAddr>, Error>;

/// A lookup in progress, to wait for (its slab key, and a serial so that a
/// late result never reaches whoever holds the key next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupId {
    key: usize,
    serial: u64,
}

pub enum Lookup {
    Ready(Addrs),
    Pending(LookupId),
}

/// What one family's queries concluded, for the current candidate name.
#[derive(Clone, Debug)]
enum Found {
    Addrs(Vec<IpAddr>, Duration),
    NoName(Duration),
    Failed(Error),
}

/// One lookup: the name asked, the names to try, where it is.
struct Pending {
    serial: u64,
    name: String,
    candidates: Vec<String>,
    candidate: usize,
    v4: Option<Found>,
    v6: Option<Found>,
}

/// One question of a lookup, as it passes from server to server.
struct Ask {
    lookup: usize,
    serial: u64,
    family: Family,
    name: String,
    /// Sends so far, over every server: the next goes to `tries % servers`.
    tries: usize,
}

/// One question to one server, in flight.
struct Query {
    ask: Ask,
    id: u16,
    server: SocketAddr,
    transport: Transport,
    deadline: Instant,
}

struct Cached {
    addrs: Addrs,
    expires: Instant,
}

pub struct Resolver {
    conf: ResolvConf,
    hosts: Hosts,
    cache: HashMap<String, Cached>,
    lookups: Slab<Pending>,
    queries: Slab<Query>,
    done: Vec<(LookupId, Addrs)>,
    serial: u64,
    random: u64,
}

impl Resolver {
    pub fn new(conf: ResolvConf, hosts: Hosts) -> Resolver {
        // Ids need only be hard to guess from outside: the clock's nanoseconds
        // seed a xorshift (the source port, chosen by the system, adds more).
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        Resolver {
            conf,
            hosts,
            cache: HashMap::new(),
            lookups: Slab::new(),
            queries: Slab::new(),
            done: Vec::new(),
            serial: 0,
            random: seed,
        }
    }

    pub fn conf(&self) -> &ResolvConf {
        &self.conf
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// The addresses of `name` now, or a lookup to wait for.
    pub fn lookup(&mut self, name: &str, now: Instant) -> Lookup {
        let name = name.to_ascii_lowercase();
        let bare = name.strip_suffix('.').unwrap_or(&name);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Lookup::Ready(Ok(vec![ip]));
        }
        let listed = self.hosts.lookup(bare);
        if !listed.is_empty() {
            return Lookup::Ready(Ok(listed));
        }
        if let Some(hit) = self.cache.get(&name) {
            if hit.expires > now {
                return Lookup::Ready(hit.addrs.clone());
            }
        }
        // The same name already being looked up: wait for that one.
        if let Some((key, p)) = self.lookups.iter().find(|(_, p)| p.name == name) {
            return Lookup::Pending(LookupId { key, serial: p.serial });
        }
        if self.conf.nameservers.is_empty() {
            return Lookup::Ready(Err(Error::Failed("no nameserver (none in /etc/resolv.conf, and no --resolver)".into())));
        }
        self.serial += 1;
        let candidates = self.conf.candidates(&name);
        let key = self.lookups.insert(Pending { serial: self.serial, name, candidates, candidate: 0, v4: None, v6: None });
        let id = LookupId { key, serial: self.serial };
        self.ask(key, now);
        Lookup::Pending(id)
    }

    /// How long `name`'s cached answer has left (what the allowlist DNS
    /// server tells its clients to keep it), if it is cached.
    pub fn ttl_left(&self, name: &str, now: Instant) -> Option<Duration> {
        self.cache.get(name).and_then(|c| c.expires.checked_duration_since(now))
    }

    /// Are there servers to ask? Without, names are left to the runtime's
    /// getaddrinfo (`sys::resolve`).
    pub fn configured(&self) -> bool {
        !self.conf.nameservers.is_empty()
    }

    /// Look `name` up and wait for the answer, driving the queries with a
    /// poller of its own: for the start, before the loop runs.
    pub fn lookup_now(&mut self, name: &str) -> io::Result<Addrs> {
        let id = match self.lookup(name, Instant::now()) {
            Lookup::Ready(result) => return Ok(result),
            Lookup::Pending(id) => id,
        };
        let mut poller = Poller::new()?;
        loop {
            let now = Instant::now();
            self.expire(now);
            if let Some(pos) = self.done.iter().position(|(done, _)| *done == id) {
                return Ok(self.done.swap_remove(pos).1);
            }
            poller.begin(true);
            let due = self.watch(|key, handle, r, w| poller.add(handle, key, r, w)).unwrap_or(now);
            poller.wait(due.saturating_duration_since(now).max(Duration::from_millis(1)))?;
            let ready: Vec<usize> = poller.events().map(|e| e.token).collect();
            for key in ready {
                self.on_ready(key, Instant::now());
            }
        }
    }

    /// `host:port`'s addresses for an upstream, now: with this resolver
    /// when it has servers to ask (driving its queries itself), else with
    /// the runtime's getaddrinfo. For the start, and for a reload.
    pub fn upstream_now(&mut self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if !self.configured() {
            return crate::sys::resolve(host, port);
        }
        match self.lookup_now(host)? {
            Ok(ips) => Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    /// Finished lookups since the last call.
    pub fn take_done(&mut self) -> Vec<(LookupId, Addrs)> {
        std::mem::take(&mut self.done)
    }

    /// Every query socket with its interest (read, write), keyed for
    /// `on_ready`; and the nearest deadline.
    pub fn watch(&self, mut add: impl FnMut(usize, Handle, bool, bool)) -> Option<Instant> {
        for (key, q) in &self.queries {
            match &q.transport {
                Transport::Udp(d) => add(key, d.handle(), true, false),
                Transport::Tcp { stream, out, sent, .. } => add(key, stream.handle(), true, *sent < out.len()),
            }
        }
        self.queries.iter().map(|(_, q)| q.deadline).min()
    }

    /// Query `key`'s socket is ready.
    pub fn on_ready(&mut self, key: usize, now: Instant) {
        let Some(q) = self.queries.get_mut(key) else { return };
        let outcome = match &mut q.transport {
            Transport::Udp(sock) => read_udp(sock, q.id, q.ask.family),
            Transport::Tcp { stream, out, sent, read } => step_tcp(stream, out, sent, read, q.id, q.ask.family),
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(answer)) => self.answered(key, answer, now),
            Err(e) => self.retry(key, Error::Failed(crate::sys::describe(&e)), now),
        }
    }

    /// Queries past their deadline go to the next server, or give up.
    pub fn expire(&mut self, now: Instant) {
        let due: Vec<usize> = self.queries.iter().filter(|(_, q)| q.deadline <= now).map(|(k, _)| k).collect();
        for key in due {
            self.retry(key, Error::Timeout, now);
        }
    }

    /// Start the A and AAAA queries of lookup `key`'s current candidate.
    fn ask(&mut self, key: usize, now: Instant) {
        let Some(p) = self.lookups.get_mut(key) else { return };
        let Some(name) = p.candidates.get(p.candidate).cloned() else { return };
        p.v4 = None;
        p.v6 = None;
        let serial = p.serial;
        for family in [Family::V4, Family::V6] {
            self.send(Ask { lookup: key, serial, family, name: name.clone(), tries: 0 }, now);
        }
    }

    /// Send `ask` to server number `ask.tries % servers`, over UDP; on a
    /// failure to even send, move on to the next at once.
    fn send(&mut self, mut ask: Ask, now: Instant) {
        let servers = self.conf.nameservers.len().max(1);
        while ask.tries < servers * self.conf.attempts {
            let Some(&server) = self.conf.nameservers.get(ask.tries % servers) else { break };
            ask.tries += 1;
            let id = self.next_id();
            let bytes = match message::query(id, &ask.name, ask.family) {
                Ok(b) => b,
                Err(why) => return self.found(ask.lookup, ask.family, Found::Failed(Error::Failed(why)), now),
            };
            let sent = Datagram::connect(server).and_then(|sock| sock.send(&bytes).map(|_| sock));
            match sent {
                Ok(sock) => {
                    let q = Query { ask, id, server, transport: Transport::Udp(sock), deadline: now + self.conf.timeout };
                    trace_query(&q, "udp");
                    self.queries.insert(q);
                    return;
                }
                Err(e) => Record::new(Level::Debug, "dns-send-failed").str("server", server).str("error", e).emit(),
            }
        }
        self.found(ask.lookup, ask.family, Found::Failed(Error::Failed("no nameserver could be asked".into())), now);
    }

    /// Query `key` failed (`why`): ask the next server, or conclude.
    fn retry(&mut self, key: usize, why: Error, now: Instant) {
        let Some(q) = self.queries.try_remove(key) else { return };
        let servers = self.conf.nameservers.len().max(1);
        if q.ask.tries < servers * self.conf.attempts {
            self.send(q.ask, now);
        } else {
            self.found(q.ask.lookup, q.ask.family, Found::Failed(why), now);
        }
    }

    fn answered(&mut self, key: usize, answer: Answer, now: Instant) {
        match answer {
            Answer::Addrs(addrs, ttl) if addrs.is_empty() => self.conclude_query(key, Found::NoName(ttl), now),
            Answer::Addrs(addrs, ttl) => self.conclude_query(key, Found::Addrs(addrs, ttl), now),
            Answer::NoSuchName(ttl) => self.conclude_query(key, Found::NoName(ttl), now),
            Answer::Failed(why) => self.retry(key, Error::Failed(why), now),
            Answer::Truncated => self.over_tcp(key, now),
        }
    }

    /// A truncated answer: ask the same server the same question over TCP.
    fn over_tcp(&mut self, key: usize, now: Instant) {
        let Some(q) = self.queries.get_mut(key) else { return };
        if matches!(q.transport, Transport::Tcp { .. }) {
            return self.retry(key, Error::Failed("a truncated answer over TCP".into()), now);
        }
        let bytes = match message::query(q.id, &q.ask.name, q.ask.family) {
            Ok(b) => b,
            Err(why) => return self.retry(key, Error::Failed(why), now),
        };
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        match Stream::connect(q.server) {
            Ok(stream) => {
                trace_query(q, "tcp");
                q.transport = Transport::Tcp { stream, out, sent: 0, read: Vec::new() };
                q.deadline = now + self.conf.timeout;
            }
            Err(e) => self.retry(key, Error::Failed(crate::sys::describe(&e)), now),
        }
    }

    fn conclude_query(&mut self, key: usize, found: Found, now: Instant) {
        if let Some(q) = self.queries.try_remove(key) {
            if self.lookups.get(q.ask.lookup).is_some_and(|p| p.serial == q.ask.serial) {
                self.found(q.ask.lookup, q.ask.family, found, now);
            }
        }
    }

    /// One family of lookup `key` is settled; once both are, conclude.
    fn found(&mut self, key: usize, family: Family, found: Found, now: Instant) {
        let Some(p) = self.lookups.get_mut(key) else { return };
        match family {
            Family::V4 => p.v4 = Some(found),
            Family::V6 => p.v6 = Some(found),
        }
        let (Some(v4), Some(v6)) = (&p.v4, &p.v6) else { return };
        let mut addrs = Vec::new();
        let mut ttl = message::MAX_TTL;
        for f in [v4, v6] {
            if let Found::Addrs(a, t) = f {
                addrs.extend_from_slice(a);
                ttl = ttl.min(*t);
            }
        }
        let result = if !addrs.is_empty() {
            Ok(addrs) // IPv4 first: WasmEdge resolves and connects IPv4 best
        } else {
            match (v4, v6) {
                (Found::NoName(a), Found::NoName(b)) => {
                    ttl = (*a).min(*b);
                    if p.candidate + 1 < p.candidates.len() {
                        p.candidate += 1;
                        return self.ask(key, now);
                    }
                    Err(Error::NotFound)
                }
                (Found::Failed(Error::Timeout), _) | (_, Found::Failed(Error::Timeout)) => Err(Error::Timeout),
                (Found::Failed(e), _) | (_, Found::Failed(e)) => Err(e.clone()),
                _ => Err(Error::NotFound),
            }
        };
        let Some(p) = self.lookups.try_remove(key) else { return };
        if !matches!(result, Err(Error::Timeout | Error::Failed(_))) {
            self.remember(p.name.clone(), result.clone(), now + ttl);
        }
        if log::tracing() {
            let shown = match &result {
                Ok(a) => a.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(","),
                Err(e) => e.to_string(),
            };
            log::trace_line(format_args!("resolve({})", p.name), format_args!("{shown}"));
        }
        self.done.push((LookupId { key, serial: p.serial }, result));
    }

    fn remember(&mut self, name: String, addrs: Addrs, expires: Instant) {
        if self.cache.len() >= MAX_CACHED {
            let now = Instant::now();
            self.cache.retain(|_, c| c.expires > now);
            if self.cache.len() >= MAX_CACHED {
                if let Some(first) = self.cache.iter().min_by_key(|(_, c)| c.expires).map(|(n, _)| n.clone()) {
                    self.cache.remove(&first);
                }
            }
        }
        self.cache.insert(name, Cached { addrs, expires });
    }

    fn next_id(&mut self) -> u16 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        (x >> 24) as u16
    }
}

fn trace_query(q: &Query, over: &str) {
    if log::tracing() {
        log::trace_line(format_args!("dns_query({} {}, id={}, {over} {})", q.ask.name, q.ask.family.name(), q.id, q.server), format_args!("sent"));
    }
}
