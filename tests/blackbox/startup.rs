//! Start-up: names resolved, bad settings as one line, --help and --version.

use super::*;

pub fn upstream_name_is_resolved(rt: Runtime) {
    let echo = Server::echo();
    let mut proxy = Proxy::start(rt, &format!("localhost:{}", echo.addr.port()), &[], &["--quiet"]);
    let start = proxy.wait_for_log("start line", |l| l.contains(" start "));
    assert!(start.contains(&format!("upstreams=127.0.0.1:{}", echo.addr.port())), "{start}");
    let got = exchange(proxy.connect(), b"by name".to_vec());
    assert_eq!(got, b"by name");
}

pub fn malformed_configuration_is_one_line_and_exit_2(rt: Runtime) {
    let s = |v: &str| v.to_string();
    type Case<'a> = (Vec<(&'a str, String)>, Vec<&'a str>, &'a str); // env, flags, error text
    let cases: Vec<Case> = vec![
        (vec![("REMOTE", s("127.0.0.1:80"))], vec![], "LOCAL is not set"),
        (vec![("LOCAL", s("127.0.0.1:0"))], vec![], "REMOTE is not set"),
        (vec![("LOCAL", s("8080")), ("REMOTE", s("127.0.0.1:80"))], vec![], "LOCAL: \"8080\" is not valid; expected [udp:]IP:PORT"),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("backend"))], vec![], "REMOTE: \"backend\" is not valid: bad upstream \"backend\"; expected HOST:PORT"),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("backend:70000"))], vec![], "REMOTE: \"backend:70000\""),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("a:1"))], vec!["--idle-timeout", "soon"], "--idle-timeout: \"soon\""),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("a:1")), ("WASITER_MAX_CONNS", s("-3"))], vec![], "WASITER_MAX_CONNS: \"-3\""),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("a:1"))], vec!["--bogus"], "--bogus"),
        (vec![], vec!["--route", "127.0.0.1:0=127.0.0.1:1;allow=10.0.0.0/33"], "--route: \"127.0.0.1:0=127.0.0.1:1;allow=10.0.0.0/33\" is not valid: bad CIDR \"10.0.0.0/33\""),
        (vec![("WASITER_ROUTES", s("127.0.0.1:0=backend"))], vec![], "WASITER_ROUTES: \"127.0.0.1:0=backend\" is not valid: bad upstream \"backend\""),
        (vec![], vec!["--route", "127.0.0.1:0"], "is not valid: no '=' between the listen address and the upstreams"),
        (vec![], vec!["--route", "127.0.0.1:0="], "is not valid: no upstream (an empty pool)"),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s(";policy=round-robin"))], vec![], "REMOTE: \";policy=round-robin\" is not valid: no upstream"),
        (vec![], vec![], "LOCAL is not set"),
        (vec![], vec!["--route", "127.0.0.1:9=a:1;sni=a*.test"], "--route: \"127.0.0.1:9=a:1;sni=a*.test\" is not valid: bad name \"a*.test\""),
        (vec![("WASITER_ROUTES", s("127.0.0.1:9=a:1;sni=x.test 127.0.0.1:9=b:1;sni=X.test."))], vec![], "two routes on 127.0.0.1:9 both serve sni=x.test"),
        (vec![], vec!["--route", "127.0.0.1:9=a:1", "--route", "127.0.0.1:9=b:1"], "two routes listen on 127.0.0.1:9 and neither says what it serves"),
        (vec![], vec!["--route", "127.0.0.1:9=a:1;host=a.test;allow=10.0.0.0/8", "--route", "127.0.0.1:9=b:1"], "the routes on 127.0.0.1:9 (--route and --route) differ in allow="),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("a:1"))], vec!["--peek-timeout", "0"], "--peek-timeout: \"0\" is not valid"),
        (vec![], vec!["--route", "0.0.0.0:0=forward"], "--route: a forward route on 0.0.0.0:0 with no to= would be an open proxy; list the names it may reach"),
        (vec![], vec!["--route", "127.0.0.1:0=forward;to=x.test;ports=http"], "bad port \"http\""),
        (vec![("LOCAL", s("127.0.0.1:0")), ("REMOTE", s("a:1"))], vec!["--resolver", "dns.google"], "--resolver: \"dns.google\" is not valid; expected IP[:PORT]"),
    ];
    // WASI 0.2's exit carries only success or failure: wasmtime reports 1.
    let usage_code = if rt == Runtime::Wasmtime { 1 } else { 2 };
    for (env, args, want) in cases {
        let (status, _out, err) = rt.run(&env, &args);
        assert_eq!(status.code(), Some(usage_code), "exit code for {want:?}; stderr: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {want:?}, got: {err}");
        assert!(lines[0].starts_with("wasiter: ") && lines[0].contains(want), "{:?} should contain {want:?}", lines[0]);
        assert!(!err.contains("panicked"), "{err}");
    }
}

pub fn unresolvable_remote_is_a_clear_error(rt: Runtime) {
    let env = [("LOCAL", "127.0.0.1:0".to_string()), ("REMOTE", "no-such-host.invalid:80".to_string())];
    let (status, _out, err) = rt.run(&env, &[]);
    assert_eq!(status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("REMOTE: cannot resolve \"no-such-host.invalid:80\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

pub fn help_and_version_answer(rt: Runtime) {
    let (status, out, _) = rt.run(&[], &["--help"]);
    assert!(status.success());
    for setting in ["LOCAL", "REMOTE", "WASITER_CONNECT_TIMEOUT", "WASITER_IDLE_TIMEOUT", "WASITER_MAX_CONNS", "WASITER_BUFFER_SIZE", "WASITER_QUIET"] {
        assert!(out.contains(setting), "--help should document {setting}");
    }
    let (status, out, _) = rt.run(&[], &["--version"]);
    assert!(status.success());
    assert_eq!(out.trim(), format!("wasiter {}", env!("CARGO_PKG_VERSION")));
}

pub fn a_busy_address_is_named_in_words(rt: Runtime) {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (status, _out, err) = rt.run(&[("LOCAL", addr.clone()), ("REMOTE", "127.0.0.1:1".to_string())], &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("LOCAL: cannot listen on {addr}: ")) && err.to_lowercase().contains("in use"), "{err}");
    if rt != Runtime::Native {
        // A WASI errno printed as a number would mean something else on the host.
        assert!(!err.contains("os error"), "{err}");
    }
}

pub fn sigterm_drains_open_connections_then_stops(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[], &["--drain-timeout", "20s"]);
    let mut c = p.connect();
    c.write_all(b"before").unwrap();
    assert_eq!(read_exact_n(&mut c, 6), b"before");
    p.signal(libc::SIGTERM);
    if rt != Runtime::Native {
        // A wasm runtime lets no module see the signal: it ends the process.
        let status = p.wait_exit();
        assert!(!status.success(), "ended by the signal: {status:?}");
        return;
    }
    p.wait_for_log("stopping", |l| l.contains(" stopping ") && l.contains("open=1"));
    c.write_all(b"during").unwrap();
    assert_eq!(read_exact_n(&mut c, 6), b"during", "the open connection goes on while draining");
    // No new client is served meanwhile (they wait in the backlog).
    let mut late = p.connect();
    late.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    late.write_all(b"late").unwrap();
    let mut buf = [0u8; 4];
    assert!(late.read(&mut buf).is_err(), "a new client is not relayed while draining");
    drop(c); // the last open connection ends: the proxy stops at once
    let t = Instant::now();
    let status = p.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "well before the 20 s drain time");
    let stopped = record(&p.wait_for_log("stopped", |l| l.contains(" stopped ")));
    assert_eq!((stopped["why"].as_str(), stopped["left_open"].as_str()), ("drained", "0"));
}
