//! Small answers without the 40 ms stall, where the runtime leaves Nagle on.
//!
//! Linux holds back a small segment while an earlier small segment to the
//! same peer is unacknowledged (Nagle's algorithm, in Minshall's form), and a
//! receiver that is waiting for the rest of an answer delays its ACK by up to
//! 40 ms. So when a relay writes one answer to a socket in two small pieces,
//! with no byte back from that peer in between, the second piece waits 40 ms.
//! nginx with `sendfile on` answers that way (headers, then the file), and so
//! does a client that sends headers and then a small body. Natively
//! TCP_NODELAY turns Nagle off; WasmEdge 0.17 rejects the option and wasmtime
//! 49 accepts it to no effect (`nagle::probe` finds out at start).
//!
//! The relay cannot change the kernel, but it decides when bytes are handed to
//! it. In a direction that has shown that its answers come in pieces, it holds
//! the first piece for a short window and writes it together with the rest:
//!
//! ```text
//!  a piece is read ──> the direction never split, or this first piece is larger
//!                      than any first piece that more followed ──> write at once
//!                  └─> otherwise hold what is buffered, until the first of:
//!                        the piece that completes the usual count arrives  next-piece
//!                        FLUSH_SIZE bytes are held                        size
//!                        the source sends FIN                             fin
//!                        the window ends: 4x the gaps seen, capped        window
//! ```
//!
//! What is learned (a [`Shape`]) comes from *bursts*: the pieces read in one
//! direction with no byte back from its receiver in between and no gap longer
//! than the cap. Each connection keeps its own shape, starting from its
//! route's, so the first answer of a new connection is held too. A direction
//! that never splits never holds, and pays nothing. A hold that waits in vain
//! [`MISSES`] times in a row lowers the expectation again; one that waits for
//! nothing costs at most a window, where a stall costs 40 ms.

use std::time::{Duration, Instant};

/// At this many bytes held, write: an answer this large is not the kind
/// that stalls a request/response exchange, and holding it would only
/// slow bulk transfers.
pub const FLUSH_SIZE: usize = 16 * 1024;
/// The longest a piece is held by default (`--coalesce auto`): well under
/// the 40 ms it saves, and above the gaps nginx leaves between its pieces on
/// a busy 2-core machine.
pub const DEFAULT_CAP: Duration = Duration::from_micros(500);
/// The shortest window. A hold that ends by its window with the next piece
/// just behind costs a 40 ms stall, one that waits in vain costs only the
/// window (and is rare: a first piece larger than the split ones is not held),
/// so the window errs long: a loaded loop reads pieces later than they came.
const MIN_WINDOW: Duration = Duration::from_micros(250);
/// Pieces counted per burst at most (bounds the learned count).
const MAX_PIECES: u8 = 8;
/// Holds in a row that waited for a piece that never came before the
/// expectation is lowered to what was seen.
const MISSES: u8 = 4;

/// The `--coalesce` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coalesce {
    /// Hold only where the runtime cannot turn Nagle off, up to `DEFAULT_CAP`.
    Auto,
    Off,
    /// Hold on every runtime, up to this long.
    UpTo(Duration),
}

impl Coalesce {
    /// The longest hold in force, given whether TCP_NODELAY really works
    /// here; `None` when nothing is ever held.
    pub fn cap(self, nodelay: bool) -> Option<Duration> {
        match self {
            Coalesce::Auto if nodelay => None,
            Coalesce::Auto => Some(DEFAULT_CAP),
            Coalesce::Off => None,
            Coalesce::UpTo(d) => Some(d),
        }
    }
}

/// How one direction's answers arrive, as learned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// How many pieces an answer comes in (0 or 1: it never split).
    pub pieces: u8,
    /// The largest first piece that more pieces followed (bytes, below
    /// `FLUSH_SIZE`; u32 keeps a connection small).
    pub first_max: u32,
    /// The longest recent gap between two pieces of an answer, in
    /// microseconds (it decays).
    pub gap_us: u32,
}

impl Shape {
    /// How long to wait for the next piece after one is read: four times
    /// the gaps seen, at least `MIN_WINDOW`, at most the cap.
    pub fn window(&self, cap: Duration) -> Duration {
        (Duration::from_micros(self.gap_us.into()) * 4).max(MIN_WINDOW).min(cap)
    }

    /// A burst reached `pieces` pieces, the last `gap` after the one before.
    fn saw(&mut self, pieces: u8, first: u32, gap: Duration) {
        self.pieces = self.pieces.max(pieces);
        self.first_max = self.first_max.max(first);
        // A maximum that decays by an eighth per sample: one slow gap
        // widens the window at once, and it narrows again slowly.
        let gap = u32::try_from(gap.as_micros()).unwrap_or(u32::MAX);
        self.gap_us = gap.max(self.gap_us - self.gap_us / 8);
    }
}

/// A route's shapes, one per direction: its connections start from them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shapes {
    pub to_upstream: Shape,
    pub to_client: Shape,
}

/// Why held bytes were handed to the kernel (the trace says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    NextPiece,
    Size,
    Fin,
    Window,
}

impl Release {
    pub fn name(self) -> &'static str {
        match self {
            Release::NextPiece => "next-piece",
            Release::Size => "size",
            Release::Fin => "fin",
            Release::Window => "window",
        }
    }
}

/// Held bytes leave: why, and since when they were held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub why: Release,
    pub since: Instant,
}

/// What to do with the bytes buffered after a piece was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep them until `until` (or an earlier release).
    Hold { until: Instant },
    /// Write them now; `Some` when they had been held.
    Write(Option<Released>),
}

/// A hold in progress: since when, and until when at the latest.
#[derive(Clone, Copy, Debug)]
struct Held {
    since: Instant,
    until: Instant,
}

/// One direction's hold state.
#[derive(Clone, Debug, Default)]
pub struct Hold {
    /// This connection's shape, starting from its route's.
    pub shape: Shape,
    /// Pieces in the current burst, its bytes, and its first piece's length.
    burst: u8,
    burst_bytes: u32,
    first: u32,
    /// When the burst's last piece was read.
    last: Option<Instant>,
    /// The hold in progress, if any.
    held: Option<Held>,
    /// Holds in a row that ended by their window.
    misses: u8,
}

impl Hold {
    pub fn new(shape: Shape) -> Hold {
        Hold { shape, ..Hold::default() }
    }

    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// The end of the current hold, if any.
    pub fn until(&self) -> Option<Instant> {
        self.held.map(|h| h.until)
    }

    /// The receiver spoke: it has acknowledged what it got, so the next
    /// piece starts a new burst.
    pub fn heard_back(&mut self) {
        self.burst = 0;
        self.last = None;
    }

    /// A piece of `len` bytes was read at `now`; `held` bytes are buffered
    /// now (this piece included). `route` is the route's shape for this
    /// direction: it learns what this connection learns.
    pub fn piece(&mut self, len: usize, held: usize, now: Instant, cap: Duration, route: &mut Shape) -> Step {
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        let gap = self.last.map(|t| now.saturating_duration_since(t));
        self.last = Some(now);
        match gap {
            // The next piece of this burst, close enough to travel with the last.
            Some(gap) if self.burst > 0 && gap <= cap => {
                self.misses = 0; // a piece came, if late: the gap teaches the window
                self.burst = self.burst.saturating_add(1).min(MAX_PIECES);
                self.burst_bytes = self.burst_bytes.saturating_add(len32);
                // Large bursts say nothing about how small answers arrive.
                if (self.burst_bytes as usize) < FLUSH_SIZE {
                    self.shape.saw(self.burst, self.first, gap);
                    *route = self.shape;
                }
            }
            _ => {
                self.burst = 1;
                self.burst_bytes = len32;
                self.first = len32;
            }
        }
        if held >= FLUSH_SIZE {
            return Step::Write(self.release(Release::Size));
        }
        let first_of_a_split = self.burst == 1 && len32 <= self.shape.first_max;
        let more_expected = self.burst < self.shape.pieces && (self.burst > 1 || first_of_a_split);
        if more_expected {
            let since = self.held.map_or(now, |h| h.since);
            let until = (now + self.shape.window(cap)).min(since + cap);
            self.held = Some(Held { since, until });
            return Step::Hold { until };
        }
        Step::Write(self.release(Release::NextPiece))
    }

    /// The window ended with no further piece. After `MISSES` of these in a
    /// row, expect only what this burst showed.
    pub fn expire(&mut self, now: Instant, route: &mut Shape) -> Option<Released> {
        if self.held.is_none_or(|h| h.until > now) {
            return None;
        }
        self.misses = self.misses.saturating_add(1);
        if self.misses >= MISSES {
            self.misses = 0;
            self.shape.pieces = self.burst;
            if self.burst <= 1 {
                self.shape.first_max = 0;
            }
            *route = self.shape;
        }
        self.release(Release::Window)
    }

    /// Stop holding (FIN, a full buffer, or as `piece` decides). Returns
    /// `why` and since when, if anything was held.
    pub fn release(&mut self, why: Release) -> Option<Released> {
        self.held.take().map(|h| Released { why, since: h.since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = DEFAULT_CAP;

    /// A fake clock: a start and microseconds after it.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, us: u64) -> Instant {
            self.0 + Duration::from_micros(us)
        }
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_direction_that_never_split_writes_at_once() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        for i in 0..10 {
            assert_eq!(h.piece(200, 200, c.at(i * 1000), CAP, &mut route), Step::Write(None));
            h.heard_back();
        }
        assert_eq!(route, Shape::default());
    }

    #[test]
    fn a_split_is_learned_then_the_next_answer_is_held_and_sent_whole() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        // First answer: headers then body 80 us later. Nothing known yet.
        assert_eq!(h.piece(240, 240, c.at(0), CAP, &mut route), Step::Write(None));
        assert_eq!(h.piece(1024, 1024, c.at(80), CAP, &mut route), Step::Write(None));
        assert_eq!(route, Shape { pieces: 2, first_max: 240, gap_us: 80 });
        h.heard_back(); // the next request
        // Second answer: the headers are held (4x the gap, at least MIN_WINDOW)...
        assert_eq!(h.piece(240, 240, c.at(5000), CAP, &mut route), Step::Hold { until: c.at(5000) + MIN_WINDOW.max(us(320)) });
        // ...and go with the body the moment it comes.
        let released = Released { why: Release::NextPiece, since: c.at(5000) };
        assert_eq!(h.piece(1024, 1264, c.at(5060), CAP, &mut route), Step::Write(Some(released)));
        assert!(!h.is_holding());
    }

    #[test]
    fn a_first_piece_larger_than_any_split_one_is_taken_as_whole() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        h.piece(240, 240, c.at(0), CAP, &mut route);
        h.piece(6, 6, c.at(50), CAP, &mut route);
        h.heard_back();
        // Headers and body arrived in one read: nothing to wait for.
        assert_eq!(h.piece(246, 246, c.at(1000), CAP, &mut route), Step::Write(None));
    }

    #[test]
    fn a_hold_ends_by_its_window_and_never_beyond_the_cap() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        h.piece(100, 100, c.at(0), CAP, &mut route);
        h.piece(100, 100, c.at(400), CAP, &mut route); // a slow gap: window 1.6 ms, capped
        h.heard_back();
        let Step::Hold { until } = h.piece(100, 100, c.at(10_000), CAP, &mut route) else { panic!("held") };
        assert_eq!(until, c.at(10_000) + CAP);
        assert_eq!(h.expire(c.at(10_100), &mut route), None, "not yet");
        assert!(h.is_holding());
        assert_eq!(h.expire(until, &mut route), Some(Released { why: Release::Window, since: c.at(10_000) }));
        assert!(!h.is_holding());
    }

    #[test]
    fn fin_and_size_release_at_once() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        h.piece(100, 100, c.at(0), CAP, &mut route);
        h.piece(100, 100, c.at(30), CAP, &mut route);
        h.heard_back();
        assert!(matches!(h.piece(100, 100, c.at(1000), CAP, &mut route), Step::Hold { .. }));
        assert_eq!(h.release(Release::Fin), Some(Released { why: Release::Fin, since: c.at(1000) }));
        assert_eq!(h.release(Release::Fin), None, "nothing held any more");
        h.heard_back();
        assert!(matches!(h.piece(100, 100, c.at(2000), CAP, &mut route), Step::Hold { .. }));
        // A large second piece: write it all, whatever the count says.
        let released = Released { why: Release::Size, since: c.at(2000) };
        assert_eq!(h.piece(FLUSH_SIZE, FLUSH_SIZE + 100, c.at(2010), CAP, &mut route), Step::Write(Some(released)));
    }

    #[test]
    fn three_piece_answers_are_held_until_the_third() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        for (t, len) in [(0, 200), (40, 300), (90, 5)] {
            h.piece(len, len, c.at(t), CAP, &mut route);
        }
        assert_eq!(route.pieces, 3);
        h.heard_back();
        assert!(matches!(h.piece(200, 200, c.at(1000), CAP, &mut route), Step::Hold { .. }));
        assert!(matches!(h.piece(300, 500, c.at(1040), CAP, &mut route), Step::Hold { .. }));
        let released = Released { why: Release::NextPiece, since: c.at(1000) };
        assert_eq!(h.piece(5, 505, c.at(1090), CAP, &mut route), Step::Write(Some(released)), "held since the first piece");
    }

    #[test]
    fn a_bulk_burst_teaches_nothing() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        for i in 0..20 {
            h.piece(65536, 65536, c.at(i * 10), CAP, &mut route);
        }
        assert_eq!(route.pieces, 0, "large pieces are written at once, whatever follows");
    }

    #[test]
    fn holds_that_wait_in_vain_lower_the_expectation() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        h.piece(100, 100, c.at(0), CAP, &mut route);
        h.piece(100, 100, c.at(20), CAP, &mut route);
        let mut t = 1000;
        for _ in 0..MISSES {
            h.heard_back();
            let Step::Hold { until } = h.piece(100, 100, c.at(t), CAP, &mut route) else { panic!("held") };
            assert_eq!(h.expire(until, &mut route), Some(Released { why: Release::Window, since: c.at(t) }));
            t += 1000;
        }
        h.heard_back();
        assert_eq!(h.piece(100, 100, c.at(t), CAP, &mut route), Step::Write(None), "single pieces now");
        assert_eq!(route.pieces, 1, "the route forgets too");
    }

    #[test]
    fn a_new_connection_starts_from_what_its_route_learned() {
        let (c, mut first, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        first.piece(240, 240, c.at(0), CAP, &mut route);
        first.piece(1024, 1024, c.at(70), CAP, &mut route);
        let mut second = Hold::new(route);
        assert!(matches!(second.piece(240, 240, c.at(9000), CAP, &mut route), Step::Hold { .. }));
    }

    #[test]
    fn pieces_far_apart_are_separate_bursts() {
        let (c, mut h, mut route) = (Clock(Instant::now()), Hold::default(), Shape::default());
        h.piece(100, 100, c.at(0), CAP, &mut route);
        h.piece(100, 100, c.at(5_000), CAP, &mut route); // 5 ms: no hold could bridge it
        assert_eq!(route.pieces, 0);
    }

    #[test]
    fn the_setting_decides_by_nodelay() {
        assert_eq!(Coalesce::Auto.cap(true), None);
        assert_eq!(Coalesce::Auto.cap(false), Some(DEFAULT_CAP));
        assert_eq!(Coalesce::Off.cap(false), None);
        assert_eq!(Coalesce::UpTo(us(900)).cap(true), Some(us(900)));
    }
}
