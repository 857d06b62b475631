//! What wasiter tells: close records in text and JSON, the traffic dump, metrics, the trace,
//! the summary line.

use super::*;

pub fn log_names_the_real_client_address(rt: Runtime) {
    let echo = Server::echo();
    let mut proxy = Proxy::start(rt, &echo.remote(), &[], &[]);
    assert_eq!(proxy.addr.ip().to_string(), "127.0.0.1", "start line names the real listen address");
    let c = proxy.connect();
    let me = c.local_addr().unwrap();
    let want = format!("client={me} ");
    let open = proxy.wait_for_log("open line", |l| l.contains(" open conn="));
    assert!(open.contains(&want), "open line {open:?} should name {me}");
    assert!(open.contains(&format!("upstream={}", echo.addr)), "{open}");
    drop(c);
    let close = proxy.wait_for_log("close line", |l| l.contains(" close conn="));
    assert!(close.contains(&want) && close.contains("reason=client-closed"), "{close}");
    assert!(close.contains("to_upstream=0 to_client=0 duration="), "{close}");
}

/// The close record of the first connection, parsed from text or JSON.
pub fn first_close(proxy: &mut Proxy) -> std::collections::HashMap<String, String> {
    let line = proxy.wait_for_log("close record", |l| {
        let r = record(l);
        r.get("event").map(String::as_str) == Some("close")
    });
    record(&line)
}

/// Make one connection end for `reason`, under a proxy logging in `format`.
pub fn provoke(rt: Runtime, format: &str, reason: &str) -> std::collections::HashMap<String, String> {
    let fmt = [("WASITER_LOG_FORMAT", format)];
    let with = |extra: (&'static str, &'static str)| [fmt[0], extra];
    match reason {
        "client-closed" => {
            let echo = Server::echo();
            let mut p = Proxy::start(rt, &echo.remote(), &fmt, &[]);
            assert_eq!(exchange(p.connect(), b"bye".to_vec()), b"bye");
            first_close(&mut p)
        }
        "upstream-closed" => {
            let server = Server::start(|mut s| {
                let _ = s.write_all(b"hello and goodbye");
            });
            let mut p = Proxy::start(rt, &server.remote(), &fmt, &[]);
            let mut c = p.connect();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            drop(c);
            first_close(&mut p)
        }
        "client-error" => {
            let server = Server::start(|mut s| while s.write_all(&[7u8; 16384]).is_ok() {});
            let mut p = Proxy::start(rt, &server.remote(), &fmt, &[]);
            let mut c = p.connect();
            read_exact_n(&mut c, 50_000);
            set_linger_zero(&c);
            drop(c);
            first_close(&mut p)
        }
        "upstream-error" => {
            let server = Server::start(|mut s| {
                let mut hi = [0u8; 2];
                let _ = s.read_exact(&mut hi);
                set_linger_zero(&s);
            });
            let mut p = Proxy::start(rt, &server.remote(), &fmt, &[]);
            let mut c = p.connect();
            c.write_all(b"hi").unwrap();
            let _ = c.read_to_end(&mut Vec::new());
            first_close(&mut p)
        }
        "connect-failed" => {
            let mut p = Proxy::start(rt, &format!("127.0.0.1:{}", free_port()), &fmt, &[]);
            let mut c = p.connect();
            assert!(is_closed(&mut c));
            first_close(&mut p)
        }
        "connect-timeout" => {
            let full = socket2_listener_backlog_zero();
            let addr = full.local_addr().unwrap();
            let _fillers: Vec<_> = (0..8).map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(100))).collect();
            let mut p = Proxy::start(rt, &addr.to_string(), &with(("WASITER_CONNECT_TIMEOUT", "300ms")), &[]);
            let mut c = p.connect();
            assert!(is_closed(&mut c));
            first_close(&mut p)
        }
        "idle-timeout" => {
            let echo = Server::echo();
            let mut p = Proxy::start(rt, &echo.remote(), &with(("WASITER_IDLE_TIMEOUT", "1s")), &[]);
            let mut c = p.connect();
            assert!(is_closed(&mut c));
            first_close(&mut p)
        }
        other => panic!("no scenario for {other}"),
    }
}

pub fn every_close_reason_is_logged_in_text_and_json(rt: Runtime) {
    let reasons =
        ["client-closed", "upstream-closed", "client-error", "upstream-error", "connect-failed", "connect-timeout", "idle-timeout"];
    for format in ["text", "json"] {
        for reason in reasons {
            let r = provoke(rt, format, reason);
            assert_eq!(r["reason"], reason, "{format}: {r:?}");
            assert_eq!(r["level"], "info");
            for field in ["ts", "conn", "route", "client", "upstream", "to_upstream", "to_client", "duration"] {
                assert!(r.contains_key(field), "{format} {reason}: no {field} in {r:?}");
            }
            assert!(r["ts"].ends_with('Z') && r["ts"].contains('T'), "RFC 3339: {}", r["ts"]);
            assert!(r["client"].starts_with("127.0.0.1:"), "{r:?}");
            assert!(r["route"].starts_with("127.0.0.1:") && !r["route"].ends_with(":0"), "the real listen address: {r:?}");
            if reason.ends_with("-error") || reason == "connect-failed" {
                assert!(r.get("error").is_some_and(|e| !e.is_empty()), "{reason} carries its error: {r:?}");
            }
            if format == "json" {
                assert!(r["conn"].parse::<u64>().is_ok(), "conn is a JSON number: {r:?}");
            }
        }
    }
}

pub fn log_level_filters_per_connection_lines(rt: Runtime) {
    let echo = Server::echo();
    let quiet = Proxy::start(rt, &echo.remote(), &[("WASITER_LOG_LEVEL", "warn")], &[]);
    assert_eq!(exchange(quiet.connect(), b"x".to_vec()), b"x");
    thread::sleep(Duration::from_millis(300));
    let log = quiet.log();
    assert!(log.iter().any(|l| l.contains(" start ")), "the start line stays");
    assert!(!log.iter().any(|l| l.contains(" open ") || l.contains(" close ")), "no connection lines at warn: {log:?}");

    let mut debug = Proxy::start(rt, &format!("127.0.0.1:{}", free_port()), &[("WASITER_LOG_LEVEL", "debug")], &[]);
    let mut c = debug.connect();
    assert!(is_closed(&mut c));
    debug.wait_for_log("debug line for the failed attempt", |l| l.contains(" debug connect-failed "));
}

pub fn dump_shows_the_exact_bytes_both_ways(rt: Runtime) {
    let sent: Vec<u8> = b"GET / HTTP/1.1\r\n\x00\x01\"q\"\xff".to_vec();
    let server = Server::start(|mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"OK:").unwrap();
        s.write_all(&got).unwrap();
    });
    for mode in ["text", "hex"] {
        for format in ["text", "json"] {
            let mut p = Proxy::start(rt, &server.remote(), &[("WASITER_DUMP", mode), ("WASITER_LOG_FORMAT", format)], &[]);
            let reply = exchange(p.connect(), sent.clone());
            let mut want_back = b"OK:".to_vec();
            want_back.extend_from_slice(&sent);
            assert_eq!(reply, want_back);
            first_close(&mut p); // everything is logged by now
            let dumps: Vec<_> = p.log().iter().map(|l| record(l)).filter(|r| r["event"] == "dump").collect();
            let shown = |dir: &str| -> Vec<u8> {
                let mut all = Vec::new();
                for r in dumps.iter().filter(|r| r["dir"] == dir) {
                    let bytes = if mode == "hex" {
                        r["hex"].split(' ').map(|h| u8::from_str_radix(h, 16).unwrap()).collect::<Vec<u8>>()
                    } else {
                        unescape(&r["data"])
                    };
                    assert_eq!(bytes.len().to_string(), r["len"]);
                    all.extend(bytes);
                }
                all
            };
            assert_eq!(shown("to_upstream"), sent, "{mode}/{format} dump of what the client sent");
            assert_eq!(shown("to_client"), want_back, "{mode}/{format} dump of the answer");
        }
    }
}

/// Undo `<[u8]>::escape_ascii`: \n \r \t \\ \' \" and \xNN.
pub fn unescape(s: &str) -> Vec<u8> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::new(), 0);
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'x' => {
                out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 2;
    }
    out
}

pub fn dump_is_capped_per_connection(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[("WASITER_DUMP", "hex"), ("WASITER_DUMP_LIMIT", "100")], &[]);
    let data = pattern(50_000, 9);
    assert!(exchange(p.connect(), data.clone()) == data);
    first_close(&mut p);
    let dumps: Vec<_> = p.log().iter().map(|l| record(l)).filter(|r| r["event"] == "dump").collect();
    let dumped: usize = dumps.iter().filter_map(|r| r.get("len")).map(|n| n.parse::<usize>().unwrap()).sum();
    assert_eq!(dumped, 100, "at most --dump-limit bytes per connection");
    assert_eq!(dumps.iter().filter(|r| r.contains_key("truncated")).count(), 1, "one truncation notice");
}

/// Scrape, and parse with Prometheus' own Python parser (prometheus_client),
/// checking what `promtool check metrics` would (every family has HELP and a
/// TYPE, no series twice) without installing a Prometheus server.
pub fn scrape(url: &str) -> Vec<(String, std::collections::HashMap<String, String>, f64)> {
    let out = Command::new("curl").args(["-sS", "--fail", "--max-time", "10", url]).output().expect("curl");
    assert!(out.status.success(), "scrape failed: {}", String::from_utf8_lossy(&out.stderr));
    let parse = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families as f\n\
                 fams = list(f(sys.stdin.read()))\n\
                 bad = [m.name for m in fams if not m.documentation or m.type not in ('counter', 'gauge')]\n\
                 assert not bad, f'no HELP or TYPE: {bad}'\n\
                 series = [(s.name, tuple(sorted(s.labels.items()))) for m in fams for s in m.samples]\n\
                 assert len(series) == len(set(series)), 'a series twice'\n\
                 print(json.dumps([[s.name, s.labels, s.value] for m in fams for s in m.samples]))";
    let mut py = Command::new("python3")
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = py.wait_with_output().unwrap();
    assert!(parsed.status.success(), "prometheus_client could not parse:\n{}", String::from_utf8_lossy(&out.stdout));
    let v: Vec<(String, std::collections::HashMap<String, String>, f64)> = serde_json::from_slice(&parsed.stdout).unwrap();
    v
}

pub fn sample(samples: &[(String, std::collections::HashMap<String, String>, f64)], name: &str, label: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
        .2
}

pub fn metrics_count_what_happened(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[("WASITER_METRICS", "127.0.0.1:0")], &["--quiet"]);
    let url = p.metrics.clone().expect("metrics URL in the start line");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");
    // While one connection is open, it shows per route and per upstream.
    let held = p.connect();
    eventually("one active connection", || {
        let s = scrape(&url);
        sample(&s, "wasiter_connections_active", None) == 1.0
            && sample(&s, "wasiter_upstream_connections_active", Some(("upstream", &echo.addr.to_string()))) == 1.0
    });
    drop(held);
    let per = 1000;
    for i in 0..100 {
        let data = pattern(per, i);
        assert!(exchange(p.connect(), data.clone()) == data);
    }
    let mut samples = scrape(&url);
    let deadline = Instant::now() + PATIENCE;
    while sample(&samples, "wasiter_connections_active", None) != 0.0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50)); // the last close may still be in flight
        samples = scrape(&url);
    }
    let n = |name: &str, label: Option<(&str, &str)>| sample(&samples, name, label);
    assert_eq!(n("wasiter_connections_total", None), 101.0, "100 and the one held open first");
    assert_eq!(n("wasiter_connections_active", None), 0.0);
    assert_eq!(n("wasiter_bytes_total", Some(("direction", "to_upstream"))), (100 * per) as f64);
    assert_eq!(n("wasiter_bytes_total", Some(("direction", "to_client"))), (100 * per) as f64);
    assert_eq!(n("wasiter_closes_total", Some(("reason", "client-closed"))), 101.0);
    assert_eq!(n("wasiter_closes_total", Some(("reason", "idle-timeout"))), 0.0);
    let upstream = echo.addr.to_string();
    assert_eq!(n("wasiter_upstream_connects_total", Some(("upstream", &upstream))), 101.0);
    assert_eq!(n("wasiter_upstream_connections_active", Some(("upstream", &upstream))), 0.0);
    assert_eq!(n("wasiter_upstream_connect_failures_total", Some(("upstream", &upstream))), 0.0);
    assert_eq!(n("wasiter_upstream_up", Some(("upstream", &upstream))), 1.0);
    assert!(n("wasiter_loop_iterations_total", None) >= n("wasiter_poll_wakeups_total", None));
    assert!(n("wasiter_poll_wakeups_total", None) >= 100.0);
    p.assert_alive();

    // A failed upstream shows as down, with its failure counted.
    let dead = format!("127.0.0.1:{}", free_port());
    let p2 = Proxy::start(rt, &dead, &[("WASITER_METRICS", "127.0.0.1:0")], &["--quiet", "--fail-threshold", "1"]);
    let mut c = p2.connect();
    assert!(is_closed(&mut c));
    let url2 = p2.metrics.clone().unwrap();
    eventually("failure counted", || sample(&scrape(&url2), "wasiter_closes_total", Some(("reason", "connect-failed"))) == 1.0);
    let s2 = scrape(&url2);
    assert_eq!(sample(&s2, "wasiter_upstream_up", Some(("upstream", &dead))), 0.0);
    assert_eq!(sample(&s2, "wasiter_upstream_connect_failures_total", Some(("upstream", &dead))), 1.0);
}

pub fn metrics_are_off_by_default(rt: Runtime) {
    let echo = Server::echo();
    let p = Proxy::start(rt, &echo.remote(), &[], &[]);
    assert_eq!(p.metrics, None, "no metrics listener unless asked for");
    let start = p.log().into_iter().find(|l| l.contains(" start ")).unwrap();
    assert!(start.contains(" metrics=off "), "{start}");
}

pub fn trace_names_the_socket_calls(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[], &["--trace"]);
    assert_eq!(exchange(p.connect(), b"traced".to_vec()), b"traced");
    first_close(&mut p);
    let calls: Vec<String> =
        p.log().iter().map(|l| record(l)).filter(|r| r["event"] == "trace").map(|r| r["call"].clone()).collect();
    let wasmedge = matches!(rt, Runtime::WasmEdge | Runtime::WasmEdgeAot);
    let expected: &[&str] = if wasmedge {
        &["poll_oneoff(", "sock_accept(", "sock_getpeeraddr(", "sock_connect(", "sock_getsockopt(", "sock_recv(", "sock_send(", "sock_shutdown("]
    } else if rt == Runtime::Native {
        &["epoll_wait(", "accept(", "connect(", "getsockopt(", "recv(", "send(", "shutdown(", "close("]
    } else {
        &["poll(", "accept(", "connect(", "getsockopt(", "recv(", "send(", "shutdown(", "close("]
    };
    for call in expected {
        assert!(calls.iter().any(|c| c.starts_with(call)), "no {call} in the trace: {calls:?}");
    }
}

pub fn summary_reports_totals(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[("WASITER_SUMMARY_INTERVAL", "500ms")], &[]);
    for _ in 0..3 {
        assert_eq!(exchange(p.connect(), vec![1u8; 10]), vec![1u8; 10]);
    }
    let line = p.wait_for_log("summary after 3 closed connections", |l| {
        l.contains(" summary ") && l.contains(" active=0 ") && l.contains(" connections=3 ")
    });
    let r = record(&line);
    assert_eq!((r["to_upstream"].as_str(), r["to_client"].as_str()), ("30", "30"), "{line}");
}
