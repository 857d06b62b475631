//! The loop's side of the allowlist DNS servers (`crate::dns_server`): a
//! door of a `LISTEN=dns;...` route owns one. Here the loop watches their
//! sockets, hands them what becomes ready (their TCP clients from the
//! door's listener, their lookups from the shared resolver), expires what
//! waited too long, and writes the names they judged into the route's
//! ledger, as the forward proxy's requests are (metrics, report mode's
//! draft).

use std::time::Instant;

use super::admission::log_draft;
use super::token::{Kind, Token};
use super::Proxy;
use crate::dns::{Addrs, LookupId};
use crate::dns_server::{Cx, Sub};
use crate::sys::Stream;

impl Proxy {
    /// Step 2 for the DNS servers: their sockets, and their nearest deadline.
    pub(super) fn watch_dns_servers(&mut self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let poller = &mut self.poller;
        for (i, d) in self.doors.iter().enumerate() {
            let Some(server) = d.dns.as_ref().filter(|_| d.listener.is_some()) else { continue };
            let next = server.watch(|sub, handle, r, w| poller.add(handle, Token::new(Kind::Answering(i, sub.index())).raw(), r, w));
            due = match (due, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        due
    }

    /// Run `f` on door `door`'s DNS server with what it needs, then take
    /// the names it judged into the route's ledger.
    fn with_dns_server(&mut self, door: usize, now: Instant, f: impl FnOnce(&mut crate::dns_server::DnsServer, &mut Cx<'_>)) {
        let Some(d) = self.doors.get_mut(door) else { return };
        // A DNS route's door has its one policy (`route::doors`).
        let (Some(server), Some(crate::proxy::state::Policy { route, forward: policy, .. })) = (d.dns.as_mut(), d.forward.first()) else { return };
        let route = *route;
        let mut cx = Cx { route: &d.name, policy, acl: &d.acl, resolver: &mut self.resolver, secrets: &self.shared.keys.secrets, asks: &self.asks, now };
        f(server, &mut cx);
        let timeout = policy.ask.unwrap_or(crate::ask::DEFAULT_TIMEOUT);
        for asking in server.take_asking() {
            self.file_question(asking, None, now + timeout, now);
        }
        let Some(server) = self.doors.get_mut(door).and_then(|d| d.dns.as_mut()) else { return };
        let asked = server.take_asked();
        if asked.is_empty() {
            return;
        }
        let Some(ledger) = self.shared.routes.get_mut(route).and_then(|r| r.destinations.as_mut()) else { return };
        let mut grew = false;
        for (name, decision, rule) in asked {
            ledger.count(&name);
            grew |= ledger.decided(&name, decision, rule);
        }
        // Report mode: the draft, grown by the names DNS clients asked for.
        let (Some(d), Some(ledger)) = (self.doors.get(door), self.shared.routes.get(route).and_then(|r| r.destinations.as_ref())) else { return };
        if let Some(p) = d.forward.first().filter(|p| (p.forward.report || p.forward.ask.is_some()) && grew) {
            log_draft(&d.name, &p.label, ledger, &p.forward);
        }
    }

    /// A socket of door `door`'s DNS server is ready.
    pub(super) fn on_dns_server(&mut self, door: usize, sub: usize, now: Instant) {
        self.with_dns_server(door, now, |server, cx| server.on_ready(Sub::from_index(sub), cx));
    }

    /// Its door accepted a TCP client.
    pub(super) fn adopt_dns_client(&mut self, door: usize, stream: Stream, peer: std::net::SocketAddr, now: Instant) {
        self.with_dns_server(door, now, |server, cx| server.adopt(stream, peer, cx));
    }

    /// A lookup finished: the questions of every DNS server waiting for it.
    pub(super) fn dns_resolved(&mut self, id: LookupId, result: &Addrs, now: Instant) {
        for door in 0..self.doors.len() {
            if self.doors.get(door).is_some_and(|d| d.dns.is_some()) {
                self.with_dns_server(door, now, |server, cx| server.resolved(id, result, cx));
            }
        }
    }

    /// Step 1: questions that waited too long, TCP clients quiet too long.
    pub(super) fn expire_dns_servers(&mut self, now: Instant) {
        for door in 0..self.doors.len() {
            if self.doors.get(door).is_some_and(|d| d.dns.is_some()) {
                self.with_dns_server(door, now, |server, cx| server.expire(cx));
            }
        }
    }
}
