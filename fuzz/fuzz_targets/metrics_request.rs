//! Arbitrary bytes as a metrics request head, as a scraper (or anyone who
//! can reach the metrics port) may send them. `metrics::respond` must never
//! panic, and whatever it answers must be a well-formed HTTP/1.1 response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::metrics::{respond, Stats};

fuzz_target!(|data: &[u8]| {
    let stats = Stats::new("127.0.0.1:8080".to_string(), &["127.0.0.1:80".parse().unwrap()]);
    if let Some(answer) = respond(data, &stats, 3) {
        assert!(answer.starts_with(b"HTTP/1.1 "), "status line");
        let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
        let head = String::from_utf8(answer[..head_end].to_vec()).expect("an ASCII head");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("Content-Length");
        let body = answer.len() - head_end - 4;
        assert!(body == length || (body == 0 && data.starts_with(b"HEAD ")), "body matches Content-Length");
    }
});
