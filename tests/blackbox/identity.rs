//! A policy per client (issue 47 item 2): forward routes sharing one
//! listen address, each with `client=NAME` and `from=` (the TCP peer's
//! address) or `uid=` (a Unix peer's, natively). Loopback gives each
//! client its own source address (127.0.0.2, .3, .4: the kernel routes all
//! of 127/8 to lo), so no namespace is needed. Here: each client gets its
//! own list and no other, nothing it sends takes another's, a reload
//! changes one client's policy under an open tunnel. Budgets, ask, Unix
//! peers and bad configuration: identity_more.rs.

use super::*;
use std::sync::Mutex;

/// What the origin saw: one `HOST/PATH` per request.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A plain HTTP origin on 127.0.0.1 answering `origin PATH` on a kept
/// connection, noting every request it gets (its Host and path).
pub fn seeing_origin() -> (Server, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = Server::start(move |s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut out = s;
        loop {
            let mut first = String::new();
            if reader.read_line(&mut first).unwrap_or(0) == 0 {
                return;
            }
            let mut host = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == "\r\n" {
                    break;
                }
                if let Some((_, value)) = l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("host")) {
                    host = value.trim().to_string();
                }
            }
            let path = first.split(' ').nth(1).unwrap_or_default().to_string();
            log.lock().unwrap().push(format!("{host}{path}"));
            let body = format!("origin {path}\n");
            if out.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).is_err() {
                return;
            }
        }
    });
    (server, seen)
}

/// The tests' names: a.test, b.test and c.test, all on 127.0.0.1.
pub fn three_names() -> DnsServer {
    DnsServer::start(&[("a.test", "127.0.0.1"), ("b.test", "127.0.0.1"), ("c.test", "127.0.0.1")], &[], &[])
}

/// wasiter with forward routes `LISTEN=forward;POLICY;COMMON`, one per
/// policy, all on `listen` (one listener: one start line).
pub fn sharing(rt: Runtime, listen: &str, policies: &[&str], common: &str, dns: &str, more: &[&str]) -> Proxy {
    let specs: Vec<String> = policies.iter().map(|p| format!("{listen}=forward;{p};{common}")).collect();
    let mut args: Vec<&str> = specs.iter().flat_map(|s| ["--route", s.as_str()]).collect();
    args.extend(["--resolver", dns]);
    args.extend_from_slice(more);
    Proxy::start_routes(rt, 1, &[], &args).0
}

/// Send `bytes` from source address `from` to `at`; everything the proxy
/// answers until it closes (a reset ends it too).
pub fn answer_from(from: &str, at: SocketAddr, bytes: &[u8]) -> String {
    let mut c = Proxy::connect_from(from, at);
    let _ = c.write_all(bytes);
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// Nothing the origin saw was meant to be refused (paths with `never`).
pub fn origin_saw_no_refused_request(seen: &Seen) {
    let seen = seen.lock().unwrap();
    assert!(!seen.iter().any(|s| s.contains("never")), "a refused request reached the origin: {seen:?}");
}

const ALPHA: &str = "client=alpha;from=127.0.0.2;to=a.test";
const BETA: &str = "client=beta;from=127.0.0.3/32;to=b.test";

pub fn two_clients_on_one_address_each_reach_only_their_own_list(rt: Runtime) {
    let (web, seen) = seeing_origin();
    let port = web.addr.port();
    let dns = three_names();
    let listen = format!("127.0.0.1:{}", free_port());
    let at: SocketAddr = listen.parse().unwrap();
    let common = format!("to-net=127.0.0.0/8;ports={port}");
    let mut p = sharing(rt, &listen, &[ALPHA, BETA], &common, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let start = record(&p.wait_for_log("the start line", |l| l.contains(" start listen=")));
    assert_eq!(start["clients"], "alpha<from=127.0.0.2/32> beta<from=127.0.0.3/32>", "{start:?}");
    let proxy = format!("http://{listen}");
    for (from, name, mine, theirs) in [("127.0.0.2", "alpha", "a.test", "b.test"), ("127.0.0.3", "beta", "b.test", "a.test")] {
        let url = |host: &str, path: &str| format!("http://{host}:{port}/{name}-{path}");
        let refusal = format!("{theirs}:{port} refused for client {name} (rule not-listed)");
        // Plain HTTP.
        let (code, body, err) = curl(&["--interface", from, "-x", &proxy, &url(mine, "plain")]);
        assert_eq!((code, body.as_str()), (0, format!("origin /{name}-plain\n").as_str()), "{name}: {err}");
        let (_, body, _) = curl(&["--interface", from, "-x", &proxy, &url(theirs, "never-plain")]);
        assert!(body.contains(&refusal), "{name} asking for {theirs}: {body}");
        // CONNECT.
        let (code, body, err) = curl(&["--interface", from, "-p", "-x", &proxy, &url(mine, "tunnel")]);
        assert_eq!((code, body.as_str()), (0, format!("origin /{name}-tunnel\n").as_str()), "{name}: {err}");
        let answer = answer_from(from, at, format!("CONNECT {theirs}:{port} HTTP/1.1\r\nHost: {theirs}:{port}\r\n\r\n").as_bytes());
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains(&refusal), "{name} CONNECT {theirs}: {answer}");
        // SOCKS5.
        let (code, body, err) = curl(&["--interface", from, "--socks5-hostname", &listen, &url(mine, "socks")]);
        assert_eq!((code, body.as_str()), (0, format!("origin /{name}-socks\n").as_str()), "{name}: {err}");
        let (code, _, _) = curl(&["--interface", from, "--socks5-hostname", &listen, &url(theirs, "never-socks")]);
        assert_ne!(code, 0, "{name} over SOCKS5 to {theirs}");
    }
    // Each decision was made by the policy of the client's address (the
    // log reader may be a line behind curl: wait for the last).
    eventually("sixteen decision lines", || p.log().iter().filter(|l| l.contains(" decision ")).count() >= 16);
    let decisions: Vec<_> = p.log().iter().filter(|l| l.contains(" decision ")).map(|l| record(l)).collect();
    // (An allowed tunnel logs two: the CONNECT or SOCKS5 target, then the request inside.)
    assert_eq!(decisions.len(), 16, "{decisions:?}");
    for d in &decisions {
        let own = match d["route"].strip_suffix(&format!("@{listen}")) {
            Some("alpha") => "a.test:",
            Some("beta") => "b.test:",
            _ => panic!("a decision not labelled NAME@{listen}: {d:?}"),
        };
        assert_eq!(d["decision"] == "allow", d["host"].starts_with(own), "{d:?}");
    }
    let close = record(&p.wait_for_log("beta's refusal", |l| l.contains(" close ") && l.contains("client=127.0.0.3:") && l.contains("reason=forbidden")));
    assert_eq!(close["route"], format!("beta@{listen}"));
    assert!(close["error"].contains("refused for client beta (rule not-listed)"), "{close:?}");

    // A client no policy claims: closed at once, before it sends a byte.
    let mut c = Proxy::connect_from("127.0.0.4", at);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty(), "nothing is said to an unknown client: {got:?}");
    let (code, body, _) = curl(&["--interface", "127.0.0.4", "-x", &proxy, &format!("http://a.test:{port}/never-unknown")]);
    assert!(code != 0 && body.is_empty(), "curl from an unknown address: {code} {body}");
    let denied = record(&p.wait_for_log("the unknown client's close", |l| l.contains(" close ") && l.contains("client=127.0.0.4:")));
    assert_eq!((denied["reason"].as_str(), denied["route"].as_str(), denied["to_client"].as_str()), ("denied", listen.as_str(), "0"), "{denied:?}");
    origin_saw_no_refused_request(&seen);

    // The metrics: each client's route by its name, the unknown at the door.
    let s = scrape(p.metrics.as_deref().expect("metrics"));
    let on = |name: &str, route: &str, reason: Option<&str>| {
        let found = s.iter().find(|(n, l, _)| n == name && l.get("route") == Some(&route.to_string()) && reason.is_none_or(|r| l.get("reason").map(String::as_str) == Some(r)));
        found.unwrap_or_else(|| panic!("no {name} for route {route}")).2
    };
    for name in ["alpha", "beta"] {
        assert_eq!(on("wasiter_connections_total", &format!("{name}@{listen}"), None), 6.0, "{name}: three ways, each allowed and refused");
        assert_eq!(on("wasiter_closes_total", &format!("{name}@{listen}"), Some("forbidden")), 3.0, "{name}: refused once each way");
    }
    assert_eq!(on("wasiter_closes_total", &listen, Some("denied")), 2.0, "the unknown client, twice");
    drop(p);

    // With a default, an unclaimed client gets the default's list.
    let listen = format!("127.0.0.1:{}", free_port());
    let proxy = format!("http://{listen}");
    let _p = sharing(rt, &listen, &[ALPHA, BETA, "client=others;to=c.test"], &common, &dns.addr(), &[]);
    let (code, body, err) = curl(&["--interface", "127.0.0.4", "-x", &proxy, &format!("http://c.test:{port}/others")]);
    assert_eq!((code, body.as_str()), (0, "origin /others\n"), "{err}");
    let (_, body, _) = curl(&["--interface", "127.0.0.4", "-x", &proxy, &format!("http://a.test:{port}/never-others")]);
    assert!(body.contains(&format!("a.test:{port} refused for client others (rule not-listed)")), "{body}");
    let (_, body, _) = curl(&["--interface", "127.0.0.2", "-x", &proxy, &format!("http://c.test:{port}/never-alpha")]);
    assert!(body.contains("refused for client alpha"), "alpha keeps its own list beside a default: {body}");
    origin_saw_no_refused_request(&seen);
}

pub fn nothing_a_client_sends_takes_another_clients_policy(rt: Runtime) {
    let (web, seen) = seeing_origin();
    let port = web.addr.port();
    let dns = three_names();
    let listen = format!("127.0.0.1:{}", free_port());
    let at: SocketAddr = listen.parse().unwrap();
    let common = format!("to-net=127.0.0.0/8;ports={port}");
    let mut p = sharing(rt, &listen, &[ALPHA, BETA], &common, &dns.addr(), &[]);
    let proxy = format!("http://{listen}");
    let beta = "127.0.0.3";
    let a = |path: &str| format!("http://a.test:{port}/never-{path}");
    let refused = |body: &str, what: &str| assert!(body.contains(&format!("a.test:{port} refused for client beta (rule not-listed)")), "{what}: {body}");
    // Headers that name alpha's address, a login named alpha.
    let (_, body, _) = curl(&["--interface", beta, "-x", &proxy, "-H", "X-Forwarded-For: 127.0.0.2", "-H", "Forwarded: for=127.0.0.2", "-H", "X-Real-IP: 127.0.0.2", &a("xff")]);
    refused(&body, "forwarding headers");
    let (_, body, _) = curl(&["--interface", beta, "-x", &proxy, "-U", "alpha:secret", &a("login")]);
    refused(&body, "Proxy-Authorization");
    let (_, body, _) = curl(&["--interface", beta, "-p", "-x", &proxy, "-U", "alpha:secret", "-H", "X-Forwarded-For: 127.0.0.2", &a("tunnel")]);
    assert!(body.is_empty(), "no tunnel: {body}");
    // A SOCKS5 login named alpha: curl offers it; none is asked for.
    let (code, _, _) = curl(&["--interface", beta, "-x", &format!("socks5h://alpha:secret@{listen}"), &a("socks")]);
    assert_ne!(code, 0, "SOCKS5 with the user alpha");
    let socks = record(&p.wait_for_log("the SOCKS5 decision", |l| l.contains(" decision ") && l.contains(&format!("host=a.test:{port}")) && l.contains("rule=not-listed")));
    assert_eq!(socks["route"], format!("beta@{listen}"));
    // A PROXY v1 header claiming alpha's address as the first bytes.
    let claim = format!("PROXY TCP4 127.0.0.2 127.0.0.1 40000 {}\r\nGET {} HTTP/1.1\r\nHost: a.test:{port}\r\nConnection: close\r\n\r\n", at.port(), a("proxy-header"));
    let answer = answer_from(beta, at, claim.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 4"), "a PROXY header from a client is a bad request: {answer}");
    // The URL names one host, Host another: never a.test for beta.
    let mismatch = format!("GET {} HTTP/1.1\r\nHost: b.test:{port}\r\nConnection: close\r\n\r\n", a("url"));
    let answer = answer_from(beta, at, mismatch.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 4"), "URL a.test, Host b.test: {answer}");
    let mismatch = format!("GET http://b.test:{port}/mismatch HTTP/1.1\r\nHost: a.test:{port}\r\nConnection: close\r\n\r\n");
    let answer = answer_from(beta, at, mismatch.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 4") || answer.ends_with("origin /mismatch\n"), "URL b.test, Host a.test: {answer}");
    origin_saw_no_refused_request(&seen);
    assert!(!seen.lock().unwrap().iter().any(|s| s.starts_with("a.test")), "beta reached a.test: {:?}", seen.lock().unwrap());
    // alpha, for contrast: the same request from its own address passes.
    let (code, body, err) = curl(&["--interface", "127.0.0.2", "-x", &proxy, &format!("http://a.test:{port}/alpha")]);
    assert_eq!((code, body.as_str()), (0, "origin /alpha\n"), "{err}");
    p.assert_alive();
    drop(p);

    // A dual-stack listener sees 127.0.0.2 as ::ffff:127.0.0.2: still alpha.
    let fwd = free_port();
    let listen = format!("[::]:{fwd}");
    let _p = sharing(rt, &listen, &[ALPHA, BETA], &common, &dns.addr(), &[]);
    if TcpStream::connect(("127.0.0.1", fwd)).is_err() {
        println!("SKIPPED: {rt:?}: its [::] listener takes no IPv4 clients (IPv6 only), so no IPv4-mapped peer to check");
        return;
    }
    let proxy = format!("http://127.0.0.1:{fwd}");
    let (code, body, err) = curl(&["--interface", "127.0.0.2", "-x", &proxy, &format!("http://a.test:{port}/mapped")]);
    assert_eq!((code, body.as_str()), (0, "origin /mapped\n"), "127.0.0.2 on a dual-stack listener is alpha: {err}");
    let (_, body, _) = curl(&["--interface", beta, "-x", &proxy, &a("mapped")]);
    refused(&body, "beta on a dual-stack listener");
    origin_saw_no_refused_request(&seen);
}

/// Write the routes file as an editor would: whole, then renamed in place.
pub fn write_routes(path: &Path, routes: &[String]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, routes.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn a_reload_changes_one_clients_policy_and_keeps_its_open_tunnel(rt: Runtime) {
    let (web, seen) = seeing_origin();
    let echo = Server::echo();
    let (port, opaque) = (web.addr.port(), echo.addr.port());
    let dns = three_names();
    let listen = format!("127.0.0.1:{}", free_port());
    let at: SocketAddr = listen.parse().unwrap();
    let route = |policy: &str| format!("{listen}=forward;{policy};to-net=127.0.0.0/8;ports={port},{opaque};opaque={opaque}");
    let dir = TempDir::new("identity");
    let file = dir.path().join("routes");
    write_routes(&file, &[route(ALPHA), route(BETA)]);
    let args = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "100ms", "--resolver", &dns.addr()];
    let (mut p, _) = Proxy::start_routes_in(rt, Some(dir.path()), 1, &[], &args);
    // alpha's tunnel to a.test, opaque: bytes both ways.
    let mut t = Proxy::connect_from("127.0.0.2", at);
    t.write_all(format!("CONNECT a.test:{opaque} HTTP/1.1\r\nHost: a.test:{opaque}\r\n\r\n").as_bytes()).unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(read_exact_n(&mut t, 1)[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    t.write_all(b"before the reload").unwrap();
    assert_eq!(read_exact_n(&mut t, 17), b"before the reload");

    // alpha may reach c.test alone now; gamma is new, on 127.0.0.4.
    let gamma = "client=gamma;from=127.0.0.4;to=a.test";
    write_routes(&file, &[route("client=alpha;from=127.0.0.2;to=c.test"), route(BETA), route(gamma)]);
    let reload = record(&p.wait_for_log("the reload", |l| l.contains(" reload ")));
    assert_eq!((reload["added"].as_str(), reload["changed"].as_str(), reload["removed"].as_str()), (format!("gamma@{listen}").as_str(), format!("alpha@{listen}").as_str(), "-"), "{reload:?}");
    t.write_all(b"after the reload").unwrap();
    assert_eq!(read_exact_n(&mut t, 16), b"after the reload", "the open tunnel still carries both ways");

    let proxy = format!("http://{listen}");
    let get = |from: &str, host: &str, path: &str| curl(&["--interface", from, "-x", &proxy, &format!("http://{host}:{port}/{path}")]).1;
    assert!(get("127.0.0.2", "a.test", "never-alpha").contains(&format!("a.test:{port} refused for client alpha (rule not-listed)")), "alpha's new list");
    assert_eq!(get("127.0.0.2", "c.test", "alpha"), "origin /alpha\n");
    assert_eq!(get("127.0.0.4", "a.test", "gamma"), "origin /gamma\n", "gamma is served");
    assert_eq!(get("127.0.0.3", "b.test", "beta"), "origin /beta\n", "beta is as it was");
    let close = record(&p.wait_for_log("gamma's close", |l| l.contains(" close ") && l.contains("client=127.0.0.4:")));
    assert_eq!(close["route"], format!("gamma@{listen}"));
    t.write_all(b"still").unwrap();
    assert_eq!(read_exact_n(&mut t, 5), b"still");
    origin_saw_no_refused_request(&seen);
}
