//! Arbitrary bytes as a metrics request head, as a scraper (or anyone who
//! can reach the metrics port) may send them. `metrics::respond` must never
//! panic, and whatever it answers must be a well-formed HTTP/1.1 response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::metrics::respond;

fuzz_target!(|data: &[u8]| {
    if let Some(answer) = respond(data, |_| "wasiter_connections_total{route=\"127.0.0.1:8080\"} 3\n".to_string()) {
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
