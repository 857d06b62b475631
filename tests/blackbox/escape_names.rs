//! Getting out by the name, as a client that wants out would try it
//! (issue 43): a name no pattern was written for (`blocked..wild.test`
//! where `to=*.wild.test;not-to=blocked.wild.test`), over-long labels and
//! odd octets, on every front that takes a name (absolute form, CONNECT,
//! SOCKS5, a transparent listener's Host and SNI, the DNS route's
//! questions); a ClientHello naming two servers; and a DNS-over-TCP client
//! that asks and asks and never reads. Each refusal must name its reason
//! (`rule=bad-name`), and the destination (and the upstream DNS server,
//! which logs every question it gets) must never hear of the name.

use super::*;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;

use wasiter::front::client_hello::{server_name_extension, with_extensions};

/// The policy every case here is tried against (opaque: its tunnels carry
/// bytes of the tests' own, neither TLS nor HTTP).
fn wild(port: u16) -> String {
    format!("to=*.wild.test;not-to=blocked.wild.test;to-net=127.0.0.0/8;ports={port};opaque={port}")
}

/// Send `request` on a new connection, read until the proxy closes.
fn ask(p: &Proxy, request: &[u8]) -> Vec<u8> {
    let mut c = p.connect();
    c.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    answer
}

fn ask_text(p: &Proxy, request: &str) -> String {
    String::from_utf8_lossy(&ask(p, request.as_bytes())).into_owned()
}

/// A SOCKS5 CONNECT for these name bytes: the reply code.
fn socks_rep(p: &Proxy, name: &[u8], port: u16) -> u8 {
    let mut c = p.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [5, 0]);
    c.write_all(&[&[5, 1, 0, 3, name.len() as u8][..], name, &port.to_be_bytes()].concat()).unwrap();
    let reply = read_exact_n(&mut c, 10);
    reply[1]
}

/// No question upstream named `what`.
fn never_asked(dns: &DnsServer, what: &str) {
    let asked: Vec<String> = dns.queries().into_iter().filter(|q| q.to_ascii_lowercase().contains(what)).collect();
    assert!(asked.is_empty(), "the upstream DNS server was asked {asked:?}");
}

pub fn names_no_pattern_was_written_for_never_reach_a_destination(rt: Runtime) {
    if !sealed(rt, "names_no_pattern_was_written_for_never_reach_a_destination") {
        return;
    }
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("blocked.wild.test", "127.0.0.1"), ("ok.wild.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &wild(port), &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let label64 = format!("{}.wild.test", "a".repeat(64));
    let name254 = format!("{}wild.test", "ab.".repeat(82));
    assert_eq!(name254.len(), 255);
    // What an attacker writes, and what the refusal must say.
    let bad: Vec<(String, &str)> = vec![
        (format!("GET http://blocked..wild.test:{port}/ HTTP/1.1\r\nHost: blocked.wild.test\r\n\r\n"), "empty label after \"blocked\""),
        (format!("GET http://Blocked.Wild.Test..:{port}/ HTTP/1.1\r\n\r\n"), "empty label"),
        (format!("CONNECT blocked..wild.test:{port} HTTP/1.1\r\n\r\n"), "empty label"),
        (format!("CONNECT .blocked.wild.test:{port} HTTP/1.1\r\n\r\n"), "empty label at its start"),
        (format!("CONNECT blocked.wild.test..:{port} HTTP/1.1\r\n\r\n"), "empty label"),
        (format!("CONNECT {label64}:{port} HTTP/1.1\r\n\r\n"), "label of 64 octets"),
        (format!("CONNECT {name254}:{port} HTTP/1.1\r\n\r\n"), "a name of 255 octets"),
        (format!("CONNECT blocked%2ewild.test:{port} HTTP/1.1\r\n\r\n"), "'%'"),
        (format!("CONNECT blocked.wild.test:1:{port} HTTP/1.1\r\n\r\n"), "':'"),
        (format!("CONNECT a_b.wild.test:{port} HTTP/1.1\r\n\r\n"), "'_'"),
        (format!("CONNECT -x.wild.test:{port} HTTP/1.1\r\n\r\n"), "'-'"),
        (format!("CONNECT b\u{fc}cher.wild.test:{port} HTTP/1.1\r\n\r\n"), "non-ASCII"),
    ];
    for (request, why) in &bad {
        let answer = ask_text(&p, request);
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("(rule bad-name)") && answer.contains(why), "{request:?}: {answer}");
        assert_eq!(answer.split("\r\n\r\n").nth(1).map(|b| b.lines().count()), Some(1), "one line says what was wrong: {answer}");
    }
    // One normalisation: case and one trailing dot; the name is then the one not-to= refuses.
    for request in [format!("CONNECT BLOCKED.Wild.TEST.:{port} HTTP/1.1\r\n\r\n"), format!("GET http://blocked.WILD.test.:{port}/ HTTP/1.1\r\n\r\n")] {
        let answer = ask_text(&p, &request);
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("(rule not-to)"), "{request:?}: {answer}");
    }
    // SOCKS5: the same names as bytes, even bytes that are not text.
    for name in [&b"blocked..wild.test"[..], b"blocked.wild.test..", b"blocked.wild.test\xff", b"a_b.wild.test", label64.as_bytes()] {
        assert_eq!(socks_rep(&p, name, port), 2, "{:?}: not allowed by ruleset", String::from_utf8_lossy(name));
    }
    // An A-label is an ASCII name like any other: checked, allowed, asked for as written.
    let answer = ask_text(&p, &format!("CONNECT xn--bcher-kva.wild.test:{port} HTTP/1.1\r\n\r\n"));
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("no such name"), "{answer}");
    dns.queries_with(&["query xn--bcher-kva.wild.test A udp"]);
    // The same proxy does reach an allowed name: what is refused above is refused by its name.
    let mut c = p.connect();
    c.write_all(format!("CONNECT ok.wild.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    assert_eq!(read_exact_n(&mut c, 39), b"HTTP/1.1 200 Connection established\r\n\r\n"[..39]);
    c.write_all(b"hello").unwrap();
    eventually("the allowed tunnel's bytes at the destination", || got.load(Ordering::SeqCst) == 5);
    drop(c);
    never_asked(&dns, "blocked");
    never_asked(&dns, "a_b");
    let refusals = bad.len() + 5;
    eventually_decisions(&p, "bad-name", refusals);
    let line = p.wait_for_log("a bad-name decision line", |l| l.contains(" decision ") && l.contains("rule=bad-name"));
    assert!(line.contains("decision=deny"), "{line}");
    assert_eq!(got.load(Ordering::SeqCst), 5, "only the allowed tunnel's bytes reached the destination");
    p.assert_alive();
}

/// `wasiter_forward_decisions_total{decision="deny",rule}` reaches `n`.
fn eventually_decisions(p: &Proxy, rule: &str, n: usize) {
    let url = p.metrics.clone().expect("--metrics");
    let count = || scrape(&url).iter().find(|(name, l, _)| name == "wasiter_forward_decisions_total" && l.get("rule").map(String::as_str) == Some(rule)).map_or(0.0, |s| s.2);
    eventually(&format!("{n} decisions by rule {rule}"), || count() == n as f64);
}

pub fn a_transparent_listener_refuses_bad_names_in_host_and_sni(rt: Runtime) {
    if !sealed(rt, "a_transparent_listener_refuses_bad_names_in_host_and_sni") {
        return;
    }
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("blocked.wild.test", "127.0.0.1"), ("ok.wild.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("transparent={port};{}", wild(port)), &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    // Host, as a client that thinks it talks to the server sends it.
    for (host, rule, why) in [
        ("blocked..wild.test", "bad-name", "empty label"),
        ("blocked.wild.test..", "bad-name", "empty label"),
        ("blocked%2ewild.test", "bad-name", "'%'"),
        (&*format!("{}.wild.test", "b".repeat(64)), "bad-name", "64 octets"),
        ("BLOCKED.Wild.Test.", "not-to", "not-to=blocked.wild.test"),
    ] {
        let answer = ask_text(&p, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains(&format!("(rule {rule})")) && answer.contains(why), "Host {host}: {answer}");
    }
    // SNI: an access_denied alert (49) for a name the policy refuses.
    for (sni, rule) in [("blocked..wild.test", "bad-name"), ("blocked.wild.test..", "bad-name"), ("a_b.wild.test", "bad-name"), ("Blocked.Wild.Test.", "not-to")] {
        let answer = ask(&p, &tls_records(&client_hello(Some(sni), &[], 0), 1 << 14));
        assert_eq!(answer, [21, 3, 1, 0, 2, 2, 49], "SNI {sni}: access_denied");
        p.wait_for_log(&format!("{sni}'s decision"), |l| l.contains(" decision ") && l.contains(&format!("rule={rule}")) && l.contains(&sni.to_ascii_lowercase().trim_end_matches('.').to_string()));
    }
    // Two names in one ClientHello: a decode_error alert (50), whichever comes first.
    for ext in [
        [server_name_extension(&[b"ok.wild.test"]), server_name_extension(&[b"blocked.wild.test"])].concat(),
        [server_name_extension(&[b"blocked.wild.test"]), server_name_extension(&[b"ok.wild.test"])].concat(),
        server_name_extension(&[b"ok.wild.test", b"blocked.wild.test"]),
    ] {
        let answer = ask(&p, &tls_records(&with_extensions(&ext), 1 << 14));
        assert_eq!(answer, [21, 3, 1, 0, 2, 2, 50], "two names: decode_error");
    }
    let twice = p.wait_for_log("two server_name extensions refused", |l| l.contains(" close ") && l.contains("reason=bad-client-hello") && l.contains("two server_name extensions"));
    assert!(twice.contains("to_upstream=0"), "{twice}");
    p.wait_for_log("two host_names refused", |l| l.contains("reason=bad-client-hello") && l.contains("more than one name"));
    assert_eq!(got.load(Ordering::SeqCst), 0, "nothing reached the destination");
    never_asked(&dns, "blocked");
    eventually_decisions(&p, "bad-name", 7);
    p.assert_alive();
}

/// A DNS query for these wire labels, as they are (a dot inside one too).
fn wire_query(id: u16, labels: &[&[u8]]) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The RCODE of the answer to `query` over UDP.
fn udp_rcode(server: SocketAddr, query: &[u8]) -> u8 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    sock.send_to(query, server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer");
    assert!(n >= 12 && buf[..2] == query[..2], "the answer to this query");
    buf[3] & 0x0f
}

pub fn the_dns_route_refuses_bad_names_in_questions(rt: Runtime) {
    let dns = DnsServer::start(&[("blocked.wild.test", "93.184.216.34"), ("ok.wild.test", "93.184.216.34")], &[], &[]);
    let (mut p, at) = Proxy::start_routes(rt, 1, &[], &["--route", "127.0.0.1:0=dns;to=*.wild.test;not-to=blocked.wild.test", "--resolver", &dns.addr()]);
    let server = at[0];
    const REFUSED: u8 = 5;
    // A label holding a dot reads, as text, as blocked.wild.test's labels (or
    // as a subdomain of wild.test): on the wire it is another name.
    for labels in [&[&b"blocked.wild"[..], b"test"][..], &[b"x.blocked", b"wild", b"test"], &[b"x", b"blocked.wild", b"test"]] {
        assert_eq!(udp_rcode(server, &wire_query(9, labels)), REFUSED, "{labels:?}");
    }
    for labels in [&[&b"a b"[..], b"wild", b"test"][..], &[b"a_b", b"wild", b"test"], &[b"b\xc3\xbccher", b"wild", b"test"], &[b"-x", b"wild", b"test"], &[b"a\0", b"wild", b"test"]] {
        assert_eq!(udp_rcode(server, &wire_query(10, labels)), REFUSED, "{labels:?}");
    }
    assert_eq!(udp_rcode(server, &wire_query(11, &[b"ok", b"WILD", b"test"])), 0, "the control: an allowed name, any case");
    // Over TCP, the same.
    let mut c = TcpStream::connect(server).unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let q = wire_query(12, &[b"blocked.wild", b"test"]);
    c.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat()).unwrap();
    let len = read_exact_n(&mut c, 2);
    let reply = read_exact_n(&mut c, usize::from(u16::from_be_bytes([len[0], len[1]])));
    assert_eq!(reply[3] & 0x0f, REFUSED);
    let line = p.wait_for_log("a bad-name DNS line", |l| l.contains(" dns ") && l.contains("rule=bad-name") && l.contains("holds a dot"));
    assert!(line.contains("answer=REFUSED"), "{line}");
    dns.queries_with(&["query ok.wild.test A udp"]);
    never_asked(&dns, "blocked");
    never_asked(&dns, "a_b");
    p.assert_alive();
}

pub fn two_server_names_are_refused_in_a_tunnel_and_on_a_shared_port(rt: Runtime) {
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    let twice = [server_name_extension(&[b"allowed.test"]), server_name_extension(&[b"other.test"])].concat();
    let reversed = [server_name_extension(&[b"other.test"]), server_name_extension(&[b"allowed.test"])].concat();
    let two_in_one = server_name_extension(&[b"allowed.test", b"other.test"]);
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    for ext in [&twice, &reversed, &two_in_one] {
        let mut asked = format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").into_bytes();
        asked.extend(tls_records(&with_extensions(ext), 1 << 14));
        let answer = ask(&p, &asked);
        assert!(answer.starts_with(ok), "{}", String::from_utf8_lossy(&answer));
        assert_eq!(answer[ok.len()..], [21, 3, 1, 0, 2, 2, 40], "a fatal handshake_failure alert");
    }
    let line = p.wait_for_log("two extensions refused in the tunnel", |l| l.contains(" close ") && l.contains("reason=bad-client-hello") && l.contains("two server_name extensions"));
    assert!(line.contains("to_upstream=0"), "{line}");
    p.wait_for_log("two names in one refused in the tunnel", |l| l.contains("reason=bad-client-hello") && l.contains("more than one name"));
    assert_eq!(got.load(Ordering::SeqCst), 0, "no byte of a refused tunnel reached the destination");
    // A port routed by SNI: the same refusal, before any route is picked.
    let listen = format!("127.0.0.1:{}", free_port());
    let (named, fallback) = (Server::echo(), Server::echo());
    let r1 = format!("{listen}={};sni=allowed.test", named.remote());
    let r2 = format!("{listen}={}", fallback.remote());
    let (mut shared, _) = Proxy::start_routes(rt, 1, &[], &["--route", &r1, "--route", &r2]);
    for ext in [&twice, &reversed, &two_in_one] {
        let answer = ask(&shared, &tls_records(&with_extensions(ext), 1 << 14));
        assert_eq!(answer, [21, 3, 1, 0, 2, 2, 50], "a fatal decode_error alert");
    }
    // And a name no sni= pattern was written for never picks one.
    let answer = ask(&shared, &tls_records(&client_hello(Some("x..allowed.test"), &[], 0), 1 << 14));
    assert_eq!(answer, [21, 3, 1, 0, 2, 2, 50], "a bad name: decode_error");
    shared.wait_for_log("the shared port's refusal", |l| l.contains("reason=bad-client-hello") && l.contains("two server_name extensions"));
    shared.wait_for_log("the shared port's bad name", |l| l.contains("reason=bad-client-hello") && l.contains("empty label"));
    assert_eq!((named.accepted(), fallback.accepted()), (0, 0), "no route's upstream saw them");
    p.assert_alive();
    shared.assert_alive();
}

/// `query` with its two-byte length, as DNS over TCP sends it.
fn framed(query: &[u8]) -> Vec<u8> {
    [&(query.len() as u16).to_be_bytes()[..], query].concat()
}

pub fn a_dns_client_that_never_reads_is_held_to_a_bound(rt: Runtime) {
    let dns = DnsServer::start(&[("ok.allowed.test", "93.184.216.34")], &[], &[]);
    let (mut p, at) = Proxy::start_routes(rt, 1, &[], &["--route", "127.0.0.1:0=dns;to=*.allowed.test", "--resolver", &dns.addr(), "--quiet"]);
    let server = at[0];
    let allowed = wire_query(1, &[b"ok", b"allowed", b"test"]);
    let answered_over_tcp = || {
        let mut c = TcpStream::connect(server).unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        c.write_all(&framed(&allowed)).unwrap();
        let len = read_exact_n(&mut c, 2);
        let reply = read_exact_n(&mut c, usize::from(u16::from_be_bytes([len[0], len[1]])));
        reply[3] & 0x0f
    };
    // Warm: the paths the flood takes have run once before memory is measured.
    assert_eq!((udp_rcode(server, &allowed), answered_over_tcp()), (0, 0));
    assert_eq!(udp_rcode(server, &wire_query(2, &[b"evil", b"test"])), 5);
    let before = p.rss_kib();
    // Queries answered at once (REFUSED), sent as fast as the proxy takes
    // them, never a reply read: the proxy must stop reading this client.
    let mut flood = TcpStream::connect(server).unwrap();
    flood.set_nonblocking(true).unwrap();
    let batch = framed(&wire_query(3, &[b"evil", b"test"])).repeat(4096);
    const TOTAL: usize = 48 << 20;
    let (mut sent, mut progress) = (0usize, Instant::now());
    while sent < TOTAL && progress.elapsed() < Duration::from_secs(3) {
        match flood.write(&batch[sent % batch.len()..]) {
            Ok(n) => {
                sent += n;
                progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("the proxy closed the flooding client: {e}"),
        }
    }
    assert!(sent < TOTAL, "the proxy read all {sent} bytes of queries from a client that reads no reply");
    // While it is held: others are answered, over UDP and TCP.
    assert_eq!(udp_rcode(server, &allowed), 0, "a bystander over UDP");
    assert_eq!(answered_over_tcp(), 0, "a bystander over TCP");
    let grown = p.rss_kib().saturating_sub(before);
    println!("flood: {sent} bytes of queries taken in (socket buffers included), proxy RSS grew {grown} KiB");
    assert!(grown < 8 * 1024, "the proxy's memory grew {grown} KiB for one DNS client");
    drop(flood);
    p.assert_alive();
}

pub fn the_search_list_never_makes_a_name_the_policy_refuses(rt: Runtime) {
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    // resolv.conf's search list would make blocked.wild.test of "blocked".
    let dns = DnsServer::start(&[("blocked.wild.test", "127.0.0.1"), ("ok.wild.test", "127.0.0.1")], &[], &[]);
    let dir = TempDir::new("resolv");
    let conf = dir.path().join("resolv.conf");
    std::fs::write(&conf, "nameserver 10.9.9.9\nsearch wild.test\noptions ndots:1 timeout:1 attempts:1\n").unwrap();
    let fwd = format!("127.0.0.1:0=forward;to=*;not-to=blocked.wild.test;to-net=127.0.0.0/8;ports={port};opaque={port}");
    let args = ["--route", &fwd, "--resolver", &dns.addr(), "--resolv-conf", conf.to_str().unwrap()];
    let (mut p, _) = Proxy::start_routes_in(rt, Some(dir.path()), 1, &[], &args);
    // "ok" goes through the search list, as in a container (each name made checked).
    let mut c = p.connect();
    c.write_all(format!("CONNECT ok:{port} HTTP/1.1\r\n\r\nhi").as_bytes()).unwrap();
    assert_eq!(read_exact_n(&mut c, 39), b"HTTP/1.1 200 Connection established\r\n\r\n"[..39]);
    eventually("ok.wild.test reached", || got.load(Ordering::SeqCst) == 2);
    drop(c);
    // "blocked": the name made of it is refused by not-to=, so never asked; "blocked" alone does not exist.
    let answer = ask_text(&p, &format!("CONNECT blocked:{port} HTTP/1.1\r\n\r\nhi"));
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("no such name"), "{answer}");
    dns.queries_with(&["query ok.wild.test A udp", "query blocked A udp"]);
    never_asked(&dns, "blocked.wild");
    assert_eq!(got.load(Ordering::SeqCst), 2, "only ok.wild.test was reached");
    p.assert_alive();
}
