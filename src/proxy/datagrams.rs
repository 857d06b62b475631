//! The loop's side of the UDP relays (`crate::udp_relay`): a door of a
//! `udp:LISTEN=...` route owns one. Here the loop watches their sockets,
//! hands them what becomes ready with what they borrow (the route's pool,
//! counters and allow/deny lists), and closes their flows when they go
//! idle, when a reload removes their route, and when the proxy stops.

use std::time::Instant;

use super::token::{Kind, Token};
use super::Proxy;
use crate::udp_relay::{Cx, UdpRelay};

impl Proxy {
    /// Step 2 for the UDP relays: their sockets, and their nearest deadline.
    pub(super) fn watch_udp_relays(&mut self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let poller = &mut self.poller;
        for (i, d) in self.doors.iter_mut().enumerate() {
            let Some(relay) = &mut d.udp else { continue };
            let next = relay.watch(|sub, handle, r, w| poller.add(handle, Token::new(Kind::Udp(i, sub)).raw(), r, w));
            due = match (due, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        due
    }

    /// Run `f` on door `door`'s UDP relay with what it borrows.
    fn with_udp_relay(&mut self, door: usize, now: Instant, f: impl FnOnce(&mut UdpRelay, &mut Cx<'_>)) {
        let Some(d) = self.doors.get_mut(door) else { return };
        let (Some(relay), Some(route)) = (d.udp.as_mut(), d.table.default_route()) else { return };
        let Some(r) = self.shared.routes.get_mut(route) else { return };
        let mut cx = Cx { route: &d.name, acl: &d.acl, pool: &mut r.pool, stats: &mut r.stats, dump: self.shared.dump, next_id: &mut self.next_id, now };
        f(relay, &mut cx);
    }

    /// A socket of door `door`'s UDP relay is ready.
    pub(super) fn on_udp(&mut self, door: usize, sub: usize, now: Instant) {
        self.with_udp_relay(door, now, |relay, cx| relay.on_ready(sub, cx));
    }

    /// Step 1: flows silent for their route's `idle=`.
    pub(super) fn expire_udp_flows(&mut self, now: Instant) {
        for door in 0..self.doors.len() {
            if self.doors.get(door).is_some_and(|d| d.udp.is_some()) {
                self.with_udp_relay(door, now, |relay, cx| relay.expire(cx));
            }
        }
    }

    /// Close the flows of door `door` (or of every door), each with its
    /// close line: a reload removed the route, or the proxy stops.
    pub(super) fn close_udp_flows(&mut self, door: Option<usize>, why: &'static str) {
        let now = Instant::now();
        for i in 0..self.doors.len() {
            if door.is_none_or(|d| d == i) && self.doors.get(i).is_some_and(|d| d.udp.is_some()) {
                self.with_udp_relay(i, now, |relay, cx| relay.close_all(why, cx));
            }
        }
    }
}
