//! The relay's unit tests: a direction driven against in-memory ends
//! (`Fake`), so every case of reading, holding, writing and FIN is exact.
//! A file of their own: the relay itself reads better without them.

use super::*;
use std::collections::VecDeque;

/// An in-memory end: `input` is what read() returns (None = would block),
/// `room` is how many bytes write() accepts before it would block.
#[derive(Default)]
struct Fake {
    input: VecDeque<Option<Vec<u8>>>,
    eof: bool,
    read_error: bool,
    written: Vec<u8>,
    writes: usize,
    room: usize,
    write_error: bool,
    shut: bool,
    ended_for_close: bool,
}

impl Endpoint for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read_error {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        match self.input.pop_front() {
            Some(Some(mut chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.input.push_front(Some(chunk.split_off(n)));
                }
                Ok(n)
            }
            Some(None) => Err(io::ErrorKind::WouldBlock.into()),
            None if self.eof => Ok(0),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.write_error {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.room);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.room -= n;
        self.writes += 1;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
    fn end_before_close(&mut self) {
        self.ended_for_close = true;
    }
}

fn source(chunks: &[&[u8]], eof: bool) -> Fake {
    Fake { input: chunks.iter().map(|c| Some(c.to_vec())).collect(), eof, ..Fake::default() }
}

fn sink(room: usize) -> Fake {
    Fake { room, ..Fake::default() }
}

/// One pump with holding off, as natively.
fn pump(d: &mut Direction, src: &mut Fake, dst: &mut Fake, pool: &mut Buffers) -> Result<bool, Failure> {
    let mut shape = Shape::default();
    let mut pace = Pace { now: Instant::now(), cap: None, route: &mut shape };
    d.pump(src, dst, pool, &mut pace, None, false, |_| {})
}

/// One pump with holding on, at `now`; returns what it noted.
fn pump_at(d: &mut Direction, src: &mut Fake, dst: &mut Fake, pool: &mut Buffers, now: Instant, route: &mut Shape) -> Vec<String> {
    let mut pace = Pace { now, cap: Some(crate::coalesce::DEFAULT_CAP), route };
    let mut notes = Vec::new();
    d.pump(src, dst, pool, &mut pace, None, false, |n| notes.push(format!("{n:?}"))).unwrap();
    notes
}

#[test]
fn a_held_piece_waits_for_the_next_and_both_go_in_one_write() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let (mut dst, mut pool, mut route) = (sink(1 << 20), Buffers::new(64 * 1024, 8), Shape::default());
    let mut d = Direction::new();
    // First answer: two pieces, written as they come (the split is learned).
    let mut src = source(&[b"HEAD"], false);
    pump_at(&mut d, &mut src, &mut dst, &mut pool, ms(0), &mut route);
    src.input.push_back(Some(b"body".to_vec()));
    pump_at(&mut d, &mut src, &mut dst, &mut pool, ms(0) + Duration::from_micros(60), &mut route);
    assert_eq!(dst.writes, 2);
    assert_eq!(route.pieces, 2);
    d.heard_back(); // the client asks again
    // Second answer: the first piece is held...
    src.input.push_back(Some(b"HEAD".to_vec()));
    let notes = pump_at(&mut d, &mut src, &mut dst, &mut pool, ms(10), &mut route);
    assert!(notes.iter().any(|n| n.starts_with("Held { bytes: 4")), "{notes:?}");
    assert_eq!(dst.writes, 2, "nothing written while held");
    assert!(d.wants_read() && !d.wants_write(), "held: wait for the next piece, not for the destination");
    assert!(d.hold_until().is_some());
    // ...and leaves with the second, in one write.
    src.input.push_back(Some(b"body".to_vec()));
    let notes = pump_at(&mut d, &mut src, &mut dst, &mut pool, ms(10) + Duration::from_micros(50), &mut route);
    assert!(notes.iter().any(|n| n.contains("why: NextPiece")), "{notes:?}");
    assert_eq!(dst.writes, 3);
    assert_eq!(dst.written, b"HEADbodyHEADbody");
    assert!(d.hold_until().is_none() && d.wants_read());
}

#[test]
fn a_hold_past_its_window_is_written_alone() {
    let t0 = Instant::now();
    let (mut dst, mut pool, mut route) = (sink(1 << 20), Buffers::new(1024, 8), Shape::default());
    let mut d = Direction::with_shape(Shape { pieces: 2, first_max: 100, gap_us: 50 });
    let mut src = source(&[b"only"], false);
    pump_at(&mut d, &mut src, &mut dst, &mut pool, t0, &mut route);
    let until = d.hold_until().expect("held");
    let mut notes = Vec::new();
    d.expire_hold(until, &mut route, |n| notes.push(format!("{n:?}")));
    assert!(notes[0].contains("why: Window"), "{notes:?}");
    assert!(d.wants_write());
    pump_at(&mut d, &mut src, &mut dst, &mut pool, until, &mut route);
    assert_eq!(dst.written, b"only");
}

#[test]
fn fin_releases_what_is_held_and_passes_on() {
    let t0 = Instant::now();
    let (mut dst, mut pool, mut route) = (sink(1 << 20), Buffers::new(1024, 8), Shape::default());
    let mut d = Direction::with_shape(Shape { pieces: 2, first_max: 100, gap_us: 50 });
    let mut src = source(&[b"last words"], false);
    pump_at(&mut d, &mut src, &mut dst, &mut pool, t0, &mut route);
    assert!(d.hold_until().is_some());
    src.eof = true;
    let notes = pump_at(&mut d, &mut src, &mut dst, &mut pool, t0, &mut route);
    assert!(notes.iter().any(|n| n.contains("why: Fin")), "{notes:?}");
    assert_eq!(dst.written, b"last words");
    assert!(dst.shut && d.is_done());
}

#[test]
fn the_last_fin_is_left_to_the_close() {
    // The other direction is done: the close sends this FIN, so no shutdown
    // (one call fewer per connection), but only once every byte is written.
    let (mut pool, mut shape) = (Buffers::new(1024, 8), Shape::default());
    let (mut src, mut dst) = (source(&[b"bye"], true), sink(2));
    let mut d = Direction::new();
    let mut pace = Pace { now: Instant::now(), cap: None, route: &mut shape };
    d.pump(&mut src, &mut dst, &mut pool, &mut pace, None, true, |_| {}).unwrap();
    assert!(!d.is_done() && !dst.ended_for_close, "a byte still waits");
    dst.room = 10;
    d.pump(&mut src, &mut dst, &mut pool, &mut pace, None, true, |_| {}).unwrap();
    assert_eq!(dst.written, b"bye");
    assert!(d.is_done() && dst.ended_for_close && !dst.shut);
}

#[test]
fn a_full_buffer_is_never_held() {
    let t0 = Instant::now();
    let (mut dst, mut pool, mut route) = (sink(1 << 20), Buffers::new(8, 8), Shape::default());
    let mut d = Direction::with_shape(Shape { pieces: 8, first_max: 100, gap_us: 50 });
    let mut src = source(&[b"abcd", b"efgh", b"ij"], false);
    // Held pieces fill the 8-byte buffer: it is written, then reading goes on.
    for _ in 0..3 {
        pump_at(&mut d, &mut src, &mut dst, &mut pool, t0, &mut route);
    }
    assert!(dst.written.starts_with(b"abcdefgh"), "{:?}", dst.written);
}

#[test]
fn relays_every_chunk_in_order() {
    let (mut src, mut dst, mut pool) = (source(&[b"hello ", b"world"], false), sink(1 << 20), Buffers::new(4, 8));
    let mut d = Direction::new();
    assert!(pump(&mut d, &mut src, &mut dst, &mut pool).unwrap());
    // "hell" filled the buffer, "o " was a short read: the socket is
    // taken to be empty until the poller says otherwise.
    assert_eq!(dst.written, b"hello ");
    assert!(pump(&mut d, &mut src, &mut dst, &mut pool).unwrap(), "readable again: the rest");
    assert_eq!(dst.written, b"hello world");
    assert_eq!(d.bytes, 11);
    assert_eq!(d.state(), State::Open);
    assert!(d.wants_read() && !d.wants_write());
}

#[test]
fn a_preload_larger_than_the_buffer_goes_out_whole() {
    let (mut src, mut dst, mut pool) = (source(&[b"rest"], false), sink(1 << 20), Buffers::new(64, 8));
    let mut d = Direction::new();
    d.preload(b"PROXY UNKNOWN\r\n", &mut pool);
    let hello = vec![0x16; 1000];
    d.preload(&hello, &mut pool);
    for _ in 0..4 {
        pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    }
    let mut want = b"PROXY UNKNOWN\r\n".to_vec();
    want.extend_from_slice(&hello);
    want.extend_from_slice(b"rest");
    assert_eq!(dst.written, want);
}

#[test]
fn preloaded_bytes_go_first() {
    let (mut src, mut dst, mut pool) = (source(&[b"GET /"], false), sink(1 << 20), Buffers::new(64, 8));
    let mut d = Direction::new();
    d.preload(b"PROXY UNKNOWN\r\n", &mut pool);
    assert!(d.wants_write() && !d.wants_read(), "the header waits for the destination");
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written, b"PROXY UNKNOWN\r\nGET /");
    assert_eq!(d.bytes, 20, "the header counts as bytes sent upstream");
}

#[test]
fn eof_is_passed_on_only_after_buffered_bytes() {
    let (mut src, mut dst, mut pool) = (source(&[b"abcdef"], true), sink(3), Buffers::new(16, 8));
    let mut d = Direction::new();
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written, b"abc");
    assert!(!dst.shut, "FIN must wait for the pending bytes");
    assert!(d.wants_write() && !d.wants_read(), "full destination: stop reading, wait to write");

    dst.room = 100;
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written, b"abcdef");
    assert!(dst.shut);
    assert!(d.is_done());
}

#[test]
fn eof_seen_in_the_last_round_is_still_passed_on() {
    // ROUNDS reads: ROUNDS-1 chunks, then EOF on the very last one.
    let chunks: Vec<Vec<u8>> = (0..ROUNDS - 1).map(|_| vec![9u8; 4]).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let (mut src, mut dst, mut pool) = (source(&refs, true), sink(1 << 20), Buffers::new(4, 8));
    let mut d = Direction::new();
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written.len(), 4 * (ROUNDS - 1));
    assert!(dst.shut && d.is_done(), "a drained EOF must not wait for an event that never comes");
}

#[test]
fn full_destination_stops_reading_and_keeps_the_bytes() {
    let big = vec![7u8; 100];
    let (mut src, mut dst, mut pool) = (source(&[&big, &big], false), sink(10), Buffers::new(32, 8));
    let mut d = Direction::new();
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written.len(), 10);
    assert!(!d.wants_read(), "no room: no read interest");
    assert!(d.wants_write());
    dst.room = 1000;
    while pump(&mut d, &mut src, &mut dst, &mut pool).unwrap() {}
    assert_eq!(dst.written.len(), 200);
}

#[test]
fn write_error_ends_only_this_direction() {
    let (mut src, mut dst, mut pool) = (source(&[b"data"], false), sink(10), Buffers::new(16, 8));
    dst.write_error = true;
    let mut d = Direction::new();
    assert!(matches!(pump(&mut d, &mut src, &mut dst, &mut pool), Err(Failure::Write(_))));
    assert!(d.is_done());
    assert!(!d.wants_read() && !d.wants_write());
}

#[test]
fn read_error_is_reported_as_a_read_failure() {
    let (mut src, mut dst, mut pool) = (source(&[], false), sink(10), Buffers::new(16, 8));
    src.read_error = true;
    let mut d = Direction::new();
    assert!(matches!(pump(&mut d, &mut src, &mut dst, &mut pool), Err(Failure::Read(_))));
}

#[test]
fn idle_direction_gives_its_buffer_back() {
    let (mut src, mut dst, mut pool) = (source(&[b"x"], false), sink(10), Buffers::new(16, 8));
    let mut d = Direction::new();
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert!(d.buf.is_none());
    assert_eq!(pool.free.len(), 1, "buffer returned to the pool");
    // Nothing to read: pump borrows and returns the same buffer.
    assert!(!pump(&mut d, &mut src, &mut dst, &mut pool).unwrap());
    assert_eq!(pool.free.len(), 1);
}

#[test]
fn pool_keeps_at_most_max_idle_buffers() {
    let mut pool = Buffers::new(8, 2);
    let bufs: Vec<_> = (0..5).map(|_| pool.take(true)).collect();
    bufs.into_iter().for_each(|b| pool.give(b));
    assert_eq!(pool.free.len(), 2);
}

#[test]
fn reads_are_small_until_a_direction_has_carried_a_bulk_transfer() {
    let size = 256 * 1024;
    let big = vec![7u8; size];
    // A peer that stopped reading after 100 KiB: what is held is at most
    // one small buffer's worth, in a small buffer.
    let (mut src, mut dst, mut pool) = (source(&[&big, &big], false), sink(100 * 1024), Buffers::new(size, 4));
    let mut d = Direction::new();
    while pump(&mut d, &mut src, &mut dst, &mut pool).unwrap() {}
    assert!(d.pending() > 0 && d.pending() <= SMALL, "{} bytes held", d.pending());
    assert_eq!(d.buf.as_ref().map(|b| b.len()), Some(SMALL));
    // Past BIG_AFTER carried, a read fills the full buffer: one read per 256 KiB.
    let chunks: Vec<Vec<u8>> = (0..(BIG_AFTER as usize / size + 4)).map(|_| big.clone()).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let (mut src, mut dst) = (source(&refs, false), sink(usize::MAX));
    let mut d = Direction::new();
    while pump(&mut d, &mut src, &mut dst, &mut pool).unwrap() {}
    assert_eq!(dst.written.len(), refs.len() * size, "everything passed");
    let small_writes = BIG_AFTER as usize / SMALL;
    assert_eq!(dst.writes, small_writes + (refs.len() * size - BIG_AFTER as usize) / size, "16 KiB writes, then 256 KiB ones");
    assert!(pool.free.len() == 1 && pool.small.len() == 1, "both sizes back in the pool");
}

#[test]
fn one_pump_is_bounded_so_others_get_a_turn() {
    let chunks: Vec<Vec<u8>> = (0..50).map(|_| vec![1u8; 4]).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let (mut src, mut dst, mut pool) = (source(&refs, false), sink(1 << 20), Buffers::new(4, 8));
    let mut d = Direction::new();
    pump(&mut d, &mut src, &mut dst, &mut pool).unwrap();
    assert_eq!(dst.written.len(), 4 * ROUNDS);
    while pump(&mut d, &mut src, &mut dst, &mut pool).unwrap() {}
    assert_eq!(dst.written.len(), 200);
}
