//! What the host's limits leave the proxy. Descriptors: what a client
//! costs, and how many clients the process's descriptors fit (the start
//! line's and `--check`'s figures, the default of `--max-conns`, and the
//! reserve below which the loop stops asking the listeners for clients, so
//! that no client is accepted only to be closed for want of a descriptor
//! for its upstream: it waits in the backlog). And the listen backlog.

use crate::sys::{self, Descriptors};

/// A proxied client holds two descriptors: its own socket and its upstream's.
pub const PER_CLIENT: usize = 2;
/// One more kept free for a DNS query, a health check or a file read.
pub const SPARE: usize = 1;
/// `--max-conns` when not given, where the descriptors fit as many.
pub const DEFAULT_MAX_CONNS: usize = 10_000;
/// Fewer clients than this fit (and no `--max-conns` says so): a limit left
/// low by mistake (a soft limit of 256 or 1024), worth a warning at start.
const FEW: usize = 1_000;
/// A wasm build counts its descriptors up to this many sockets: a limit
/// that fits `FEW` clients is known exactly, a higher one is not paid for.
const COUNT_UPTO: usize = FEW * PER_CLIENT + 64;

/// The descriptors this process has, and what the loop may do with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub descriptors: Descriptors,
    /// Sockets that may be open at once (`sys::open_sockets`); `None`: no
    /// limit below what the settings could use.
    capacity: Option<usize>,
    /// Sockets open before any client (listeners, the metrics port).
    held: usize,
    /// As many as were counted, when the count stopped for having enough.
    counted: usize,
    /// `--max-conns`: as given, else what the descriptors fit (at most
    /// `DEFAULT_MAX_CONNS`).
    pub max_conns: usize,
    pub max_conns_given: bool,
}

/// How many clients fit in `capacity` sockets with `held` open already,
/// each taking `PER_CLIENT` and the last keeping `SPARE` free.
pub fn fit(capacity: usize, held: usize) -> usize {
    match capacity.checked_sub(held + PER_CLIENT + SPARE) {
        Some(left) => left / PER_CLIENT + 1,
        None => 0,
    }
}

impl Budget {
    /// Ask (natively) or count (on wasm) the descriptors, for `asked`
    /// clients (`--max-conns`, if given) with `held` sockets open before any.
    pub fn measure(asked: Option<usize>, held: usize) -> Budget {
        let want = asked.unwrap_or(DEFAULT_MAX_CONNS);
        let counted = (held + want.saturating_mul(PER_CLIENT) + SPARE).min(COUNT_UPTO);
        Budget::from(sys::descriptors(counted), asked, held, counted)
    }

    fn from(descriptors: Descriptors, asked: Option<usize>, held: usize, counted: usize) -> Budget {
        let fits = descriptors.sockets.map(|c| fit(c, held));
        let max_conns = match (asked, fits) {
            (Some(n), _) => n,
            (None, Some(f)) => f.clamp(1, DEFAULT_MAX_CONNS),
            (None, None) => DEFAULT_MAX_CONNS,
        };
        Budget { descriptors, capacity: descriptors.sockets, held, counted, max_conns, max_conns_given: asked.is_some() }
    }

    /// The clients the descriptors fit, when they are fewer than
    /// `--max-conns` asks for, or than `FEW` (the start line warns then).
    pub fn short(&self) -> Option<usize> {
        let wanted = if self.max_conns_given { self.max_conns } else { FEW };
        self.capacity.map(|c| fit(c, self.held)).filter(|f| *f < wanted)
    }

    /// The process's descriptors for the start line: its limit where the
    /// host says it, else the sockets counted ("N+" when the count stopped
    /// with no limit found).
    pub fn fds(&self) -> String {
        match (self.descriptors.limit, self.descriptors.sockets) {
            (Some(limit), _) => limit.to_string(),
            (None, Some(sockets)) => sockets.to_string(),
            (None, None) if self.descriptors.from == "getrlimit" => "unlimited".to_string(),
            (None, None) => format!("{}+", self.counted),
        }
    }

    /// Room to accept one more client, with `open` sockets open and
    /// `pending` clients accepted that have no upstream socket yet.
    pub fn room(&self, open: usize, pending: usize) -> bool {
        self.capacity.is_none_or(|c| open + pending + PER_CLIENT + SPARE <= c)
    }

    /// The host refused a socket for want of descriptors with `open`
    /// sockets open: from now on that is the capacity (accepting waits
    /// until one is freed), unless it would leave no room for a single
    /// client (a shortage of the whole system, not ours): false then.
    pub fn learn(&mut self, open: usize) -> bool {
        if fit(open, self.held) == 0 {
            return false;
        }
        self.capacity = Some(self.capacity.map_or(open, |c| c.min(open)));
        true
    }

    /// The capacity as known now, for logs.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }
}

/// A listener's backlog when neither `--backlog` nor somaxconn says: the
/// kernel's default somaxconn since Linux 5.4 (it caps what is asked anyway).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// The backlog to listen with, and where it came from: `--backlog` (capped
/// at somaxconn where readable, as the kernel would), else somaxconn, else
/// `DEFAULT_BACKLOG`.
pub fn backlog(asked: Option<u32>) -> (u32, &'static str) {
    match (asked, sys::somaxconn()) {
        (Some(n), Some(max)) if n > max => (max, "somaxconn"),
        (Some(n), _) => (n, "setting"),
        (None, Some(max)) => (max, "somaxconn"),
        (None, None) => (DEFAULT_BACKLOG, "default"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(sockets: Option<usize>, asked: Option<usize>) -> Budget {
        Budget::from(Descriptors { limit: sockets.map(|s| s as u64 + 4), sockets, from: "getrlimit" }, asked, 1, 20_004)
    }

    #[test]
    fn a_client_takes_two_and_one_stays_spare() {
        // 252 sockets, one listener: 125 clients (251 + 1 spare = 252).
        assert_eq!(fit(252, 1), 125);
        assert_eq!(fit(4, 1), 1);
        assert_eq!(fit(3, 1), 0);
        let b = with(Some(252), None);
        assert_eq!(b.max_conns, 125);
        assert!(b.room(1 + 2 * 124, 0));
        assert!(!b.room(1 + 2 * 125, 0));
        // An accepted client still connecting will take one more.
        assert!(b.room(1 + 2 * 123 + 1, 1));
        assert!(!b.room(1 + 2 * 124 + 1, 1));
    }

    #[test]
    fn max_conns_is_derived_only_when_not_given() {
        assert_eq!(with(None, None).max_conns, DEFAULT_MAX_CONNS);
        assert_eq!(with(Some(1_000_000), None).max_conns, DEFAULT_MAX_CONNS);
        let given = with(Some(252), Some(500));
        assert_eq!((given.max_conns, given.short()), (500, Some(125)));
        assert_eq!(with(Some(252), None).short(), Some(125));
        assert_eq!(with(Some(20_000), None).short(), None);
    }

    #[test]
    fn a_refused_socket_teaches_the_capacity_unless_it_leaves_no_room() {
        let mut b = with(None, None);
        assert!(b.room(100_000, 0));
        assert!(!b.learn(2), "a shortage with only the listener open is not our limit");
        assert!(b.room(100_000, 0));
        assert!(b.learn(200));
        assert_eq!(b.capacity(), Some(200));
        assert!(!b.room(199, 0) && b.room(197, 0));
        assert!(b.learn(300));
        assert_eq!(b.capacity(), Some(200), "never raised by a later refusal");
    }

    #[test]
    fn the_figure_says_what_is_known() {
        assert_eq!(with(Some(252), None).fds(), "256");
        let counted = Budget::from(Descriptors { limit: None, sockets: Some(230), from: "probe" }, None, 1, 20_004);
        assert_eq!((counted.fds(), counted.max_conns), ("230".to_string(), 114));
        let plenty = Budget::from(Descriptors { limit: None, sockets: None, from: "probe" }, None, 1, 20_004);
        assert_eq!(plenty.fds(), "20004+");
    }
}
