//! Routes, pools and access: several routes, failover, policies, health checks, re-resolution,
//! allow/deny lists, the PROXY protocol, IPv6.

use super::*;

pub fn ipv6_listen_and_upstream_addresses_work(rt: Runtime) {
    let echo = Server::on(TcpListener::bind("[::1]:0").expect("IPv6 loopback"), |mut s| {
        let peer = s.peer_addr().unwrap();
        let _ = s.write_all(format!("hello {}", peer.ip()).as_bytes());
    });
    let mut p = Proxy::start(rt, &format!("[::1]:{}", echo.addr.port()), &[("LOCAL", "[::1]:0")], &[]);
    assert_eq!(p.addr.ip().to_string(), "::1", "listening on IPv6");
    let mut c = connect(p.addr);
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello ::1", "relayed from an IPv6 upstream, which saw the proxy on ::1");
    drop(c); // the upstream's FIN came through; now ours
    let close = first_close(&mut p);
    assert!(close["client"].starts_with("[::1]:") && close["upstream"] == echo.addr.to_string(), "{close:?}");
}

/// Write `msg`, read it back (through an echo upstream), then close.
pub fn ping(addr: std::net::SocketAddr, msg: &[u8]) {
    let mut c = connect(addr);
    c.write_all(msg).unwrap();
    assert_eq!(read_exact_n(&mut c, msg.len()), msg);
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap(); // the proxy has closed the pair when this returns
    assert!(rest.is_empty());
}

pub fn closes(p: &Proxy, reason: &str) -> Vec<std::collections::HashMap<String, String>> {
    p.log().iter().filter(|l| l.contains(" close ")).map(|l| record(l)).filter(|r| r["reason"] == reason).collect()
}

pub fn two_routes_are_served_by_one_process(rt: Runtime) {
    let a = Server::echo();
    let b = Server::start(|mut s| {
        let _ = s.write_all(b"B speaks first\n");
    });
    let (ra, rb) = (format!("127.0.0.1:0={}", a.remote()), format!("127.0.0.1:0={}", b.remote()));
    let (mut p, addrs) = Proxy::start_routes(rt, 2, &[], &["--route", &ra, "--route", &rb]);
    // Both at once: a client of A waits while B's is served, and the reverse.
    let mut ca = connect(addrs[0]);
    let mut cb = connect(addrs[1]);
    assert_eq!(read_exact_n(&mut cb, 15), b"B speaks first\n");
    ca.write_all(b"to A").unwrap();
    assert_eq!(read_exact_n(&mut ca, 4), b"to A");
    assert_eq!((a.accepted(), b.accepted()), (1, 1), "each route reached its own upstream");
    p.assert_alive();
    // The same two routes from the one environment variable.
    let (_p2, addrs) = Proxy::start_routes(rt, 2, &[("WASITER_ROUTES", &format!("{ra} {rb}"))], &[]);
    ping(addrs[0], b"again A");
    let mut cb = connect(addrs[1]);
    assert_eq!(read_exact_n(&mut cb, 15), b"B speaks first\n");
    assert_eq!((a.accepted(), b.accepted()), (2, 2));
    // And from a routes file (on the wasm runtimes, its folder given with --dir).
    let dir = TempDir::new("routes");
    let file = dir.path().join("routes");
    std::fs::write(&file, format!("# two routes\n{ra}\n\n{rb}   # B speaks first\n")).unwrap();
    let env = [("WASITER_ROUTES_FILE", file.to_str().unwrap())];
    let (_p3, addrs) = Proxy::start_routes_in(rt, Some(dir.path()), 2, &env, &[]);
    ping(addrs[0], b"from the file");
    let mut cb = connect(addrs[1]);
    assert_eq!(read_exact_n(&mut cb, 15), b"B speaks first\n");
    assert_eq!((a.accepted(), b.accepted()), (3, 3));
}

pub fn a_dead_upstream_in_a_pool_is_skipped_after_the_threshold(rt: Runtime) {
    let live = Server::echo();
    let dead = format!("127.0.0.1:{}", free_port());
    let remote = format!("{dead},{}", live.remote());
    let args = ["--fail-threshold", "2", "--cooldown", "1m", "--log-level", "debug"];
    let mut p = Proxy::start(rt, &remote, &[("WASITER_METRICS", "127.0.0.1:0")], &args);
    for i in 0..6u8 {
        ping(p.addr, &[b'a' + i; 3]); // every client is served, the first two after a failover
    }
    assert_eq!(live.accepted(), 6);
    p.wait_for_log("upstream-down", |l| l.contains(" upstream-down ") && l.contains(&dead));
    let tries = p.log().iter().filter(|l| l.contains(" connect-failed ") && l.contains(&format!("upstream={dead}"))).count();
    assert_eq!(tries, 2, "the dead upstream was tried only until the threshold");
    let m = scrape(p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_upstream_up", Some(("upstream", &dead))), 0.0);
    assert_eq!(sample(&m, "wasiter_upstream_connect_failures_total", Some(("upstream", &dead))), 2.0);
    assert_eq!(sample(&m, "wasiter_upstream_connects_total", Some(("upstream", &live.remote()))), 6.0);
    assert_eq!(sample(&m, "wasiter_closes_total", Some(("reason", "client-closed"))), 6.0, "no client noticed");
}

pub fn round_robin_spreads_and_least_conn_fills_the_emptiest(rt: Runtime) {
    let (a, b) = (Server::echo(), Server::echo());
    let p = Proxy::start(rt, &format!("{},{};policy=round-robin", a.remote(), b.remote()), &[], &["--quiet"]);
    for _ in 0..10 {
        ping(p.addr, b"rr");
    }
    assert_eq!((a.accepted(), b.accepted()), (5, 5), "counted at the upstreams");

    let (a, b) = (Server::echo(), Server::echo());
    let p = Proxy::start(rt, &format!("{},{};policy=least-conn", a.remote(), b.remote()), &[], &["--quiet"]);
    let mut held = p.connect();
    held.write_all(b"hold").unwrap();
    assert_eq!(read_exact_n(&mut held, 4), b"hold");
    let held_on_a = a.accepted() == 1;
    for _ in 0..4 {
        ping(p.addr, b"lc"); // each finishes before the next: the other upstream is always emptier
    }
    let (busy, other) = if held_on_a { (a.accepted(), b.accepted()) } else { (b.accepted(), a.accepted()) };
    assert_eq!((busy, other), (1, 4), "least-conn sent every short client to the upstream without the held one");
}

pub fn every_upstream_down_closes_the_client_at_once(rt: Runtime) {
    let (d1, d2) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut p = Proxy::start(rt, &format!("{d1},{d2}"), &[], &["--fail-threshold", "1", "--cooldown", "1m"]);
    let mut first = p.connect();
    assert!(is_closed(&mut first), "both refused: closed");
    p.wait_for_log("connect-failed close", |l| l.contains(" close ") && l.contains("reason=connect-failed"));
    let t = Instant::now();
    let mut second = p.connect();
    assert!(is_closed(&mut second));
    assert!(t.elapsed() < Duration::from_secs(2), "closed at once, with no connect attempt to wait for");
    let line = p.wait_for_log("no-upstream close", |l| l.contains(" close ") && l.contains("reason=no-upstream"));
    let close = record(&line);
    assert_eq!(close["upstream"], "-");
    assert!(close["error"].contains("all 2 upstream addresses are down"), "{close:?}");
}

pub fn active_health_checks_find_a_dead_upstream_and_its_return(rt: Runtime) {
    let live = Server::echo();
    let port = free_port();
    let dead = format!("127.0.0.1:{port}");
    let args = ["--health-check", "200ms", "--fail-threshold", "2", "--cooldown", "1m", "--log-level", "debug"];
    let mut p = Proxy::start(rt, &format!("{dead},{}", live.remote()), &[], &args);
    p.wait_for_log("upstream-down", |l| l.contains(" upstream-down ") && l.contains(&dead));
    // Found by the checks, before any client; the live one is checked too.
    assert!(live.accepted() >= 1, "the live upstream was checked");
    ping(p.addr, b"straight to the live one");
    let client_tries = p.log().iter().filter(|l| l.contains(" connect-failed ") && l.contains("conn=")).count();
    assert_eq!(client_tries, 0, "no client connect went to the dead upstream");
    // It comes back: a check sees it and it is used again, well before the cool-down ends.
    let back = Server::on(TcpListener::bind(&dead).unwrap(), |mut s| {
        let _ = s.write_all(b"back");
    });
    p.wait_for_log("upstream-up", |l| l.contains(" upstream-up ") && l.contains(&dead));
    let mut c = p.connect();
    assert_eq!(read_exact_n(&mut c, 4), b"back", "failover order: the first upstream again");
    assert!(back.accepted() >= 1);
}

pub fn names_are_resolved_again_on_schedule(rt: Runtime) {
    let echo = Server::echo();
    let remote = format!("localhost:{}", echo.addr.port());
    let mut p = Proxy::start(rt, &remote, &[], &["--resolve-interval", "200ms", "--log-level", "debug"]);
    let resolved = |p: &Proxy| p.log().iter().filter(|l| l.contains(" resolved ") && l.contains("upstream=localhost:")).count();
    let deadline = Instant::now() + PATIENCE;
    while resolved(&p) < 3 {
        assert!(Instant::now() < deadline, "no re-resolution; log:\n{}", p.log().join("\n"));
        thread::sleep(Duration::from_millis(50));
    }
    let line = p.wait_for_log("resolved", |l| l.contains(" resolved "));
    assert!(record(&line)["addrs"].contains("127.0.0.1:"), "{line}");
    ping(p.addr, b"still relaying between lookups");
    assert!(!p.log().iter().any(|l| l.contains("resolve-failed")), "{}", p.log().join("\n"));
    p.assert_alive();
}

pub fn denied_clients_never_reach_the_upstream(rt: Runtime) {
    let echo = Server::echo();
    let remote = format!("{};allow=127.0.0.0/8,::1;deny=127.0.0.2", echo.remote());
    let mut p = Proxy::start(rt, &remote, &[], &[]);
    let mut allowed = Proxy::connect_from("127.0.0.1", p.addr);
    allowed.write_all(b"let me in").unwrap();
    assert_eq!(read_exact_n(&mut allowed, 9), b"let me in");
    let mut denied = Proxy::connect_from("127.0.0.2", p.addr);
    let _ = denied.write_all(b"secret");
    assert!(is_closed(&mut denied), "denied: closed");
    let line = p.wait_for_log("denied close", |l| l.contains("reason=denied"));
    let close = record(&line);
    assert!(close["client"].starts_with("127.0.0.2:"), "{close:?}");
    assert_eq!((close["upstream"].as_str(), close["to_upstream"].as_str()), ("-", "0"));
    thread::sleep(Duration::from_millis(200));
    assert_eq!(echo.accepted(), 1, "the upstream never saw the denied client");
    let mut again = Proxy::connect_from("127.0.0.3", p.addr);
    again.write_all(b"ok").unwrap();
    assert_eq!(read_exact_n(&mut again, 2), b"ok", "the rest of 127.0.0.0/8 is allowed");
}

/// An HTTP request through `c`; the whole answer.
pub fn http_get(mut c: TcpStream) -> String {
    c.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer
}

pub fn send_proxy_v1_and_v2_tell_a_real_haproxy_the_client(rt: Runtime) {
    let server = haproxy_proxy_aware();
    for v in ["v1", "v2"] {
        let p = Proxy::start(rt, &format!("127.0.0.1:{};send-proxy={v}", server.port), &[], &["--quiet"]);
        let c = Proxy::connect_from("127.0.0.2", p.addr);
        let me = c.local_addr().unwrap();
        let answer = http_get(c);
        assert!(answer.starts_with("HTTP/1.1 200"), "{v}: {answer}");
        assert!(answer.contains(&format!("src={me}")), "{v}: HAProxy saw the real client {me}: {answer}");
    }
    // An IPv6 client on an IPv6 route, allowed by an IPv6 range: a TCP6 header.
    for v in ["v1", "v2"] {
        let remote = format!("127.0.0.1:{};send-proxy={v};allow=::1/128", server.port);
        let p = Proxy::start(rt, &remote, &[("LOCAL", "[::1]:0")], &["--quiet"]);
        let c = Proxy::connect_from("[::1]", p.addr);
        let me = c.local_addr().unwrap();
        let answer = http_get(c);
        assert!(answer.contains(&format!("src=::1:{}", me.port())), "{v} over IPv6: {answer}");
    }
}

pub fn accept_proxy_takes_the_client_from_a_load_balancer(rt: Runtime) {
    let server = haproxy_proxy_aware();
    // HAProxy (send-proxy) -> wasiter (accept-proxy, send-proxy=v1) -> HAProxy (accept-proxy).
    let remote = format!("127.0.0.1:{};accept-proxy;send-proxy=v1;deny=127.0.0.4", server.port);
    let mut p = Proxy::start(rt, &remote, &[], &[]);
    for send in ["send-proxy", "send-proxy-v2"] {
        let lb = haproxy_sending(p.addr, send);
        let c = Proxy::connect_from("127.0.0.3", format!("127.0.0.1:{}", lb.port).parse().unwrap());
        let me = c.local_addr().unwrap();
        let answer = http_get(c);
        assert!(answer.contains(&format!("src={me}")), "{send}: the client passed through both hops: {answer}");
    }
    p.wait_for_log("close of the relayed client", |l| l.contains(" close ") && l.contains("client=127.0.0.3:"));
    // The allow/deny lists judge the client the header names, not the load balancer.
    let lb = haproxy_sending(p.addr, "send-proxy-v2");
    let c = Proxy::connect_from("127.0.0.4", format!("127.0.0.1:{}", lb.port).parse().unwrap());
    let answer = http_get(c);
    assert!(!answer.contains("src="), "denied behind the load balancer: {answer}");
    let line = p.wait_for_log("denied close", |l| l.contains("reason=denied"));
    assert!(record(&line)["client"].starts_with("127.0.0.4:"), "{line}");
}

pub fn a_missing_or_bad_proxy_header_is_closed_and_logged(rt: Runtime) {
    let echo = Server::echo();
    let args = ["--proxy-header-timeout", "300ms"];
    let mut p = Proxy::start(rt, &format!("{};accept-proxy", echo.remote()), &[], &args);
    // A client that speaks HTTP straight away.
    let mut plain = p.connect();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(is_closed(&mut plain));
    // A malformed v1 header.
    let mut bad = p.connect();
    bad.write_all(b"PROXY TCP4 1.2.3.4 nonsense\r\n").unwrap();
    assert!(is_closed(&mut bad));
    // A silent client: closed at the header timeout.
    let mut silent = p.connect();
    let t = Instant::now();
    assert!(is_closed(&mut silent));
    assert!(t.elapsed() >= Duration::from_millis(250), "waited for the header timeout");
    let deadline = Instant::now() + PATIENCE;
    while closes(&p, "bad-proxy-header").len() < 3 {
        assert!(Instant::now() < deadline, "{}", p.log().join("\n"));
        thread::sleep(Duration::from_millis(20));
    }
    let errors: Vec<String> = closes(&p, "bad-proxy-header").iter().map(|c| c["error"].clone()).collect();
    assert!(errors[0].contains("no PROXY protocol header"), "{errors:?}");
    assert!(errors[1].contains("bad v1 header"), "{errors:?}");
    assert!(errors[2].contains("no PROXY header in time"), "{errors:?}");
    assert_eq!(echo.accepted(), 0, "the upstream saw none of them");
    // A good header still works, and the bytes after it arrive intact.
    let mut good = p.connect();
    good.write_all(b"PROXY TCP4 192.0.2.9 10.0.0.1 4000 80\r\nhello").unwrap();
    assert_eq!(read_exact_n(&mut good, 5), b"hello");
    drop(good);
    p.wait_for_log("the header's client in the log", |l| l.contains(" open ") && l.contains("client=192.0.2.9:4000"));
}
