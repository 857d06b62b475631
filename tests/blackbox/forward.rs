//! The devContainer's way out: a forward proxy (CONNECT and absolute-form
//! HTTP) with a destination policy, its names looked up by the in-loop
//! resolver from a real DNS server (tests/dns_server.py) that the tests make
//! slow, silent or truncating on purpose. Real clients: curl -x.

use super::*;

/// A forward route on 127.0.0.1 with these options, resolving through `dns`.
pub fn forward(rt: Runtime, options: &str, dns: &str, more: &[&str]) -> Proxy {
    let route = format!("127.0.0.1:0=forward;{options}");
    let mut args = vec!["--route", route.as_str(), "--resolver", dns];
    args.extend_from_slice(more);
    Proxy::start_routes(rt, 1, &[], &args).0
}

fn proxy_url(p: &Proxy) -> String {
    format!("http://{}", p.addr)
}

pub fn connect_and_plain_requests_reach_allowed_names(rt: Runtime) {
    let certs = Certs::new(&["name.test"]);
    let tls = nginx_tls(&certs, "name.test", false, "tls by name");
    let web = nginx(&[("index.html", b"plain by name\n")]);
    let dns = DnsServer::start(&[("name.test", "127.0.0.1"), ("web.test", "127.0.0.1")], &[], &[]);
    let opts = format!("to=name.test,*.web.test,web.test;to-net=127.0.0.0/8;ports={},{}", tls.port, web.port);
    let mut p = forward(rt, &opts, &dns.addr(), &["--trace"]);
    let ca = certs.ca();
    let url = format!("https://name.test:{}/", tls.port);
    let (code, body, err) = curl(&["-x", &proxy_url(&p), "--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!((code, body.as_str()), (0, "tls by name\n"), "CONNECT, then TLS end to end: {err}");
    let url = format!("http://web.test:{}/index.html", web.port);
    let (code, body, err) = curl(&["-x", &proxy_url(&p), "-D", "-", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(body.starts_with("HTTP/1.1 200") && body.ends_with("plain by name\n"), "{body}");
    let open = record(&p.wait_for_log("the tunnel's open line", |l| l.contains(" open ") && l.contains("name.test")));
    assert_eq!(open["host"], format!("name.test:{}", tls.port));
    // The trace follows the CONNECT from its request line through the DNS
    // query to the connect and the relay.
    let log = p.log();
    let at = |what: &str| log.iter().position(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?} in the trace:\n{}", log.join("\n")));
    let steps = [
        at(&format!("request(conn=1, CONNECT name.test:{})", tls.port)),
        at("dns_query(name.test A"),
        at("resolve(name.test.)"), // absolute: the name the policy checked, as it checked it
        at(&format!("127.0.0.1:{})\" result=", tls.port)),
        at(" open conn=1 "),
    ];
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "in this order: {steps:?}");
    dns.queries_with(&["query name.test A udp"]); // looked up over DNS
}

pub fn forward_policy_refuses_names_ports_and_addresses(rt: Runtime) {
    let echo = Server::echo();
    let port = echo.addr.port();
    let dns = DnsServer::start(&[("ok.test", "127.0.0.1"), ("meta.test", "169.254.169.254")], &[], &[]);
    let p = forward(rt, &format!("to=ok.test,meta.test,nowhere.test;not-to=bad.ok.test;to-net=127.0.0.0/8;ports={port};opaque={port}"), &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let status = |target: &str| {
        let mut c = p.connect();
        c.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    let answer = status("evil.test:443");
    assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("evil.test is not in to="), "{answer}");
    assert!(status(&format!("ok.test:{}", port + 1)).contains(&format!("port {} is not allowed", port + 1)));
    let answer = status(&format!("meta.test:{port}"));
    assert!(answer.contains("meta.test resolves to 169.254.169.254"), "the address is checked too: {answer}");
    let answer = status(&format!("nowhere.test:{port}"));
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("no such name"), "NXDOMAIN: {answer}");
    let answer = status("not a target");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    // Allowed, resolved, but nothing listens there: 502 once the connect fails.
    let closed = free_port();
    let p2 = forward(rt, &format!("to=ok.test;to-net=127.0.0.0/8;ports={closed}"), &dns.addr(), &[]);
    let mut c = p2.connect();
    c.write_all(format!("CONNECT ok.test:{closed} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("cannot reach the destination"), "{answer}");
    let mut c = p.connect();
    let mut huge = format!("CONNECT ok.test:{port} HTTP/1.1\r\nX-Big: ").into_bytes();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let _ = c.write_all(&huge);
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert_eq!(echo.accepted(), 0, "nothing refused reached anything");
    // And an allowed one goes through: the tunnel echoes.
    let mut c = p.connect();
    c.write_all(format!("CONNECT ok.test:{port} HTTP/1.1\r\n\r\nping").as_bytes()).unwrap();
    let want = b"HTTP/1.1 200 Connection established\r\n\r\nping";
    assert_eq!(read_exact_n(&mut c, want.len()), want);
    for reason in ["forbidden", "dns-failed", "bad-request", "peek-too-large"] {
        assert!(p.log().iter().any(|l| l.contains(&format!("reason={reason}"))), "a close with reason={reason}:\n{}", p.log().join("\n"));
    }
    // Metrics: requests by the host they named, and closes by reason.
    let m = scrape(p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_forward_requests_total", Some(("host", "evil.test"))), 1.0);
    assert_eq!(sample(&m, "wasiter_forward_requests_total", Some(("host", "ok.test"))), 2.0, "the port refused and the tunnel (the 431 named nothing readable)");
    assert_eq!(sample(&m, "wasiter_closes_total", Some(("reason", "forbidden"))), 3.0);
}

pub fn dns_failures_timeouts_and_truncation(rt: Runtime) {
    let echo = Server::echo();
    let port = echo.addr.port();
    let ask = |p: &Proxy, host: &str| {
        let mut c = p.connect();
        c.write_all(format!("CONNECT {host}:{port} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    // A resolver that takes the queries and never answers: 504, after
    // --dns-timeout for each of resolv.conf's attempts (2).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = forward(rt, &format!("to=*;to-net=127.0.0.0/8;ports={port}"), &silent.local_addr().unwrap().to_string(), &["--dns-timeout", "200ms"]);
    let t = Instant::now();
    let answer = ask(&p, "quiet.test");
    assert!(answer.starts_with("HTTP/1.1 504 ") && answer.contains("no DNS answer in time"), "{answer}");
    assert!(t.elapsed() >= Duration::from_millis(350), "both attempts waited their timeout");
    // Nothing listening at all (the port is closed): the ICMP refusal, a
    // 502 at once, on every runtime (WasmEdge's poll_oneoff reports it as
    // no event at all: sys/poll_oneoff.rs reads every socket then).
    // The port is closed when picked, but another test running beside this
    // one may bind it before the query goes (then no refusal comes back and
    // the answer is a 504): a 504 is tried again on a new port, twice at
    // most; a proxy that does not hear refusals gives three.
    let mut answer = String::new();
    for _ in 0..3 {
        let dead = format!("127.0.0.1:{}", free_port());
        let p = forward(rt, &format!("to=*;to-net=127.0.0.0/8;ports={port}"), &dead, &["--dns-timeout", "300ms"]);
        answer = ask(&p, "dead.test");
        if !answer.starts_with("HTTP/1.1 504 ") {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("DNS failed: Connection refused"), "{answer}");
    // An answer too big for UDP is asked again over TCP.
    let dns = DnsServer::start(&[("big.test", "127.0.0.1")], &[], &["big.test"]);
    let p = forward(rt, &format!("to=*;to-net=127.0.0.0/8;ports={port};opaque={port}"), &dns.addr(), &[]);
    let mut c = p.connect();
    c.write_all(format!("CONNECT big.test:{port} HTTP/1.1\r\n\r\nhi").as_bytes()).unwrap();
    let want = b"HTTP/1.1 200 Connection established\r\n\r\nhi";
    assert_eq!(read_exact_n(&mut c, want.len()), want);
    dns.queries_with(&["query big.test A udp", "query big.test A tcp"]);
}

pub fn a_slow_dns_answer_delays_no_one_else(rt: Runtime) {
    let web = nginx(&[("index.html", b"fast\n")]);
    let dns = DnsServer::start(&[("slow.test", "127.0.0.1"), ("fast.test", "127.0.0.1")], &[("slow.test", 2.0)], &[]);
    let p = forward(rt, &format!("to=*.test;to-net=127.0.0.0/8;ports={}", web.port), &dns.addr(), &["--quiet", "--dns-timeout", "5s"]);
    let addr = p.addr;
    let port = web.port;
    let get = move |host: &str| {
        let mut c = connect(addr);
        c.write_all(format!("GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        (answer, Instant::now())
    };
    let start = Instant::now();
    let slow = thread::spawn(move || get("slow.test"));
    thread::sleep(Duration::from_millis(100)); // the slow lookup is in flight
    let fast: Vec<_> = (0..50).map(|_| thread::spawn(move || get("fast.test"))).collect();
    let fast: Vec<(String, Instant)> = fast.into_iter().map(|t| t.join().unwrap()).collect();
    let (slow_answer, slow_done) = slow.join().unwrap();
    assert!(slow_answer.ends_with("fast\n"), "the slow one is served too: {slow_answer}");
    assert!(slow_done.duration_since(start) >= Duration::from_millis(1900), "it waited for its DNS answer");
    for (answer, done) in &fast {
        assert!(answer.ends_with("fast\n"), "{answer}");
        assert!(*done < slow_done, "every other client finished while the slow one waited");
    }
    // 50 lookups of one name: shared while in flight, then from the cache.
    let asked = dns.queries().iter().filter(|q| q.starts_with("query fast.test A ")).count();
    assert_eq!(asked, 1, "one query for fast.test: {:?}", dns.queries());
}

pub fn names_resolve_as_containers_expect(rt: Runtime) {
    let echo = Server::echo();
    let port = echo.addr.port();
    // DNS knows api only in the second search domain, db in the first, and
    // gives pinned.test an address that the hosts file overrides.
    let dns = DnsServer::start(&[("api.corp.test", "127.0.0.1"), ("db.team.test", "127.0.0.1"), ("pinned.test", "10.1.1.1")], &[], &[]);
    let dir = TempDir::new("resolv");
    let (conf, hosts) = (dir.path().join("resolv.conf"), dir.path().join("hosts"));
    std::fs::write(&conf, "nameserver 10.9.9.9\nsearch team.test corp.test\noptions ndots:2 timeout:1 attempts:1\n").unwrap();
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 pinned.test\n").unwrap();
    let fwd = format!("127.0.0.1:0=forward;to=*;to-net=127.0.0.0/8;ports={port};opaque={port}");
    let plain = format!("127.0.0.1:0=db:{port}"); // an upstream by its short name
    let args = ["--route", &fwd, "--route", &plain, "--resolver", &dns.addr(), "--resolv-conf", conf.to_str().unwrap(), "--hosts-file", hosts.to_str().unwrap()];
    let (mut p, addrs) = Proxy::start_routes_in(rt, Some(dir.path()), 2, &[], &args);
    let start = record(&p.wait_for_log("the forward start line", |l| l.contains("remote=forward")));
    assert_eq!((start["names"].as_str(), start["search"].as_str(), start["hosts"].as_str()), (format!("dns:{}", dns.addr()).as_str(), "team.test,corp.test", "2"));
    // The short upstream name went through the search list at start.
    ping(addrs[1], b"db by its short name");
    dns.queries_with(&["query db.team.test A udp"]);
    let tunnel = |host: &str| {
        let mut c = connect(addrs[0]);
        c.write_all(format!("CONNECT {host}:{port} HTTP/1.1\r\n\r\nhi").as_bytes()).unwrap();
        let want = b"HTTP/1.1 200 Connection established\r\n\r\nhi";
        assert_eq!(read_exact_n(&mut c, want.len()), want, "through to {host}");
    };
    // api (no dot, ndots:2): api.team.test is NXDOMAIN, api.corp.test answers.
    tunnel("api");
    let q = dns.queries_with(&["query api.team.test A udp", "query api.corp.test A udp"]);
    let first = q.iter().position(|l| l == "query api.team.test A udp").expect("the first search domain asked first");
    let second = q.iter().position(|l| l == "query api.corp.test A udp").expect("then the second");
    assert!(first < second, "{q:?}");
    // The hosts file wins over DNS (which would say 10.1.1.1, outside to-net).
    tunnel("pinned.test");
    assert!(!dns.queries().iter().any(|l| l.starts_with("query pinned.test")), "DNS never asked for a hosts name");
    p.assert_alive();
}

pub fn a_forward_route_with_auth_asks_for_a_login(rt: Runtime) {
    let echo = Server::echo();
    let web = nginx(&[("index.html", b"logged in\n")]);
    let port = echo.addr.port();
    let p = forward(rt, &format!("to=*,127.0.0.1;ports={port},{};opaque={port};auth=dev:s3cret", web.port), "127.0.0.1:1", &[]);
    let ask = |login: &str| {
        let mut c = p.connect();
        c.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n{login}\r\nping").as_bytes()).unwrap();
        let mut head = vec![0u8; 12];
        c.read_exact(&mut head).unwrap();
        let mut rest = String::new();
        let _ = c.read_to_string(&mut rest);
        String::from_utf8_lossy(&head).into_owned() + &rest
    };
    let none = ask("");
    assert!(none.starts_with("HTTP/1.1 407 ") && none.contains("Proxy-Authenticate: Basic realm=\"wasiter\""), "{none}");
    assert!(ask("Proxy-Authorization: Basic ZGV2Ondyb25n\r\n").starts_with("HTTP/1.1 407 "), "dev:wrong");
    // dev:s3cret, as curl -x http://dev:s3cret@... sends it.
    let mut c = p.connect();
    c.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nProxy-Authorization: Basic ZGV2OnMzY3JldA==\r\n\r\nping").as_bytes()).unwrap();
    let want = b"HTTP/1.1 200 Connection established\r\n\r\nping";
    assert_eq!(read_exact_n(&mut c, want.len()), want);
    let (code, body, err) = curl(&["-x", &format!("http://dev:s3cret@{}", p.addr), &format!("http://127.0.0.1:{}/", web.port)]);
    assert_eq!((code, body.as_str()), (0, "logged in\n"), "curl logs in: {err}");
    assert_eq!(p.log().iter().filter(|l| l.contains("reason=proxy-auth")).count(), 2);
    assert!(!p.log().iter().any(|l| l.contains("s3cret") || l.contains("ZGV2OnMzY3JldA")), "the login is never logged");
}
