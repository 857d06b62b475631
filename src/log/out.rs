//! Where log lines wait for stderr while the loop runs: a bounded buffer,
//! written through the platform's write that never blocks (`Sink`, given by
//! `main` from `sys`).
//!
//! When stderr takes no more (nobody reads the pipe: a stuck log shipper, a
//! full `docker logs` driver, a paused terminal), lines wait here, up to
//! `CAPACITY`; lines beyond it are dropped and counted (`dropped_total`, a
//! metric), and once everything that waited is written, the caller is told
//! how many were dropped since (`flush`), to say so in one line.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How held lines reach stderr: the platform's calls (`sys::log_write`, `sys::log_wait`).
#[derive(Clone, Copy)]
pub struct Sink {
    /// Writes some of the bytes without blocking: how many it took, or WouldBlock.
    pub write: fn(&[u8]) -> io::Result<usize>,
    /// Waits until `write` may take bytes again, for at most this long (at exit only).
    pub wait: fn(Duration),
}

/// Bytes that may wait for stderr; a line that does not fit is dropped.
pub const CAPACITY: usize = 1 << 20;

/// Waiting bytes past this are written before the pass ends (a pass that logs
/// a lot, such as a traffic dump, does not wait for the flush before its wait).
const WRITE_AT: usize = 64 << 10;

/// Lines dropped since start (the metric).
static DROPPED: AtomicU64 = AtomicU64::new(0);

pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

struct Held {
    sink: Sink,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    sent: usize,
    /// Lines dropped since the last time the caller was told.
    dropped: u64,
    /// Write each line as it comes (trace mode: a trace is read to see what
    /// happened just before a crash).
    at_once: bool,
}

std::thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// From now on, lines wait here and go out through `sink`.
pub fn hold(sink: Sink, at_once: bool) {
    HELD.with(|h| *h.borrow_mut() = Some(Held { sink, buf: Vec::with_capacity(4096), sent: 0, dropped: 0, at_once }));
}

/// Stop holding: later lines are written as they come, blocking (there are
/// none but a last fatal message). What still waits is dropped.
pub fn stop() {
    HELD.with(|h| {
        if let Ok(mut held) = h.try_borrow_mut() {
            *held = None;
        }
    });
}

/// Take one finished line: false when lines are not held (the caller writes it).
pub fn put(line: &[u8]) -> bool {
    HELD.with(|h| {
        let Ok(mut held) = h.try_borrow_mut() else { return false };
        let Some(held) = held.as_mut() else { return false };
        if held.buf.len() - held.sent + line.len() > CAPACITY {
            held.dropped += 1;
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        held.buf.extend_from_slice(line);
        if held.at_once || held.buf.len() - held.sent >= WRITE_AT {
            held.write();
        }
        true
    })
}

/// Write what waits, as far as stderr takes it now. `Some(n)` when all of
/// it is out and `n` lines were dropped since the last `Some`.
pub fn flush() -> Option<u64> {
    HELD.with(|h| {
        let mut held = h.try_borrow_mut().ok()?;
        let held = held.as_mut()?;
        held.write();
        if held.buf.is_empty() && held.dropped > 0 {
            return Some(std::mem::take(&mut held.dropped));
        }
        None
    })
}

/// Bytes wait for stderr (the WasmEdge poller watches stderr only then).
pub fn pending() -> bool {
    HELD.with(|h| h.try_borrow().ok().and_then(|held| held.as_ref().map(|held| held.sent < held.buf.len())).unwrap_or(false))
}

/// Wait, at most `timeout`, until stderr may take bytes (at exit).
pub fn wait(timeout: Duration) {
    let wait = HELD.with(|h| h.try_borrow().ok().and_then(|held| held.as_ref().map(|held| held.sink.wait)));
    if let Some(wait) = wait {
        wait(timeout);
    }
}

impl Held {
    fn write(&mut self) {
        while let Some(rest) = self.buf.get(self.sent..).filter(|r| !r.is_empty()) {
            match (self.sink.write)(rest) {
                Ok(0) => break,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A closed or broken stderr: what waits can never go out (as
                // before, a write error must not stop the proxy).
                Err(_) => self.sent = self.buf.len(),
            }
        }
        if self.sent >= self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        } else if self.sent >= self.buf.len() / 2 {
            // Keep the buffer from creeping: move the rest to the front, at
            // most once per half of it written.
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    std::thread_local! {
        /// The fake stderr's room: bytes it takes before it would block.
        static ROOM: Cell<usize> = const { Cell::new(0) };
        static TAKEN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    fn fake_write(buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(ROOM.with(Cell::get));
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        ROOM.with(|r| r.set(r.get() - n));
        TAKEN.with(|t| t.borrow_mut().extend_from_slice(&buf[..n]));
        Ok(n)
    }

    fn fake() -> Sink {
        Sink { write: fake_write, wait: |_| {} }
    }

    #[test]
    fn a_stalled_stderr_keeps_the_first_mebibyte_and_counts_the_rest() {
        ROOM.with(|r| r.set(10));
        hold(fake(), false);
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let lines = CAPACITY / 100 + 50;
        for _ in 0..lines {
            assert!(put(&line));
        }
        assert_eq!(flush(), None, "nothing is told while lines still wait");
        assert!(pending());
        // The reader catches up: every kept line comes out whole, in order, then the count.
        ROOM.with(|r| r.set(usize::MAX));
        let dropped = flush().expect("the count, once everything is out");
        let taken = TAKEN.with(|t| t.take());
        assert_eq!(taken.len() % 100, 0);
        let kept = taken.len() / 100;
        assert!(kept >= CAPACITY / 100, "{kept}");
        assert_eq!(kept as u64 + dropped, lines as u64);
        assert!(!pending());
        assert_eq!(flush(), None, "told once");
        stop();
        assert!(!put(&line), "not held after stop");
    }

    #[test]
    fn a_partial_write_goes_on_where_it_stopped() {
        ROOM.with(|r| r.set(3));
        hold(fake(), true);
        assert!(put(b"hello\n"));
        assert_eq!(TAKEN.with(|t| t.borrow().clone()), b"hel");
        ROOM.with(|r| r.set(100));
        assert!(put(b"world\n"));
        assert_eq!(TAKEN.with(|t| t.take()), b"hello\nworld\n");
        stop();
    }
}
