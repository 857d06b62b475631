//! Counters, and the optional Prometheus endpoint that the same loop serves.
//!
//! A scrape is a tiny HTTP/1.x exchange: read the request head (at most
//! `MAX_REQUEST` bytes), answer `GET /metrics` with the text exposition format
//! (version 0.0.4), anything else with 404 or 405, then close.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sys::{would_block, Stream};

/// Every `reason=` a close line can carry; `closes_total` has one series each.
pub const REASONS: [&str; 7] = [
    "client-closed",
    "upstream-closed",
    "client-error",
    "upstream-error",
    "connect-failed",
    "connect-timeout",
    "idle-timeout",
];

struct UpstreamStats {
    addr: SocketAddr,
    connects: u64,
    failures: u64,
    /// Relaying connections to it now.
    active: u64,
    /// Did the last connect to it succeed (true until one fails).
    up: bool,
}

pub struct Stats {
    route: String,
    pub connections: u64,
    pub to_upstream: u64,
    pub to_client: u64,
    closes: [u64; REASONS.len()],
    upstreams: Vec<UpstreamStats>,
    pub iterations: u64,
    pub wakeups: u64,
}

impl Stats {
    pub fn new(route: String, upstreams: &[SocketAddr]) -> Stats {
        Stats {
            route,
            connections: 0,
            to_upstream: 0,
            to_client: 0,
            closes: [0; REASONS.len()],
            upstreams: upstreams.iter().map(|&addr| UpstreamStats { addr, connects: 0, failures: 0, active: 0, up: true }).collect(),
            iterations: 0,
            wakeups: 0,
        }
    }

    pub fn closed(&mut self, reason: &str) {
        if let Some(count) = REASONS.iter().position(|r| *r == reason).and_then(|i| self.closes.get_mut(i)) {
            *count += 1;
        }
    }

    pub fn upstream_result(&mut self, index: usize, ok: bool) {
        if let Some(u) = self.upstreams.get_mut(index) {
            if ok {
                u.connects += 1;
                u.active += 1;
            } else {
                u.failures += 1;
            }
            u.up = ok;
        }
    }

    /// A connection relaying to upstream `index` has closed.
    pub fn upstream_closed(&mut self, index: usize) {
        if let Some(u) = self.upstreams.get_mut(index) {
            u.active = u.active.saturating_sub(1);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, active: usize) -> String {
        let route = label(&self.route);
        let mut out = String::with_capacity(2048);
        // One family at a time: HELP and TYPE, then its samples.
        let mut w = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let r = format!("{{route=\"{route}\"}}");
        w("wasiter_connections_total", "counter", "Client connections accepted.", &[(r.clone(), self.connections)]);
        w("wasiter_connections_active", "gauge", "Client connections open now.", &[(r.clone(), active as u64)]);
        w(
            "wasiter_bytes_total",
            "counter",
            "Bytes relayed, by direction.",
            &[
                (format!("{{route=\"{route}\",direction=\"to_upstream\"}}"), self.to_upstream),
                (format!("{{route=\"{route}\",direction=\"to_client\"}}"), self.to_client),
            ],
        );
        let closes: Vec<_> =
            REASONS.iter().zip(self.closes).map(|(why, n)| (format!("{{route=\"{route}\",reason=\"{why}\"}}"), n)).collect();
        w("wasiter_closes_total", "counter", "Connections closed, by reason.", &closes);
        let per = |f: &dyn Fn(&UpstreamStats) -> u64| -> Vec<(String, u64)> {
            self.upstreams
                .iter()
                .map(|u| (format!("{{route=\"{route}\",upstream=\"{}\"}}", label(&u.addr.to_string())), f(u)))
                .collect()
        };
        w("wasiter_upstream_connects_total", "counter", "Successful connects, by upstream address.", &per(&|u| u.connects));
        w(
            "wasiter_upstream_connect_failures_total",
            "counter",
            "Failed or timed-out connects, by upstream address.",
            &per(&|u| u.failures),
        );
        w("wasiter_upstream_connections_active", "gauge", "Connections relaying to this upstream address now.", &per(&|u| u.active));
        w("wasiter_upstream_up", "gauge", "1 unless the last connect to this upstream address failed.", &per(&|u| u.up as u64));
        w("wasiter_loop_iterations_total", "counter", "Passes of the event loop.", &[(String::new(), self.iterations)]);
        w("wasiter_poll_wakeups_total", "counter", "Waits that returned at least one ready socket.", &[(String::new(), self.wakeups)]);
        out
    }
}

/// A label value: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

const MAX_REQUEST: usize = 8 * 1024;
/// A scraper gets this long to send its request and read the answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One metrics request on its way through.
pub struct Scrape {
    stream: Stream,
    request: Vec<u8>,
    response: Vec<u8>,
    sent: usize,
    pub deadline: Instant,
}

impl Scrape {
    pub fn new(stream: Stream, now: Instant) -> Scrape {
        Scrape { stream, request: Vec::new(), response: Vec::new(), sent: 0, deadline: now + SCRAPE_TIMEOUT }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// (read, write): read the request, then write the answer.
    pub fn interest(&self) -> (bool, bool) {
        (self.response.is_empty(), !self.response.is_empty())
    }

    /// Make progress; `false` when the exchange is over and it can be closed.
    pub fn on_ready(&mut self, stats: &Stats, active: usize) -> bool {
        if self.response.is_empty() {
            let mut buf = [0u8; 1024];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return false, // gave up before asking
                    Ok(n) => self.request.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    Err(e) if would_block(&e) => break,
                    Err(_) => return false,
                }
                if self.request.len() > MAX_REQUEST {
                    break;
                }
            }
            match respond(&self.request, stats, active) {
                Some(response) => self.response = response,
                None => return true, // the head is not complete yet
            }
        }
        while self.sent < self.response.len() {
            match self.stream.write(self.response.get(self.sent..).unwrap_or_default()) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => return true,
                Err(_) => return false,
            }
        }
        let _ = self.stream.shutdown_write();
        false
    }
}

/// The answer to a request head, or None while the head is incomplete.
pub fn respond(request: &[u8], stats: &Stats, active: usize) -> Option<Vec<u8>> {
    let complete = request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n");
    if !complete && request.len() <= MAX_REQUEST {
        return None;
    }
    // The request line: METHOD SP TARGET SP HTTP/x.y, and nothing else.
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (method, path, version, extra) = (parts.next(), parts.next(), parts.next(), parts.next());
    let (method, path) = match (method, path, version, extra) {
        (Some(m), Some(p), Some(v), None) if v.starts_with(b"HTTP/") => (m, p),
        _ => (&b""[..], &b""[..]), // malformed: answered with 400 below
    };
    let (status, body) = if request.len() > MAX_REQUEST {
        ("431 Request Header Fields Too Large", String::new())
    } else if method.is_empty() {
        ("400 Bad Request", String::new())
    } else if method != b"GET" && method != b"HEAD" {
        ("405 Method Not Allowed", String::new())
    } else if path == b"/metrics" || path.starts_with(b"/metrics?") {
        ("200 OK", stats.render(active))
    } else {
        ("404 Not Found", "metrics are at /metrics\n".to_string())
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != b"HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        let mut s = Stats::new("0.0.0.0:8080".into(), &["127.0.0.1:80".parse().unwrap()]);
        s.connections = 3;
        s.to_upstream = 10;
        s.closed("client-closed");
        s.upstream_result(0, false);
        s
    }

    #[test]
    fn render_has_every_family_with_its_samples() {
        let text = stats().render(2);
        for line in [
            "wasiter_connections_total{route=\"0.0.0.0:8080\"} 3",
            "wasiter_connections_active{route=\"0.0.0.0:8080\"} 2",
            "wasiter_bytes_total{route=\"0.0.0.0:8080\",direction=\"to_upstream\"} 10",
            "wasiter_closes_total{route=\"0.0.0.0:8080\",reason=\"client-closed\"} 1",
            "wasiter_closes_total{route=\"0.0.0.0:8080\",reason=\"idle-timeout\"} 0",
            "wasiter_upstream_connect_failures_total{route=\"0.0.0.0:8080\",upstream=\"127.0.0.1:80\"} 1",
            "wasiter_upstream_up{route=\"0.0.0.0:8080\",upstream=\"127.0.0.1:80\"} 0",
            "# TYPE wasiter_poll_wakeups_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn requests_get_the_right_answer() {
        let s = stats();
        let answer = |req: &[u8]| respond(req, &s, 0).map(|r| String::from_utf8(r).unwrap());
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None, "head not complete yet");
        assert!(answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(answer(b"GET / HTTP/1.0\r\n\r\n").unwrap().starts_with("HTTP/1.1 404"));
        assert!(answer(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap().starts_with("HTTP/1.1 405"));
        assert!(answer(&[b'a'; MAX_REQUEST + 1]).unwrap().starts_with("HTTP/1.1 431"));
        // Found by fuzzing: a bare "HEAD" line was taken for a HEAD request.
        assert!(answer(b"HEAD\n /metrics HTTP/1.1\r\n\r\n").unwrap().starts_with("HTTP/1.1 400"));
        assert!(answer(b"GET /metrics\r\n\r\n").unwrap().starts_with("HTTP/1.1 400"), "no version");
        assert!(answer(b"GET /metrics HTTP/1.1 x\r\n\r\n").unwrap().starts_with("HTTP/1.1 400"), "extra part");
        let head = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n").unwrap();
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
