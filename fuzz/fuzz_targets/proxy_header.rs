//! Arbitrary bytes as what a client of an `accept-proxy` route sends first,
//! fed in the pieces the reader asks for (as the loop does). The reader must
//! never panic, never ask for nothing, never take more than a v1 header's
//! 107 bytes or a v2 header's declared length, and hand back every byte
//! read past the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::proxy_header::Reader;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::default();
    let mut at = 0;
    while at < data.len() {
        let want = reader.want();
        assert!(want > 0, "the reader always asks for something");
        let n = want.min(data.len() - at);
        match reader.push(&data[at..at + n]) {
            Ok(None) => at += n,
            Ok(Some(got)) => {
                at += n;
                assert!(at <= 107 || data.starts_with(b"\r\n\r\n\0\r\nQUIT\n"), "a v1 header is at most 107 bytes");
                assert!(got.rest.len() <= at, "rest is what was read");
                assert_eq!(&data[at - got.rest.len()..at], &got.rest[..], "rest is the bytes after the header");
                return;
            }
            Err(why) => {
                assert!(!why.contains('\n'), "one line: {why:?}");
                return;
            }
        }
    }
});
