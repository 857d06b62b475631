//! Step 2 of the loop's pass: what every socket may do now, told to the
//! poller, and when the loop must wake at the latest (the nearest
//! deadline). Connections past their deadline are left in `expired`.

use std::time::{Duration, Instant};

use super::token::{Kind, Token};
use super::{Proxy, FULL_PASS_MAX, FULL_PASS_MIN, FULL_PASS_PER_SOCKET, FULL_PASS_SHARE, MAX_SCRAPES, MAX_WAIT, QUIET_AFTER, ROTATION, ROTATION_MAX, SLICE_RATE, SLICE_WAIT};
use crate::close::Side;
use crate::conn::Conn;
use crate::sys::Poller;

impl Proxy {
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
    /// a plain loop would) and, while some are: where the poller keeps what
    /// it was told, at an interval that keeps their cost a small share of
    /// the time (`FULL_PASS_*`); where it lists afresh, not on a timer: each
    /// busy pass takes a slice of the quiet ones instead (each watched once
    /// per `rotation`), and a busy pass that heard nothing makes the next one
    /// full, where that costs little (`lull_spacing`). One full pass over
    /// thousands of idle connections (several ms on stock WasmEdge, and as
    /// much again in the next call, which drops them) delayed every busy one
    /// behind it; a slice costs each pass a little.
    ///
    /// Where the poller keeps what it was told (epoll), most busy passes list
    /// fewer still: only the connections touched since the last pass, since
    /// no other can have changed its interest. Walking all 50 of a keep-alive
    /// load's connections in every pass was most of the native build's own
    /// time per request.
    pub(super) fn register(&mut self, now: Instant) -> Instant {
        self.expired.clear();
        let quiet_since = now.checked_sub(QUIET_AFTER).unwrap_or(now);
        let conns = &self.conns;
        // Drop from `busy` what closed (or whose key now holds another) and what went quiet.
        self.busy.retain(|key, id| match conns.get(key) {
            Some(c) if c.id() == id => Some(!c.quiet_since(quiet_since)),
            _ => None,
        });
        let conns = &self.conns;
        // Full when nothing is busy, or when one is due. With a poller that
        // lists afresh, also when everything is busy (there is nobody to
        // leave out: no short timer for catching up); one that keeps what it
        // was told lists only the touched in most passes, so leaving out
        // pays there even when everybody is busy.
        // A poller that lists afresh watches the quiet ones in slices
        // instead (`rotation`), and makes a full pass after a busy one that
        // heard nothing (`lull`), spaced by its estimated cost
        // (`lull_spacing`) and skipped where the slices would watch every
        // quiet one sooner anyway.
        let quiet = self.conns.len().saturating_sub(self.busy.len());
        let lull_spacing = lull_spacing(self.conns.len());
        let lull_full = self.lull && lull_spacing < rotation(quiet);
        let due_full = (Poller::KEEPS || lull_full) && now >= self.next_full;
        let full = self.busy.is_empty() || (!Poller::KEEPS && self.busy.len() >= self.conns.len()) || due_full;
        self.full_pass = full;
        self.counts.full_passes += u64::from(full);
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
        let accepting = self.accept_paused_until.is_none() && self.room() && self.drain_until.is_none();
        for (i, d) in self.doors.iter().enumerate() {
            if let Some(l) = &d.listener {
                self.poller.add(l.handle(), Token::new(Kind::Listener(i)).raw(), accepting, false);
            }
        }
        let reload = self.watch.as_ref().map(|w| w.next);
        for next in [self.summary.as_ref().map(|s| s.next), self.health_check.map(|h| h.1), self.resolve.map(|r| r.1), reload].into_iter().flatten() {
            wake_at = wake_at.min(next);
        }

        // What the loop tells the poller of one connection; its deadline, if
        // it has one and it has not passed (else it is in `expired`).
        let watch = |key: usize, conn: &Conn, poller: &mut Poller, expired: &mut Vec<usize>| -> Option<Instant> {
            let deadline = conn.deadline(self.idle_timeout);
            if deadline.is_some_and(|d| d <= now) {
                expired.push(key);
                return None;
            }
            // Every socket of a listed connection, even with no interest:
            // a backend that keeps watching unlisted sockets must hear "none".
            let want = conn.interest();
            let (r, w) = want.client;
            poller.add(conn.client().handle(), Token::new(Kind::Conn(key, Side::Client)).raw(), r, w);
            let (r, w) = want.upstream;
            poller.add(conn.upstream().handle(), Token::new(Kind::Conn(key, Side::Upstream)).raw(), r, w);
            deadline
        };
        let touched = self.busy.take_touched();
        // A poller that keeps what it was told needs only the touched, while
        // no deadline of the others can have come (`untouched_due`, the
        // earliest of them when they were last listed: a touch only moves a
        // deadline by listing it).
        let only_touched = !full && Poller::KEEPS && self.untouched_due.is_none_or(|due| now < due);
        let mut due: Option<Instant> = None;
        if full {
            for (key, conn) in conns {
                due = earliest(due, watch(key, conn, &mut self.poller, &mut self.expired));
            }
            // Where the poller keeps what it was told, until the wait tells
            // what a full pass costs (`run`).
            self.next_full = now + if Poller::KEEPS { FULL_PASS_MIN } else { lull_spacing.clamp(FULL_PASS_MIN, FULL_PASS_MAX) };
            self.untouched_due = due;
        } else if only_touched {
            for &(key, id) in &touched {
                if let Some(conn) = conns.get(key).filter(|c| c.id() == id) {
                    due = earliest(due, watch(key, conn, &mut self.poller, &mut self.expired));
                }
            }
            self.untouched_due = earliest(self.untouched_due, due);
            due = self.untouched_due;
            wake_at = wake_at.min(self.next_full);
        } else {
            for key in self.busy.keys() {
                if let Some(conn) = conns.get(key) {
                    due = earliest(due, watch(key, conn, &mut self.poller, &mut self.expired));
                }
            }
            if Poller::KEEPS {
                wake_at = wake_at.min(self.next_full);
            } else {
                // This pass's share of the quiet ones: as many as the time
                // since the last slice is of a round, from where the last
                // slice ended, round the slab.
                let share = now.saturating_duration_since(self.sliced_at).as_secs_f64() / rotation(quiet).as_secs_f64();
                // No f64 floor() or min() here: WasmEdge 0.17's AOT compiler
                // turns them into calls to libm's `floor`/`fmin`, whose names
                // its loader reads as function "f0", and the AOT build then
                // falls back to the interpreter (a casting `as` compiles inline).
                let owed = self.slice_owed + quiet as f64 * share;
                let owed = if owed > quiet as f64 { quiet as f64 } else { owed };
                let mut take = owed as usize; // owed >= 0: rounds down
                self.slice_owed = owed - take as f64;
                self.sliced_at = now;
                let slots = conns.capacity().max(1);
                let mut key = self.slice_from % slots;
                // At most one lap of the slab's slots per pass.
                for _ in 0..slots {
                    if take == 0 {
                        break;
                    }
                    if let Some(conn) = conns.get(key).filter(|_| !self.busy.has(key)) {
                        due = earliest(due, watch(key, conn, &mut self.poller, &mut self.expired));
                        take -= 1;
                    }
                    key = (key + 1) % slots;
                }
                self.slice_from = key;
                wake_at = wake_at.min(now + SLICE_WAIT);
            }
            self.untouched_due = due;
        }
        self.busy.give_back(touched);
        if let Some(due) = due {
            wake_at = wake_at.min(due);
        }
        for (key, f) in &self.fronts {
            // A client held for a person is not read until the answer: what
            // it sends meanwhile waits in its socket (its buffer is bounded).
            self.poller.add(f.client.handle(), Token::new(Kind::Front(key)).raw(), !f.is_held(), false);
            wake_at = wake_at.min(f.deadline);
        }
        for due in [self.watch_dns_servers(), self.watch_udp_relays()].into_iter().flatten() {
            wake_at = wake_at.min(due);
        }
        let poller = &mut self.poller;
        if let Some(due) = self.resolver.watch(|key, handle, r, w| poller.add(handle, Token::new(Kind::Dns(key)).raw(), r, w)) {
            wake_at = wake_at.min(due);
        }
        for (key, c) in &self.checks {
            self.poller.add(c.stream.handle(), Token::new(Kind::Check(key)).raw(), false, true);
            wake_at = wake_at.min(c.deadline);
        }

        // The HTTP listeners share one token: a wake-up tries each (`accept_scrapes`).
        for (listener, _) in &self.served.listeners {
            self.poller.add(listener.handle(), Token::new(Kind::Metrics).raw(), self.scrapes.len() < MAX_SCRAPES, false);
        }
        // A peer that stalls is simply dropped at its deadline.
        self.scrapes.retain(|_, s| s.deadline > now);
        for (key, s) in &self.scrapes {
            let (r, w) = s.interest();
            self.poller.add(s.stream().handle(), Token::new(Kind::Scrape(key)).raw(), r, w);
            wake_at = wake_at.min(s.deadline);
        }
        wake_at
    }
}

/// How long one round of `quiet` connections takes (two sockets each):
/// `ROTATION`, or longer where that would watch more than `SLICE_RATE`
/// sockets a second, up to `ROTATION_MAX`.
fn rotation(quiet: usize) -> Duration {
    Duration::from_secs_f64(2.0 * quiet as f64 / SLICE_RATE).clamp(ROTATION, ROTATION_MAX)
}

/// How far apart full passes after a lull must be, where the poller lists
/// afresh: `FULL_PASS_SHARE` times what one is estimated to cost with
/// `conns` connections (two sockets each), so that they take about a
/// twentieth of the time.
fn lull_spacing(conns: usize) -> Duration {
    let sockets = u32::try_from(2 * conns).unwrap_or(u32::MAX);
    FULL_PASS_PER_SOCKET.saturating_mul(sockets).saturating_mul(FULL_PASS_SHARE)
}

/// The earlier of two deadlines, either of which may be missing.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_passes_after_a_lull_only_where_they_cost_little() {
        // 10 idle clients: a full pass is cheap, spaced by the minimum.
        assert!(lull_spacing(11) < rotation(10));
        // 5,000: one costs more than the slices' round is long; skipped.
        assert!(lull_spacing(5001) > rotation(5000), "{:?} {:?}", lull_spacing(5001), rotation(5000));
    }

    #[test]
    fn a_round_of_the_quiet_ones_slows_only_when_there_are_thousands() {
        assert_eq!(rotation(0), ROTATION);
        assert_eq!(rotation(1000), ROTATION, "2,000 sockets in 200 ms: within the rate");
        let r = rotation(5000); // 10,000 sockets at 15,000 a second
        assert!(r > Duration::from_millis(660) && r < Duration::from_millis(670), "{r:?}");
        assert_eq!(rotation(1_000_000), ROTATION_MAX);
    }
}
