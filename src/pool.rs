//! A route's upstreams: which one a new connection tries, and which are down.
//!
//! Every address that a configured upstream resolves to is one server, as in
//! nginx. Health is passive (every connect's outcome counts) and, with
//! `--health-check`, also active (`health.rs` feeds its results in here):
//!
//! ```text
//!   up ──(threshold failures in a row)──> down ──(cool-down over)──> on trial
//!    ^                                                                 │
//!    └────────────(a connect succeeds)──────────┬──(one more failure)──┘ down again
//! ```
//! A server that comes back from its cool-down is tried by real clients
//! again; if its very next connect fails it goes straight back down.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::log::{Level, Record};
use crate::route::{Policy, Remote};

/// When failures take a server out of rotation: `--fail-threshold` failures
/// in a row, for `--cooldown`. (Active checks are `health::Check`.)
#[derive(Clone, Copy, Debug)]
pub struct FailPolicy {
    pub threshold: u32,
    pub cooldown: Duration,
}

/// How a connect to a server ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A client's connect succeeded: it relays to this server now.
    Relaying,
    /// A health check's connect succeeded.
    Reached,
    Failed,
}

/// A server's health changed (`Pool::record` says so; its caller logs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Back after failures.
    Up,
    /// `failures` in a row: skipped for `retry_in`.
    Down { failures: u32, retry_in: Duration },
}

impl Change {
    /// The warning line, for the route named `route` (its listen address).
    pub fn log(self, route: &str, addr: SocketAddr) {
        match self {
            Change::Up => Record::new(Level::Warn, "upstream-up").str("route", route).str("upstream", addr).emit(),
            Change::Down { failures, retry_in } => Record::new(Level::Warn, "upstream-down")
                .str("route", route)
                .str("upstream", addr)
                .num("failures", failures as u64)
                .str("retry_in", format_args!("{}s", retry_in.as_secs_f64()))
                .emit(),
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    /// Index of the configured upstream it was resolved from.
    pub remote: usize,
    /// Failed connects in a row.
    fails: u32,
    /// Skipped until then.
    down_until: Option<Instant>,
    /// Connections relaying to it now.
    pub active: u64,
    pub connects: u64,
    pub failures: u64,
}

impl Server {
    fn new(addr: SocketAddr, remote: usize) -> Server {
        Server { addr, remote, fails: 0, down_until: None, active: 0, connects: 0, failures: 0 }
    }

    pub fn is_up(&self, now: Instant) -> bool {
        self.down_until.is_none_or(|until| until <= now)
    }
}

pub struct Pool {
    pub remotes: Vec<Remote>,
    pub servers: Vec<Server>,
    policy: Policy,
    /// Round-robin position (also breaks least-conn ties fairly).
    cursor: usize,
    health: FailPolicy,
}

impl Pool {
    /// `resolved[i]` holds the addresses of `remotes[i]`.
    pub fn new(remotes: Vec<Remote>, resolved: Vec<Vec<SocketAddr>>, policy: Policy, health: FailPolicy) -> Pool {
        let servers = resolved
            .into_iter()
            .enumerate()
            .flat_map(|(i, addrs)| addrs.into_iter().map(move |a| Server::new(a, i)))
            .collect();
        Pool { remotes, servers, policy, cursor: 0, health }
    }

    /// A reload changed this pool: take the new upstreams and policy. A
    /// server whose address stays keeps its state (health, cool-down, open
    /// connections, counters); a new one starts fresh; a removed one is
    /// forgotten (its open connections finish on their own).
    pub fn reconfigure(&mut self, remotes: Vec<Remote>, resolved: Vec<Vec<SocketAddr>>, policy: Policy) {
        let mut old = std::mem::take(&mut self.servers);
        for (i, addrs) in resolved.into_iter().enumerate() {
            for a in addrs {
                let server = match old.iter().position(|s| s.addr == a) {
                    Some(k) => {
                        let mut s = old.swap_remove(k);
                        s.remote = i;
                        s
                    }
                    None => Server::new(a, i),
                };
                self.servers.push(server);
            }
        }
        self.remotes = remotes;
        self.policy = policy;
        self.cursor = 0;
    }

    /// The server a new connect should go to: healthy, not in `tried` (a
    /// bit per server index), chosen by the policy. None: nothing is left.
    pub fn pick(&mut self, now: Instant, tried: u64) -> Option<(usize, SocketAddr)> {
        // Every policy looks at the servers in turn, failover from the first,
        // the others from where the last pick left off (so ties rotate).
        let n = self.servers.len();
        let start = if self.policy == Policy::Failover { 0 } else { self.cursor };
        let mut candidates = (0..n)
            .map(|k| (start + k) % n)
            .filter_map(|i| self.servers.get(i).map(|s| (i, s)))
            .filter(|&(i, s)| s.is_up(now) && (i >= 64 || tried & (1 << i) == 0));
        let chosen = match self.policy {
            Policy::Failover | Policy::RoundRobin => candidates.next(),
            Policy::LeastConn => candidates.min_by_key(|(_, s)| s.active),
        }
        .map(|(i, s)| (i, s.addr));
        if let Some((i, _)) = chosen {
            self.cursor = i + 1;
        }
        chosen
    }

    /// How many servers are in their cool-down now.
    pub fn down_count(&self, now: Instant) -> usize {
        self.servers.iter().filter(|s| !s.is_up(now)).count()
    }

    /// A connect to `addr` finished (by a client or a health check).
    /// Returns what that changed in its health, for the caller to log.
    pub fn record(&mut self, addr: SocketAddr, outcome: Outcome, now: Instant) -> Option<Change> {
        let health = self.health;
        let s = self.servers.iter_mut().find(|s| s.addr == addr)?;
        if outcome != Outcome::Failed {
            if outcome == Outcome::Relaying {
                s.connects += 1;
                s.active += 1;
            }
            let was_down = s.fails >= health.threshold;
            s.fails = 0;
            s.down_until = None;
            return was_down.then_some(Change::Up);
        }
        s.failures += 1;
        s.fails = s.fails.saturating_add(1);
        if s.fails >= health.threshold && s.is_up(now) {
            s.down_until = Some(now + health.cooldown);
            return Some(Change::Down { failures: s.fails, retry_in: health.cooldown });
        }
        None
    }

    /// A connection relaying to `addr` closed.
    pub fn closed(&mut self, addr: SocketAddr) {
        if let Some(s) = self.servers.iter_mut().find(|s| s.addr == addr) {
            s.active = s.active.saturating_sub(1);
        }
    }

    /// New addresses for upstream `remote` (a re-resolution). Servers that
    /// stay keep their health and counters; the order follows the lookup.
    /// Returns whether anything changed.
    pub fn set_addrs(&mut self, remote: usize, addrs: &[SocketAddr]) -> bool {
        let old: Vec<SocketAddr> = self.servers.iter().filter(|s| s.remote == remote).map(|s| s.addr).collect();
        if old == addrs {
            return false;
        }
        let mut kept: Vec<Server> = Vec::new();
        let mut others: Vec<Server> = Vec::new();
        for s in self.servers.drain(..) {
            if s.remote == remote {
                kept.push(s);
            } else {
                others.push(s);
            }
        }
        let mut fresh: Vec<Server> = addrs
            .iter()
            .map(|&a| match kept.iter().position(|s| s.addr == a) {
                Some(i) => kept.swap_remove(i),
                None => Server::new(a, remote),
            })
            .collect();
        // Keep the configured order of upstreams: insert where this one's servers belong.
        let at = others.iter().position(|s| s.remote > remote).unwrap_or(others.len());
        let tail = others.split_off(at);
        others.append(&mut fresh);
        others.extend(tail);
        self.servers = others;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u16, policy: Policy) -> Pool {
        let remotes = (0..n).map(|i| Remote { host: "127.0.0.1".into(), port: 1000 + i }).collect();
        let resolved = (0..n).map(|i| vec![SocketAddr::from(([127, 0, 0, 1], 1000 + i))]).collect();
        Pool::new(remotes, resolved, policy, FailPolicy { threshold: 2, cooldown: Duration::from_secs(10) })
    }

    fn port(p: Option<(usize, SocketAddr)>) -> Option<u16> {
        p.map(|(_, a)| a.port())
    }

    #[test]
    fn a_reconfigured_pool_keeps_the_state_of_servers_that_stay() {
        let now = Instant::now();
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) = ("10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), "10.0.0.3:80".parse().unwrap());
        let remote = |h: &str| Remote { host: h.into(), port: 80 };
        let mut p = Pool::new(vec![remote("a"), remote("b")], vec![vec![a], vec![b]], Policy::Failover, FailPolicy { threshold: 1, cooldown: Duration::from_secs(60) });
        p.record(b, Outcome::Failed, now); // b is down
        p.record(a, Outcome::Relaying, now); // one open connection to a
        p.reconfigure(vec![remote("b"), remote("c")], vec![vec![b], vec![c]], Policy::LeastConn);
        assert_eq!(p.servers.iter().map(|s| s.addr).collect::<Vec<_>>(), vec![b, c]);
        assert!(!p.servers[0].is_up(now), "b keeps its cool-down");
        assert!(p.servers[1].is_up(now), "c is new and up");
        assert_eq!(p.policy, Policy::LeastConn);
        p.closed(a); // a's connection ends after the reload: nothing to count it on
        assert_eq!(p.pick(now, 0).map(|(_, addr)| addr), Some(c));
    }

    #[test]
    fn failover_takes_the_first_untried_and_skips_a_down_one() {
        let mut p = pool(3, Policy::Failover);
        let now = Instant::now();
        assert_eq!(port(p.pick(now, 0)), Some(1000));
        assert_eq!(port(p.pick(now, 0b1)), Some(1001), "the first was tried");
        assert_eq!(port(p.pick(now, 0b111)), None, "all tried");
        let a = p.servers[0].addr;
        assert_eq!(p.record(a, Outcome::Failed, now), None);
        assert_eq!(port(p.pick(now, 0)), Some(1000), "one failure is below the threshold");
        let down = Change::Down { failures: 2, retry_in: Duration::from_secs(10) };
        assert_eq!(p.record(a, Outcome::Failed, now), Some(down));
        assert_eq!(port(p.pick(now, 0)), Some(1001), "down after two in a row");
        assert_eq!(p.down_count(now), 1);
        let later = now + Duration::from_secs(11);
        assert_eq!(port(p.pick(later, 0)), Some(1000), "on trial after the cool-down");
        assert_eq!(p.record(a, Outcome::Failed, later), Some(Change::Down { failures: 3, retry_in: Duration::from_secs(10) }));
        assert_eq!(port(p.pick(later, 0)), Some(1001), "one more failure: down again");
        assert_eq!(p.record(a, Outcome::Reached, later + Duration::from_secs(11)), Some(Change::Up));
        assert_eq!(port(p.pick(later, 0)), Some(1000), "a success brings it up at once");
    }

    #[test]
    fn round_robin_takes_turns_and_least_conn_the_emptiest() {
        let mut p = pool(3, Policy::RoundRobin);
        let now = Instant::now();
        let turns: Vec<_> = (0..6).map(|_| port(p.pick(now, 0)).unwrap()).collect();
        assert_eq!(turns, [1000, 1001, 1002, 1000, 1001, 1002]);
        let mut p = pool(3, Policy::LeastConn);
        for (i, n) in [(0, 5), (1, 1), (2, 3)] {
            p.servers[i].active = n;
        }
        assert_eq!(port(p.pick(now, 0)), Some(1001));
        assert_eq!(port(p.pick(now, 0b10)), Some(1002), "the emptiest untried");
    }

    #[test]
    fn re_resolution_keeps_the_survivors_state_and_the_order() {
        let mut p = pool(3, Policy::Failover);
        p.servers[1].active = 4;
        let a = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert!(!p.set_addrs(1, &[a(1001)]), "unchanged");
        assert!(p.set_addrs(1, &[a(1001), a(2001)]));
        let ports: Vec<u16> = p.servers.iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [1000, 1001, 2001, 1002]);
        assert_eq!(p.servers[1].active, 4, "kept");
        assert!(p.set_addrs(1, &[a(2001)]));
        let ports: Vec<u16> = p.servers.iter().map(|s| s.addr.port()).collect();
        assert_eq!(ports, [1000, 2001, 1002]);
    }
}
