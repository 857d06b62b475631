//! Counters, and the optional Prometheus endpoint that the same loop serves.
//!
//! A scrape is a tiny HTTP/1.x exchange: read the request head (at most
//! `MAX_REQUEST` bytes), answer `GET /metrics` with the text exposition format
//! (version 0.0.4), `GET /allowlist` with report mode's drafts (`ledger`),
//! anything else with 404 or 405, then close (`served` carries the exchange).

use std::fmt::Write as _;
use std::time::Instant;

use crate::ask::Scope;
use crate::close::Close;
use crate::ledger::Destinations;
use crate::pool::{Pool, Server};
use crate::served::MAX_REQUEST;

/// One route's counters. Per-upstream figures live in its `Pool`.
#[derive(Default)]
pub struct Stats {
    pub connections: u64,
    /// Client connections open now (relaying, connecting or awaiting a header).
    pub active: u64,
    pub to_upstream: u64,
    pub to_client: u64,
    /// Closes by kind, indexed by `Close as usize`.
    closes: [u64; Close::ALL.len()],
}

impl Stats {
    /// A client connection ended: count why, and it is no longer active.
    pub fn closed(&mut self, why: Close) {
        self.active = self.active.saturating_sub(1);
        if let Some(count) = self.closes.get_mut(why as usize) {
            *count += 1;
        }
    }
}

/// Reloads of the routes file so far.
#[derive(Default)]
pub struct Reloads {
    pub ok: u64,
    pub failed: u64,
    /// When the last good one applied (seconds since the Unix epoch).
    pub last_ok: Option<u64>,
}

/// What one route shows: its name (listen address), counters and pool. On
/// a port routed by name, each route also has a `backend` (what it serves),
/// and the port itself shows what happened before a route was picked: a
/// view with no backend and no pool.
pub struct RouteView<'a> {
    pub name: &'a str,
    pub backend: Option<&'a str>,
    pub stats: &'a Stats,
    pub pool: Option<&'a Pool>,
    /// A forward route's destinations.
    pub destinations: Option<&'a Destinations>,
    /// A DNS route's answers, by `dns_server::RCODES`, and the questions it dropped.
    pub dns: Option<(&'a [u64; 6], u64)>,
    /// A UDP route's datagrams (its flows are its connections).
    pub udp: Option<UdpView>,
}

/// A UDP relay's counters, named by the relay (so this file needs no
/// word of it).
pub struct UdpView {
    /// Datagrams passed on: to upstreams, to clients.
    pub datagrams: (u64, u64),
    /// Datagrams dropped, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    /// Flows closed to make room for a new client.
    pub evicted: u64,
}

/// Ask mode's figures (`crate::ask::Board`): questions waiting by route
/// (every route in ask mode, 0 when none waits), and answers by route and
/// scope.
#[derive(Default)]
pub struct AskView<'a> {
    pub pending: Vec<(&'a str, u64)>,
    pub answers: &'a [(String, Scope, u64)],
}

impl RouteView<'_> {
    /// `route="..."` and, if it has one, `,backend="..."`.
    fn labels(&self) -> String {
        match self.backend {
            Some(b) => format!("route=\"{}\",backend=\"{}\"", label(self.name), label(b)),
            None => format!("route=\"{}\"", label(self.name)),
        }
    }
}

/// The Prometheus text exposition format, every route in each family.
/// One budget's use (`crate::forward::budget`): its route, its names as
/// written, the fullest client's use in its window (requests, bytes up,
/// bytes down) and the requests and connections refused for it.
pub struct BudgetRow {
    pub route: String,
    pub budget: String,
    pub fullest: [u64; 3],
    pub refused: u64,
}

/// The event loop's own counts (`proxy::Proxy::run`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopCounts {
    pub iterations: u64,
    pub wakeups: u64,
    /// Passes that watched every connection; the others watched the busy
    /// ones (and, where the poller lists afresh, a slice of the quiet).
    pub full_passes: u64,
}

pub fn render(routes: &[RouteView<'_>], (asks, budgets): (&AskView<'_>, &[BudgetRow]), reloads: &Reloads, counts: LoopCounts, now: Instant) -> String {
    let mut out = String::with_capacity(2048);
    // One family at a time: HELP and TYPE, then its samples.
    let mut w = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per_route = |f: &dyn Fn(&Stats) -> u64| -> Vec<(String, u64)> {
        routes.iter().map(|r| (format!("{{{}}}", r.labels()), f(r.stats))).collect()
    };
    w("wasiter_connections_total", "counter", "Client connections accepted.", &per_route(&|s| s.connections));
    w("wasiter_connections_active", "gauge", "Client connections open now.", &per_route(&|s| s.active));
    let mut bytes = Vec::new();
    for r in routes.iter().filter(|r| r.pool.is_some()) {
        let route = r.labels();
        bytes.push((format!("{{{route},direction=\"to_upstream\"}}"), r.stats.to_upstream));
        bytes.push((format!("{{{route},direction=\"to_client\"}}"), r.stats.to_client));
    }
    w("wasiter_bytes_total", "counter", "Bytes relayed, by direction.", &bytes);
    let closes: Vec<_> = routes
        .iter()
        .flat_map(|r| {
            let route = r.labels();
            Close::ALL.iter().zip(r.stats.closes).map(move |(why, n)| (format!("{{{route},reason=\"{}\"}}", why.name()), n))
        })
        .collect();
    w("wasiter_closes_total", "counter", "Connections closed, by reason.", &closes);
    let per = |f: &dyn Fn(&Server) -> u64| -> Vec<(String, u64)> {
        routes
            .iter()
            .flat_map(|r| {
                let servers = r.pool.map(|p| p.servers.as_slice()).unwrap_or_default();
                servers.iter().map(|s| (format!("{{{},upstream=\"{}\"}}", r.labels(), label(&s.addr.to_string())), f(s)))
            })
            .collect()
    };
    w("wasiter_upstream_connects_total", "counter", "Successful connects, by upstream address.", &per(&|s| s.connects));
    w("wasiter_upstream_connect_failures_total", "counter", "Failed or timed-out connects, by upstream address.", &per(&|s| s.failures));
    w("wasiter_upstream_connections_active", "gauge", "Connections relaying to this upstream address now.", &per(&|s| s.active));
    w(
        "wasiter_upstream_up",
        "gauge",
        "0 while this upstream address is skipped after failed connects (its cool-down), else 1.",
        &per(&|s| s.is_up(now) as u64),
    );
    let (mut asked, mut decided) = (Vec::new(), Vec::new());
    for r in routes {
        let Some(d) = r.destinations else { continue };
        let route = r.labels();
        asked.extend(d.hosts().map(|(host, n)| (format!("{{{route},host=\"{}\"}}", label(host)), n)));
        decided.extend(d.decisions().map(|(decision, rule, n)| (format!("{{{route},decision=\"{}\",rule=\"{}\"}}", decision.name(), rule.id()), n)));
    }
    if !asked.is_empty() {
        let help = "Requests to a forward route, by the host they named (the first 64 hosts; the rest as other).";
        w("wasiter_forward_requests_total", "counter", help, &asked);
        let help = "A forward route's decisions, by decision (allow, deny, would-deny) and the rule that made it.";
        w("wasiter_forward_decisions_total", "counter", help, &decided);
    }
    let mut answers = Vec::new();
    for r in routes {
        let Some((counts, dropped)) = r.dns else { continue };
        let route = r.labels();
        answers.extend(crate::dns_server::RCODES.iter().zip(counts).map(|(code, n)| (format!("{{{route},answer=\"{code}\"}}"), *n)));
        answers.push((format!("{{{route},answer=\"dropped\"}}"), dropped));
    }
    if !answers.is_empty() {
        w("wasiter_dns_answers_total", "counter", "A DNS route's answers, by response code (dropped: not answered: unreadable, busy, or from a denied address).", &answers);
    }
    let (mut datagrams, mut dropped, mut evicted) = (Vec::new(), Vec::new(), Vec::new());
    for r in routes {
        let Some(u) = &r.udp else { continue };
        let route = r.labels();
        datagrams.push((format!("{{{route},direction=\"to_upstream\"}}"), u.datagrams.0));
        datagrams.push((format!("{{{route},direction=\"to_client\"}}"), u.datagrams.1));
        dropped.extend(u.dropped.iter().map(|(why, n)| (format!("{{{route},reason=\"{why}\"}}"), *n)));
        evicted.push((format!("{{{route}}}"), u.evicted));
    }
    if !datagrams.is_empty() {
        w("wasiter_udp_datagrams_total", "counter", "A UDP route's datagrams passed on, by direction (its flows count as connections, its bytes in wasiter_bytes_total).", &datagrams);
        w("wasiter_udp_dropped_total", "counter", "A UDP route's datagrams not passed on, by reason (denied, no-upstream, full: no room in the socket's buffer, error; kernel: dropped by the kernel at the route's sockets, their buffer full, natively only).", &dropped);
        w("wasiter_udp_flows_evicted_total", "counter", "A UDP route's flows closed to make room for a new client (flows= reached).", &evicted);
    }
    if !asks.pending.is_empty() || !asks.answers.is_empty() {
        let pending: Vec<_> = asks.pending.iter().map(|(route, n)| (format!("{{route=\"{}\"}}", label(route)), *n)).collect();
        w("wasiter_ask_pending", "gauge", "Questions waiting for a person's answer, by route (ask mode).", &pending);
        // Every scope of every route in ask mode, 0 until it happens.
        let mut answers: Vec<(String, u64)> = Vec::new();
        let routes = asks.pending.iter().map(|(r, _)| *r).chain(asks.answers.iter().map(|(r, _, _)| r.as_str()));
        for route in routes {
            for scope in Scope::ALL {
                let labels = format!("{{route=\"{}\",answer=\"{}\"}}", label(route), scope.name());
                let n = asks.answers.iter().find(|(r, s, _)| r == route && *s == scope).map_or(0, |(_, _, n)| *n);
                if !answers.iter().any(|(l, _)| *l == labels) {
                    answers.push((labels, n));
                }
            }
        }
        w("wasiter_ask_answers_total", "counter", "Questions answered, by route and answer (timeout: nobody answered in time; full: refused to make room).", &answers);
    }
    if !budgets.is_empty() {
        let labels = |b: &BudgetRow| format!("route=\"{}\",budget=\"{}\"", label(&b.route), label(&b.budget));
        let used: Vec<_> = budgets.iter().flat_map(|b| ["requests", "up", "down"].iter().zip(b.fullest).map(move |(what, n)| (format!("{{{},what=\"{what}\"}}", labels(b)), n))).collect();
        w("wasiter_budget_fullest", "gauge", "A budget's use by its fullest client in that client's window: requests, bytes up, bytes down (budget=).", &used);
        let refused: Vec<_> = budgets.iter().map(|b| (format!("{{{}}}", labels(b)), b.refused)).collect();
        w("wasiter_budget_refused_total", "counter", "Requests refused (429) and connections closed for passing a budget.", &refused);
    }
    let by_result = [("{result=\"ok\"}".to_string(), reloads.ok), ("{result=\"failed\"}".to_string(), reloads.failed)];
    w("wasiter_reloads_total", "counter", "Reloads of the routes file, by result.", &by_result);
    if let Some(at) = reloads.last_ok {
        w("wasiter_last_reload_success_timestamp_seconds", "gauge", "When the last good reload applied (Unix time).", &[(String::new(), at)]);
    }
    w("wasiter_loop_iterations_total", "counter", "Passes of the event loop.", &[(String::new(), counts.iterations)]);
    w("wasiter_loop_full_passes_total", "counter", "Passes that watched every connection (the rest watch the busy ones, and a slice of the quiet ones where the poller lists afresh).", &[(String::new(), counts.full_passes)]);
    w("wasiter_poll_wakeups_total", "counter", "Waits that returned at least one ready socket.", &[(String::new(), counts.wakeups)]);
    let dropped = crate::log::dropped_total();
    w("wasiter_log_lines_dropped_total", "counter", "Log lines dropped because stderr was not read and 1 MiB of lines already waited.", &[(String::new(), dropped)]);
    out
}

/// A label value: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What the metrics port serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Metrics,
    /// Report mode's draft allowlists (plain text, a routes file).
    Allowlist,
}

/// The answer to a request head, or None while the head is incomplete.
pub fn respond(request: &[u8], body: impl FnOnce(Page) -> String) -> Option<Vec<u8>> {
    let complete = crate::served::head_end(request).is_some();
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
        ("200 OK", body(Page::Metrics))
    } else if path == b"/allowlist" {
        ("200 OK", body(Page::Allowlist))
    } else {
        ("404 Not Found", "metrics are at /metrics, report mode's allowlist drafts at /allowlist\n".to_string())
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
    use crate::ledger::MAX_DESTINATIONS;
    use crate::pool::FailPolicy;
    use crate::route::{Policy, Remote};
    use std::time::Duration;

    fn pool() -> Pool {
        let remote = Remote { host: "127.0.0.1".into(), port: 80 };
        let health = FailPolicy { threshold: 1, cooldown: Duration::from_secs(10) };
        Pool::new(vec![remote], vec![vec!["127.0.0.1:80".parse().unwrap()]], Policy::Failover, health)
    }

    fn render_two(now: Instant) -> String {
        let mut s = Stats { connections: 3, active: 4, to_upstream: 10, ..Stats::default() };
        s.closed(Close::ClientClosed);
        s.closed(Close::Denied);
        assert_eq!(s.active, 2, "a close is no longer active");
        let mut p = pool();
        p.record("127.0.0.1:80".parse().unwrap(), crate::pool::Outcome::Failed, now);
        let other = Stats::default();
        let p2 = pool();
        let mut asked = Destinations::default();
        for i in 0..MAX_DESTINATIONS + 3 {
            asked.count(&format!("h{i}.test"));
        }
        asked.count("h0.test");
        let mut door = Stats { connections: 5, active: 1, ..Stats::default() };
        door.closed(Close::NoRoute);
        let routes = [
            RouteView { name: "0.0.0.0:8080", backend: None, stats: &s, pool: Some(&p), destinations: None, dns: None, udp: None },
            RouteView { name: "[::1]:9", backend: None, stats: &other, pool: Some(&p2), destinations: None, dns: None, udp: None },
            RouteView { name: "0.0.0.0:443", backend: None, stats: &door, pool: None, destinations: None, dns: None, udp: None },
            RouteView { name: "0.0.0.0:443", backend: Some("sni=app.test"), stats: &other, pool: Some(&p2), destinations: None, dns: None, udp: None },
            RouteView { name: "127.0.0.1:3128", backend: None, stats: &other, pool: Some(&p2), destinations: Some(&asked), dns: Some((&[5, 0, 2, 0, 0, 0], 1)), udp: None },
            RouteView { name: "udp:127.0.0.1:5353", backend: None, stats: &other, pool: Some(&p2), destinations: None, dns: None, udp: Some(UdpView { datagrams: (7, 6), dropped: vec![("denied", 2)], evicted: 1 }) },
        ];
        let answers = [("127.0.0.1:3128".to_string(), Scope::Once, 2), ("gone:1".to_string(), Scope::Timeout, 1)];
        let asks = AskView { pending: vec![("127.0.0.1:3128", 1), ("\"odd\"", 0)], answers: &answers };
        render(&routes, (&asks, &[]), &Reloads { ok: 2, failed: 1, last_ok: Some(1_800_000_000) }, LoopCounts { iterations: 7, wakeups: 5, full_passes: 3 }, now)
    }

    #[test]
    fn render_has_every_family_with_every_route() {
        let text = render_two(Instant::now());
        for line in [
            "wasiter_connections_total{route=\"0.0.0.0:8080\"} 3",
            "wasiter_connections_total{route=\"[::1]:9\"} 0",
            "wasiter_connections_active{route=\"0.0.0.0:8080\"} 2",
            "wasiter_bytes_total{route=\"0.0.0.0:8080\",direction=\"to_upstream\"} 10",
            "wasiter_closes_total{route=\"0.0.0.0:8080\",reason=\"client-closed\"} 1",
            "wasiter_closes_total{route=\"0.0.0.0:8080\",reason=\"denied\"} 1",
            "wasiter_closes_total{route=\"0.0.0.0:8080\",reason=\"idle-timeout\"} 0",
            "wasiter_upstream_connect_failures_total{route=\"0.0.0.0:8080\",upstream=\"127.0.0.1:80\"} 1",
            "wasiter_upstream_up{route=\"0.0.0.0:8080\",upstream=\"127.0.0.1:80\"} 0",
            "wasiter_upstream_up{route=\"[::1]:9\",upstream=\"127.0.0.1:80\"} 1",
            "wasiter_connections_total{route=\"0.0.0.0:443\"} 5",
            "wasiter_forward_requests_total{route=\"127.0.0.1:3128\",host=\"h0.test\"} 2",
            "wasiter_forward_requests_total{route=\"127.0.0.1:3128\",host=\"h63.test\"} 1",
            "wasiter_forward_requests_total{route=\"127.0.0.1:3128\",host=\"other\"} 3",
            "wasiter_closes_total{route=\"0.0.0.0:443\",reason=\"no-route\"} 1",
            "wasiter_connections_total{route=\"0.0.0.0:443\",backend=\"sni=app.test\"} 0",
            "wasiter_bytes_total{route=\"0.0.0.0:443\",backend=\"sni=app.test\",direction=\"to_client\"} 0",
            "wasiter_upstream_up{route=\"0.0.0.0:443\",backend=\"sni=app.test\",upstream=\"127.0.0.1:80\"} 1",
            "wasiter_loop_iterations_total 7",
            "wasiter_loop_full_passes_total 3",
            "# TYPE wasiter_log_lines_dropped_total counter",
            "wasiter_reloads_total{result=\"failed\"} 1",
            "wasiter_last_reload_success_timestamp_seconds 1800000000",
            "# TYPE wasiter_poll_wakeups_total counter",
            "wasiter_dns_answers_total{route=\"127.0.0.1:3128\",answer=\"NOERROR\"} 5",
            "wasiter_dns_answers_total{route=\"127.0.0.1:3128\",answer=\"REFUSED\"} 2",
            "wasiter_dns_answers_total{route=\"127.0.0.1:3128\",answer=\"dropped\"} 1",
            "wasiter_ask_pending{route=\"127.0.0.1:3128\"} 1",
            "wasiter_ask_pending{route=\"\\\"odd\\\"\"} 0",
            "wasiter_ask_answers_total{route=\"127.0.0.1:3128\",answer=\"once\"} 2",
            "wasiter_ask_answers_total{route=\"127.0.0.1:3128\",answer=\"deny-forever\"} 0",
            "wasiter_ask_answers_total{route=\"127.0.0.1:3128\",answer=\"full\"} 0",
            "wasiter_ask_answers_total{route=\"gone:1\",answer=\"timeout\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert_eq!(text.matches("# TYPE wasiter_connections_total").count(), 1, "a family is written once");
        assert_eq!(text.matches("wasiter_ask_answers_total{route=\"127.0.0.1:3128\",answer=\"once\"}").count(), 1, "a route's sample is written once");
        assert!(!text.contains("wasiter_bytes_total{route=\"0.0.0.0:443\",direction"), "a door relays nothing itself");
        assert!(!text.contains("h64.test"), "the 65th host is counted as other");
    }

    #[test]
    fn requests_get_the_right_answer() {
        let answer = |req: &[u8]| respond(req, |page| format!("{page:?}")).map(|r| String::from_utf8(r).unwrap());
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
