//! Budgets per destination (issue 47): what one client may ask of a name in
//! a window. The request past a limit is refused with 429 (a SOCKS5 "not
//! allowed"), a connection that passes a byte limit while it runs is
//! closed, a new window starts afresh, and the metrics show each budget's
//! use.

use super::*;

/// An origin answering `GET /N` with N bytes (then closing).
fn sized_origin() -> Server {
    Server::start(|mut s| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
        let n: usize = line.split(' ').nth(1).and_then(|p| p.trim_start_matches('/').parse().ok()).unwrap_or(0);
        let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n").as_bytes());
        let _ = s.write_all(&vec![b'x'; n]);
    })
}

pub fn budgets_refuse_past_their_limits_and_a_new_window_starts_afresh(rt: Runtime) {
    let origin = sized_origin();
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("a.test", "127.0.0.1"), ("b.test", "127.0.0.1"), ("c.test", "127.0.0.1")], &[], &[]);
    let options = format!("to=a.test,b.test,c.test;to-net=127.0.0.0/8;ports={port};budget=a.test:2req/3s;budget=b.test:100KiB-down/1h");
    let mut p = forward(rt, &options, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let proxy = format!("http://{}", p.addr);
    let get = |host: &str, n: usize| curl(&["-x", &proxy, "-w", "\n%{http_code}", &format!("http://{host}:{port}/{n}")]);
    // Two requests in the window, then 429 with the rule and when it starts again.
    let started = Instant::now();
    for _ in 0..2 {
        let (code, body, err) = get("a.test", 2);
        assert_eq!((code, body.as_str()), (0, "xx\n200"), "{err}");
    }
    let (_, body, _) = get("a.test", 2);
    assert!(body.ends_with("\n429") && body.contains("refused (rule budget): 127.0.0.1 used its budget for a.test (2 requests"), "{body}");
    // SOCKS5 meets the same budget: refused before any byte goes out.
    let before = origin.accepted();
    let (code, _, _) = curl(&["--socks5-hostname", &p.addr.to_string(), &format!("http://a.test:{port}/2")]);
    assert_ne!(code, 0, "refused over SOCKS5 too");
    assert_eq!(origin.accepted(), before, "refused requests reached no origin");
    // Another name has no budget (or its own).
    assert_eq!(get("c.test", 2).1, "xx\n200");
    // A new window: allowed again.
    thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(300));
    assert_eq!(get("a.test", 2).1, "xx\n200", "the window ended: a fresh one");
    // Bytes: a 1 MiB answer passes 100 KiB down: the connection is closed
    // (the client gets less than its Content-Length), then 429.
    let (code, body, _) = get("b.test", 1 << 20);
    assert_ne!(code, 0, "cut short");
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let closed = record(&p.wait_for_log("the close past the byte limit", |l| l.contains(" close ") && l.contains("passed its budget for b.test")));
    assert_eq!(closed["reason"], "over-budget");
    assert!(closed["error"].contains("passed its budget for b.test") && closed["error"].contains("past 102400"), "{closed:?}");
    let (_, body, _) = get("b.test", 2);
    assert!(body.ends_with("\n429") && body.contains("bytes down"), "{body}");
    // What the metrics show: each budget's fullest client and its refusals.
    let url = p.metrics.clone().expect("metrics URL");
    let s = scrape(&url);
    let value = |name: &str, budget: &str, what: Option<&str>| {
        s.iter().find(|(n, l, _)| n == name && l.get("budget").map(String::as_str) == Some(budget) && what.is_none_or(|w| l.get("what").map(String::as_str) == Some(w))).map(|x| x.2).unwrap_or_else(|| panic!("no {name} for {budget}"))
    };
    assert_eq!(value("wasiter_budget_fullest", "a.test", Some("requests")), 1.0, "one request in the new window");
    assert!(value("wasiter_budget_fullest", "b.test", Some("down")) > 102400.0);
    assert!(value("wasiter_budget_refused_total", "a.test", None) >= 2.0, "the 429 and the SOCKS5 refusal");
    assert!(value("wasiter_budget_refused_total", "b.test", None) >= 2.0, "the close and the 429");
    let decided = sample(&s, "wasiter_forward_decisions_total", Some(("rule", "budget")));
    assert!(decided >= 3.0, "{decided}");
}

pub fn a_bad_budget_says_what_is_wrong(rt: Runtime) {
    let out = rt.command(&[], &["--check", "--route", "127.0.0.1:3128=forward;to=a.test;budget=a.test:10/1h"]).output().expect("wasiter runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad budget is a configuration error");
    assert!(err.contains("bad budget \"a.test:10/1h\": \"10\" is not a limit") && err.lines().count() == 1, "one line: {err}");
}
