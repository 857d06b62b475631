//! The loop's chores beside relaying: scheduled re-resolution and health
//! checks, the metrics pages, and the periodic summary line.

use std::net::SocketAddr;
use std::time::Instant;

use super::{admin, Proxy};
use crate::dns::{self, Lookup, LookupId};
use crate::health;
use crate::log::{Level, Record};
use crate::metrics::{self, AskView, Page, RouteView};
use crate::route::Place;

impl Proxy {
    /// Step 1: re-resolution and health checks when due; drop headers and
    /// checks that ran out of time.
    pub(super) fn scheduled(&mut self, now: Instant) {
        self.check_reload(now);
        self.expire_questions(now);
        self.expire_dns_servers(now);
        self.expire_udp_flows(now);
        if let Some((every, next)) = &mut self.resolve {
            if *next <= now {
                *next = now + *every;
                self.re_resolve(now);
            }
        }
        if let Some((every, next)) = &mut self.health_check {
            if *next <= now {
                *next = now + *every;
                let in_flight: Vec<(usize, SocketAddr)> = self.checks.iter().map(|(_, c)| (c.route, c.addr)).collect();
                // A TCP connect says nothing of a UDP server: a UDP route's
                // pool learns from its flows (ICMP unreachable, answers).
                for (i, r) in self.shared.routes.iter_mut().enumerate().filter(|(_, r)| !r.retired && !matches!(r.place, Place::Udp(_)) && r.unix_upstream.is_none()) {
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
                health::checked(&r.name, &mut r.pool, c.addr, Err("timed out".into()), now);
            }
            false
        });
        self.resolver.expire(now);
        self.on_resolved(now);
        self.expire_fronts(now);
    }

    /// Resolve every upstream name again: with the loop's own resolver when
    /// it has servers to ask (answers come later, see `re_resolved`), else
    /// with the runtime's getaddrinfo, which blocks the loop meanwhile.
    fn re_resolve(&mut self, now: Instant) {
        if !self.resolver.configured() {
            for r in self.shared.routes.iter_mut().filter(|r| !r.retired) {
                health::re_resolve(&r.name, &mut r.pool);
            }
            return;
        }
        for (route, r) in self.shared.routes.iter_mut().enumerate().filter(|(_, r)| !r.retired) {
            for (i, remote) in r.pool.remotes.clone().iter().enumerate() {
                if remote.is_fixed() || self.re_resolving.iter().any(|w| (w.1, w.2) == (route, i)) {
                    continue; // a literal never changes; one lookup at a time
                }
                match self.resolver.lookup(&remote.host, now) {
                    Lookup::Ready(result) => health::resolved(&r.name, &mut r.pool, i, with_port(result, remote.port)),
                    Lookup::Pending(id) => self.re_resolving.push((id, route, i)),
                }
            }
        }
    }

    /// A lookup finished: the upstreams that waited for it take its answer.
    pub(super) fn re_resolved(&mut self, id: LookupId, result: &dns::Addrs) {
        let routes = &mut self.shared.routes;
        self.re_resolving.retain(|&(waited, route, i)| {
            if waited != id {
                return true;
            }
            if let Some(r) = routes.get_mut(route) {
                let port = r.pool.remotes.get(i).map_or(0, |u| u.port);
                health::resolved(&r.name, &mut r.pool, i, with_port(result.clone(), port));
            }
            false
        });
    }

    /// A health-check connect finished: its outcome goes to the pool.
    pub(super) fn on_check(&mut self, key: usize, now: Instant) {
        let Some(check) = self.checks.try_remove(key) else { return };
        let result = check.stream.finish_connect().map_err(|e| e.to_string());
        if let Some(r) = self.shared.routes.get_mut(check.route) {
            health::checked(&r.name, &mut r.pool, check.addr, result, now);
        }
    }

    /// The metrics side's answer to a whole request.
    pub(super) fn metrics_reply(&self, request: &[u8], now: Instant) -> Vec<u8> {
        let (doors, routes, reloads, counts) = (&self.doors, &self.shared.routes, &self.reloads, self.counts);
        let body = |page| {
            if page == Page::Allowlist {
                return admin::drafts(doors, routes);
            }
            // Ports routed by name first (what happened before a route was
            // picked), and forward ports whose policies claim their clients
            // (one no policy claims is refused at the door); then every route.
            let claims = |d: &&super::state::Door| d.forward.iter().any(|p| !p.forward.identity.is_default()) && d.forward.iter().all(|p| p.label != d.name);
            let named = doors.iter().filter(|d| d.table.peeks() || claims(d));
            let views: Vec<RouteView<'_>> = named
                .map(|d| RouteView { name: &d.name, backend: None, stats: &d.stats, pool: None, destinations: None, dns: None, udp: None })
                // A retired route shows while it is the only one of its name
                // (a reload may have put another in its place).
                .chain(routes.iter().enumerate().filter(|(_, r)| !r.retired || !routes.iter().any(|o| !o.retired && o.name == r.name && o.backend == r.backend)).map(|(i, r)| RouteView {
                    name: &r.name,
                    backend: r.backend(),
                    stats: &r.stats,
                    pool: Some(&r.pool),
                    destinations: r.destinations.as_ref(),
                    // A DNS route's server lives on its door.
                    dns: doors.iter().filter(|d| d.policy(i).is_some()).find_map(|d| d.dns.as_ref()).map(|s| (&s.answers, s.dropped)),
                    udp: doors.iter().filter(|d| d.table.default_route() == Some(i)).find_map(|d| d.udp.as_ref()).map(|u| u.view()),
                }))
                .collect();
            // Ask mode: every route in it, and any a question still names.
            let pending = self.asks.pending();
            let mut asked: Vec<&str> = doors.iter().flat_map(|d| &d.forward).filter(|p| p.forward.ask.is_some()).map(|p| p.label.as_str()).collect();
            for q in pending {
                if !asked.contains(&q.asking.route.as_str()) {
                    asked.push(&q.asking.route);
                }
            }
            let asks = AskView { pending: asked.into_iter().map(|r| (r, pending.iter().filter(|q| q.asking.route == r).count() as u64)).collect(), answers: self.asks.counts() };
            let budgets: Vec<metrics::BudgetRow> = doors
                .iter()
                .filter(|d| d.listener.is_some())
                .flat_map(|d| &d.forward)
                .flat_map(|p| self.spending.view(&p.label, &p.forward.budgets, now).into_iter().map(|(budget, fullest, refused)| metrics::BudgetRow { route: p.label.clone(), budget, fullest, refused }))
                .collect();
            metrics::render(&views, (&asks, &budgets), reloads, counts, now)
        };
        metrics::respond(request, body).unwrap_or_default()
    }

    /// The periodic one-line summary, when it is due.
    pub(super) fn summarize(&mut self, now: Instant) {
        let active = self.active() as u64;
        let Some(summary) = &mut self.summary else { return };
        if now < summary.next {
            return;
        }
        let secs = summary.every.as_secs_f64();
        let routes = &self.shared.routes;
        let (up, down) = (routes.iter().map(|r| r.stats.to_upstream).sum(), routes.iter().map(|r| r.stats.to_client).sum());
        let accepted: u64 = self.doors.iter().map(|d| d.accepted(routes)).sum();
        Record::new(Level::Info, "summary")
            .num("active", active)
            .num("connections", accepted)
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

/// A lookup's addresses with the upstream's port, or why there are none.
fn with_port(result: dns::Addrs, port: u16) -> Result<Vec<SocketAddr>, String> {
    result.map(|ips| ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()).map_err(|e| e.to_string())
}
