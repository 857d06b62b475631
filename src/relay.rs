//! One direction of a proxied connection: bytes from a source socket, through
//! one bounded buffer, to a destination socket. A connection has two.
//!
//! ```text
//!   Open ──(source EOF)──> Draining ──(buffer empty, FIN sent)──> Done
//!     └─────────────────(write error: peer gone)────────────────────┘
//! ```
//!
//! The state machine knows nothing of sockets or polling: it sees its two ends
//! through [`Endpoint`], so it is unit-tested here with in-memory ends. What a
//! direction wants from the poller is derived from its state (read while the
//! buffer is empty and the source is open; write while bytes are pending), so
//! a full buffer stops reading: that is the backpressure.
//!
//! A buffer is taken from a [`Buffers`] only while it holds bytes, so an
//! idle connection costs no buffer memory at all. And it follows the
//! traffic: a direction reads into 16 KiB until it has carried `BIG_AFTER`
//! bytes, and into the full buffer (`--buffer-size`) from then on, so a
//! connection stalled behind a peer that stopped reading holds 16 KiB unless
//! it has been a bulk transfer, which the full buffer keeps fast.
//!
//! Where the runtime leaves Nagle on, a direction may *hold* what it read for
//! a moment instead of writing it (see `coalesce`): then it goes on reading
//! into the same buffer, after the held bytes, and writes nothing until the
//! hold is released.

use std::io;
use std::time::{Duration, Instant};

use crate::coalesce::{Hold, Release, Released, Shape, Step};

/// True for errors that only mean "not now": try again after the next wait.
pub fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

/// Where a message ends in a direction's stream (an HTTP/1.1 request or
/// response, for the forward proxy): a direction given one passes on only
/// the bytes up to that end, and reads nothing more once it is reached.
pub trait Framing {
    /// Take `bytes`, just read: how many belong to the current message (all
    /// of them until it ends). The others are the framing's to keep (the
    /// client's next request) or drop. `Err`: framing that cannot be trusted.
    /// The framing sees them first, and may change them in place (a
    /// secret's value echoed by an origin, replaced by its placeholder).
    fn feed(&mut self, bytes: &mut [u8]) -> Result<usize, String>;
    /// The message has ended.
    fn done(&self) -> bool;
}

/// What a direction needs from each socket. `sys::Stream` is one.
pub trait Endpoint {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// The last direction has ended: the connection closes next, and the
    /// close itself sends the FIN (a shutdown first would be one more call
    /// per connection). What the end still owes before it (a TLS closing
    /// alert) goes now.
    fn end_before_close(&mut self) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reading from the source, writing to the destination.
    Open,
    /// The source sent FIN; flushing what is buffered, then passing the FIN on.
    Draining,
    /// Finished: FIN passed on, or the destination failed.
    Done,
}

/// Why `pump` gave up. A read error (usually a reset) aborts the whole
/// connection; a write error only means the destination is gone.
#[derive(Debug)]
pub enum Failure {
    Read(io::Error),
    Write(io::Error),
}

/// What a direction reads into before it has carried `BIG_AFTER` bytes
/// (HAProxy's buffer size): what a stalled connection that was never a bulk
/// transfer holds at most, per direction.
pub const SMALL: usize = 16 * 1024;

/// Bytes a direction carries in small reads before it reads into the full
/// buffer: past what a peer that stopped reading takes into its socket
/// buffers, so that a stall in the first megabytes holds 16 KiB; a bulk
/// transfer passes it in milliseconds.
pub const BIG_AFTER: u64 = 4 << 20;

/// Reusable buffers of two sizes (`SMALL` and `--buffer-size`), so that a
/// read that finds nothing, or a connection that idles, does not cost an
/// allocation. Keeps at most `max_idle` spare buffers of each size.
pub struct Buffers {
    size: usize,
    max_idle: usize,
    free: Vec<Box<[u8]>>,
    small: Vec<Box<[u8]>>,
}

impl Buffers {
    pub fn new(size: usize, max_idle: usize) -> Buffers {
        Buffers { size, max_idle, free: Vec::new(), small: Vec::new() }
    }

    /// The full size, or `SMALL` (never more than the full size).
    fn take(&mut self, full: bool) -> Box<[u8]> {
        if full || self.size <= SMALL {
            return self.free.pop().unwrap_or_else(|| vec![0; self.size].into_boxed_slice());
        }
        self.small.pop().unwrap_or_else(|| vec![0; SMALL].into_boxed_slice())
    }

    fn give(&mut self, buf: Box<[u8]>) {
        // A buffer grown for a large preload is not kept.
        if buf.len() == self.size && self.free.len() < self.max_idle {
            self.free.push(buf);
        } else if buf.len() == SMALL && self.small.len() < self.max_idle {
            self.small.push(buf);
        }
    }
}

/// How many read-then-write rounds one `pump` may do, so that one busy
/// connection cannot starve the others in the same wake-up.
const ROUNDS: usize = 8;

/// What `pump` needs to decide when to write: the time, and the hold policy.
pub struct Pace<'a> {
    pub now: Instant,
    /// The longest a piece may be held; `None`: write everything at once.
    pub cap: Option<Duration>,
    /// The route's shape for this direction: it learns what this one learns.
    pub route: &'a mut Shape,
}

/// What `pump` tells its caller as it goes: the bytes it read (for the
/// traffic dump), and holds begun and released (for the trace).
#[derive(Debug, PartialEq)]
pub enum Note<'a> {
    Read(&'a [u8]),
    Held { bytes: usize, window: Duration },
    Released { bytes: usize, why: Release, held: Duration },
}

pub struct Direction {
    buf: Option<Box<[u8]>>,
    /// Pending bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    state: State,
    /// Bytes written to the destination so far.
    pub bytes: u64,
    /// Bytes read from the source so far.
    pub read: u64,
    hold: Hold,
}

impl Default for Direction {
    fn default() -> Self {
        Direction::new()
    }
}

impl Direction {
    pub fn new() -> Direction {
        Direction::with_shape(Shape::default())
    }

    /// A direction that starts from what its route learned about holding.
    pub fn with_shape(shape: Shape) -> Direction {
        Direction { buf: None, start: 0, end: 0, state: State::Open, bytes: 0, read: 0, hold: Hold::new(shape) }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Queue bytes to go out before anything read from the source (a PROXY
    /// header, then what was read while peeking). When they do not fit the
    /// buffer (a 16 KiB ClientHello with `--buffer-size 1k`), this
    /// connection's buffer grows to hold them, once, and is not pooled.
    pub fn preload(&mut self, bytes: &[u8], pool: &mut Buffers) {
        if bytes.is_empty() {
            return;
        }
        let buf = self.buf.get_or_insert_with(|| pool.take(false));
        if buf.len().saturating_sub(self.end) < bytes.len() {
            let mut bigger = vec![0; self.end + bytes.len()].into_boxed_slice();
            if let (Some(dst), Some(src)) = (bigger.get_mut(..self.end), buf.get(..self.end)) {
                dst.copy_from_slice(src);
            }
            *buf = bigger;
        }
        let n = bytes.len();
        if let Some(dst) = buf.get_mut(self.end..self.end + n) {
            dst.copy_from_slice(bytes);
            self.end += n;
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Nothing waits to be written (held or not).
    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Interest in the source: open, and the buffer empty (or held). `pump`
    /// reads only into an empty buffer (one read, then write it all), so
    /// asking for read readiness while bytes wait to be written would wake
    /// the loop for nothing; held bytes wait for the next piece.
    pub fn wants_read(&self) -> bool {
        self.state == State::Open && (self.pending() == 0 || self.hold.is_holding())
    }

    /// Interest in the destination: bytes waiting for it, not held.
    pub fn wants_write(&self) -> bool {
        self.state != State::Done && self.pending() > 0 && !self.hold.is_holding()
    }

    /// When the current hold ends at the latest.
    pub fn hold_until(&self) -> Option<Instant> {
        self.hold.until()
    }

    /// The destination's peer spoke: the next piece starts a new burst.
    pub fn heard_back(&mut self) {
        self.hold.heard_back();
    }

    /// End the hold if its window has passed. The next `pump` writes.
    pub fn expire_hold(&mut self, now: Instant, route: &mut Shape, mut note: impl FnMut(Note<'_>)) {
        if let Some(r) = self.hold.expire(now, route) {
            self.released(r, now, &mut note);
        }
    }

    fn release(&mut self, why: Release, now: Instant, note: &mut impl FnMut(Note<'_>)) {
        if let Some(r) = self.hold.release(why) {
            self.released(r, now, note);
        }
    }

    /// Tell `note` that what is buffered leaves its hold.
    fn released(&self, r: Released, now: Instant, note: &mut impl FnMut(Note<'_>)) {
        note(Note::Released { bytes: self.pending(), why: r.why, held: now.saturating_duration_since(r.since) });
    }

    /// Move as many bytes as the sockets allow right now, and pass an EOF on
    /// once everything before it is written. `note` sees every chunk as it
    /// is read (the traffic dump), and every hold. With `framing`, only the
    /// bytes of the current message go on. `last`: the other direction is
    /// done, so this one's EOF ends the connection, whose close passes it on.
    /// Returns whether any byte moved or the state changed (activity, for
    /// the idle timer).
    #[allow(clippy::too_many_arguments)] // each is one thing the caller owns
    pub fn pump(
        &mut self,
        src: &mut impl Endpoint,
        dst: &mut impl Endpoint,
        pool: &mut Buffers,
        pace: &mut Pace<'_>,
        framing: Option<&mut dyn Framing>,
        last: bool,
        note: impl FnMut(Note<'_>),
    ) -> Result<bool, Failure> {
        let before = (self.bytes, self.read, self.state);
        let result = self.pump_rounds(src, dst, pool, pace, framing, last, note);
        if let Err(Failure::Write(_)) = result {
            // The destination is gone: what is buffered for it is lost.
            self.state = State::Done;
            self.start = 0;
            self.end = 0;
        }
        // Hand back an empty buffer: idle directions hold no memory.
        if self.pending() == 0 {
            self.start = 0;
            self.end = 0;
            if let Some(buf) = self.buf.take() {
                pool.give(buf);
            }
        }
        result.map(|()| (self.bytes, self.read, self.state) != before)
    }

    #[allow(clippy::too_many_arguments)] // `pump`'s, passed on
    fn pump_rounds(
        &mut self,
        src: &mut impl Endpoint,
        dst: &mut impl Endpoint,
        pool: &mut Buffers,
        pace: &mut Pace<'_>,
        mut framing: Option<&mut dyn Framing>,
        last: bool,
        mut note: impl FnMut(Note<'_>),
    ) -> Result<(), Failure> {
        for _ in 0..ROUNDS {
            let holding = self.hold.is_holding();
            let ended = framing.as_deref().is_some_and(|f| f.done());
            if (!holding && self.flush(dst)? > 0) || self.state != State::Open || ended {
                break; // destination full, or nothing more to read
            }
            let full = self.read >= BIG_AFTER;
            if self.pending() == 0 {
                // Read a fresh load from the buffer's start; into the full
                // buffer once this direction has carried enough to be bulk.
                self.start = 0;
                self.end = 0;
                if full && self.buf.as_ref().is_some_and(|b| b.len() < pool.size) {
                    if let Some(small) = self.buf.take() {
                        pool.give(small);
                    }
                }
            }
            let buf = self.buf.get_or_insert_with(|| pool.take(full));
            // Held bytes stay; the next piece goes after them.
            let room = buf.get_mut(self.end..).unwrap_or_default();
            if room.is_empty() {
                self.release(Release::Size, pace.now, &mut note);
                continue;
            }
            let room_len = room.len();
            match src.read(room) {
                Ok(0) => {
                    self.state = State::Draining;
                    self.release(Release::Fin, pace.now, &mut note);
                }
                Ok(n) => {
                    let n = match framing.as_deref_mut() {
                        // Past the message's end: not ours to pass on.
                        Some(f) => f.feed(room.get_mut(..n).unwrap_or_default()).map_err(|why| Failure::Read(io::Error::new(io::ErrorKind::InvalidData, why)))?,
                        None => n,
                    };
                    let ended = framing.as_deref().is_some_and(|f| f.done());
                    if n == 0 {
                        continue;
                    }
                    note(Note::Read(room.get(..n).unwrap_or_default()));
                    self.end += n;
                    self.read += n as u64;
                    if let Some(cap) = pace.cap {
                        match self.hold.piece(n, self.pending(), pace.now, cap, pace.route) {
                            Step::Hold { until } if !holding => {
                                note(Note::Held { bytes: self.pending(), window: until.saturating_duration_since(pace.now) })
                            }
                            Step::Hold { .. } | Step::Write(None) => {}
                            Step::Write(Some(r)) => self.released(r, pace.now, &mut note),
                        }
                    }
                    if ended {
                        self.release(Release::Fin, pace.now, &mut note); // nothing more is coming
                    }
                    if n < room_len {
                        // A short read emptied the socket's receive queue: a
                        // second read now would only say "would block", a
                        // wasted call per message. Write, then wait for more.
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(Failure::Read(e)),
            }
        }
        if self.hold.is_holding() {
            return Ok(()); // written when the hold is released
        }
        // Write what the last round read, so it does not wait for a wake-up.
        if self.flush(dst)? == 0 && self.state == State::Draining {
            // Everything before the FIN is written: pass the FIN on. A failed
            // shutdown means the peer is gone; the direction is done either way.
            if last {
                dst.end_before_close();
            } else {
                let _ = dst.shutdown_write();
            }
            self.state = State::Done;
        }
        Ok(())
    }

    /// Write pending bytes until done or the destination would block.
    /// Returns how many bytes are still pending.
    fn flush(&mut self, dst: &mut impl Endpoint) -> Result<usize, Failure> {
        while self.pending() > 0 {
            let buf = match &self.buf {
                Some(b) => b.get(self.start..self.end).unwrap_or_default(),
                None => break,
            };
            match dst.write(buf) {
                Ok(0) => return Err(Failure::Write(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.start += n;
                    self.bytes += n as u64;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(Failure::Write(e)),
            }
        }
        Ok(self.pending())
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
