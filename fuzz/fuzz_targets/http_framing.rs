//! Arbitrary bytes as a request body or an answer passing through the
//! forward proxy's framing (`wasiter::http1`): the readers never panic,
//! never claim more bytes than they were given, and say the same wherever
//! the bytes are split (as TCP may split them): where the message ends, or
//! that it is malformed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::http1::{Body, BodyReader, ResponseReader};

/// Feed `data` in pieces cut at `cuts`: (bytes used, done, error).
fn run<R>(reader: &mut R, data: &[u8], cuts: &[usize], feed: impl Fn(&mut R, &[u8]) -> Result<usize, String>, done: impl Fn(&R) -> bool) -> (usize, bool, bool) {
    let mut used = 0;
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let end = cut.clamp(at, data.len());
        let piece = &data[at..end];
        match feed(reader, piece) {
            Ok(n) => {
                assert!(n <= piece.len(), "used {n} of {} bytes", piece.len());
                used += n;
                if n < piece.len() {
                    assert!(done(reader), "bytes left over only once the message ended");
                    return (used, true, false);
                }
            }
            Err(why) => {
                assert!(!why.contains('\n'), "one line: {why:?}");
                return (used, false, true);
            }
        }
        at = end;
    }
    (used, done(reader), false)
}

/// The same verdict: malformed both ways, or the same end at the same byte.
/// (How many bytes went by before an error depends on where the cuts fell.)
fn same(whole: (usize, bool, bool), split: (usize, bool, bool)) {
    if whole.2 || split.2 {
        assert_eq!(whole.2, split.2, "malformed however it is split: {whole:?} {split:?}");
    } else {
        assert_eq!(whole, split, "the same end however it is split");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else { return };
    // The cuts: a few positions from the data itself, in order.
    let mut cuts: Vec<usize> = data.iter().take(4).map(|&b| (b as usize * 31) % (data.len() + 1)).collect();
    cuts.sort_unstable();
    if mode % 3 == 2 {
        let to_head = mode & 4 != 0;
        let reader = || ResponseReader::new(to_head).with_upgrade(mode & 8 != 0);
        let whole = run(&mut reader(), data, &[], |r, b| r.feed(b), |r| r.done());
        let split = run(&mut reader(), data, &cuts, |r, b| r.feed(b), |r| r.done());
        // A 101 only where an upgrade was asked for.
        if whole.1 && !whole.2 && mode & 8 == 0 {
            let mut r = reader();
            let _ = r.feed(data);
            assert_ne!(r.status, Some(101), "a 101 nobody asked for was taken");
        }
        same(whole, split);
    } else {
        let body = if mode % 3 == 0 { Body::Chunked } else { Body::Length(u64::from(mode) * 7) };
        let whole = run(&mut BodyReader::new(body), data, &[], |r, b| r.feed(b), |r| r.done());
        let split = run(&mut BodyReader::new(body), data, &cuts, |r, b| r.feed(b), |r| r.done());
        same(whole, split);
    }
});
