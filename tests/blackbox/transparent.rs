//! A transparent listener (`transparent=PORT`): clients that know nothing
//! of the proxy, as if the kernel had redirected them (curl --connect-to
//! takes the redirect's place here: the client believes it talks to the
//! server). The destination comes from the ClientHello's server name or
//! the request's Host, checked by the forward proxy's policy.

use super::*;

/// A transparent forward route standing for `port`.
fn transparent(rt: Runtime, port: u16, options: &str, dns: &str) -> Proxy {
    forward(rt, &format!("transparent={port};{options}"), dns, &[])
}

pub fn a_transparent_listener_follows_the_server_name(rt: Runtime) {
    let certs = Certs::new(&["name.test", "evil.test"]);
    let tls = nginx_tls(&certs, "name.test", false, "tls, redirected");
    let dns = DnsServer::start(&[("name.test", "127.0.0.1"), ("evil.test", "127.0.0.1")], &[], &[]);
    let port = tls.port;
    let mut p = transparent(rt, port, &format!("to=name.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    let ca = certs.ca();
    // The client dials what it thinks is name.test:PORT and lands on the listener.
    let redirect = |name: &str| format!("{name}:{port}:127.0.0.1:{}", p.addr.port());
    let (code, body, err) = curl(&["--connect-to", &redirect("name.test"), "--cacert", ca.to_str().unwrap(), &format!("https://name.test:{port}/")]);
    assert_eq!((code, body.as_str()), (0, "tls, redirected\n"), "{err}");
    // Another name: an access_denied alert, and no byte to any server.
    let (code, _, err) = curl(&["--connect-to", &redirect("evil.test"), "-k", &format!("https://evil.test:{port}/")]);
    assert_ne!(code, 0, "evil.test is not listed: {err}");
    assert!(err.contains("access denied") || err.contains("alert"), "the client hears a TLS alert: {err}");
    let line = record(&p.wait_for_log("evil.test's decision", |l| l.contains(" decision ") && l.contains("host=evil.test:")));
    assert_eq!((line["decision"].as_str(), line["rule"].as_str()), ("deny", "not-listed"));
    // By hand: a ClientHello without a name is refused with an alert; so
    // are bytes that are not a ClientHello.
    let mut c = p.connect();
    c.write_all(&tls_records(&client_hello(None, &[], 0), 1 << 14)).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert_eq!(answer, [21, 3, 1, 0, 2, 2, 112], "unrecognized_name");
    closed_with(&mut p, "sni-mismatch");
    let mut c = p.connect();
    c.write_all(&[22, 3, 1, 0, 5, 9, 9, 9, 9, 9]).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&21), "an alert for a broken ClientHello: {answer:?}");
    // The right name, split across records: reassembled, relayed unchanged.
    let hello = tls_records(&client_hello(Some("Name.Test."), &["http/1.1"], 0), 40);
    let mut c = p.connect();
    c.write_all(&hello).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer); // nginx's answer to a made-up hello: it ends the connection
    drop(c);
    let whole = format!("to_upstream={} ", hello.len());
    p.wait_for_log("the ClientHello relayed whole to name.test's server", |l| l.contains(" close ") && l.contains(&format!("upstream=127.0.0.1:{port} ")) && l.contains(&whole));
}

pub fn a_transparent_listener_checks_each_request_by_its_host(rt: Runtime) {
    let web = nginx(&[("index.html", b"plain, redirected\n")]);
    let dns = DnsServer::start(&[("web.test", "127.0.0.1"), ("evil.test", "127.0.0.1"), ("meta.test", "169.254.169.254")], &[], &[]);
    let port = web.port;
    let p = transparent(rt, port, &format!("to=web.test,meta.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    let (code, body, err) = curl(&["--connect-to", &format!("web.test:{port}:127.0.0.1:{}", p.addr.port()), &format!("http://web.test:{port}/index.html")]);
    assert_eq!((code, body.as_str()), (0, "plain, redirected\n"), "{err}");
    // On one kept-alive connection: an allowed request, then one for
    // another Host, then one whose name resolves outside to-net.
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    let mut status = |host: &str| {
        w.write_all(format!("GET /index.html HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut len = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if h == "\r\n" || h.is_empty() {
                break;
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        (line, String::from_utf8_lossy(&body).into_owned())
    };
    let (line, body) = status("web.test");
    assert!(line.starts_with("HTTP/1.1 200") && body == "plain, redirected\n", "{line} {body}");
    let (line, body) = status(&format!("evil.test:{port}"));
    assert!(line.starts_with("HTTP/1.1 403") && body.contains("evil.test is not in to="), "another Host on the same connection: {line} {body}");
    // The 403 closed that connection; a new one for the metadata name.
    let mut c = p.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: meta.test\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("resolves to 169.254.169.254"), "{answer}");
    // What a client of a server never sends: refused.
    for (request, why) in [
        ("GET http://evil.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n", "as a server does"),
        ("CONNECT evil.test:443 HTTP/1.1\r\n\r\n", "as a server does"),
        ("GET / HTTP/1.1\r\n\r\n", "without one Host"),
        ("GET / HTTP/1.1\r\nHost: web.test\r\nHost: evil.test\r\n\r\n", "without one Host"),
    ] {
        let mut c = p.connect();
        c.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400") && answer.contains(why), "{request:?}: {answer}");
    }
    // SOCKS5 is not spoken on a transparent port: its greeting is no request.
    let mut c = p.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(!answer.starts_with(&[5, 0]), "no SOCKS5 answer: {answer:?}");
}

/// `nft -f -` with `rules`, in the test's own network namespace.
fn nft(rules: &str) {
    let mut child = Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().expect("nft (Debian's nftables; scripts/setup --peers installs it)");
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft refused:\n{rules}");
}

fn ip(args: &str) {
    let ok = Command::new("ip").args(args.split(' ')).status().expect("ip (iproute2)").success();
    assert!(ok, "ip {args}");
}

pub fn redirected_connections_reach_only_allowed_names(rt: Runtime) {
    if !sealed(rt, "redirected_connections_reach_only_allowed_names") {
        return;
    }
    // In a network namespace of this test's own, with only loopback: the
    // kernel redirects what clients send to the documentation networks
    // (203.0.113.0/24, 2001:db8::/32) on the servers' ports to the
    // transparent listeners, as the Feature's lock-down does for 443 and
    // 80. The clients know nothing of the proxy: no proxy variable, and
    // they resolve every name to the documentation address themselves.
    let certs = Certs::new(&["name.test", "evil.test"]);
    let tls = nginx_tls(&certs, "name.test", false, "tls, redirected by the kernel");
    let web = nginx(&[("index.html", b"plain, redirected by the kernel\n")]);
    let dns = DnsServer::start(&[("name.test", "127.0.0.1"), ("web.test", "127.0.0.1"), ("evil.test", "127.0.0.1")], &[], &[]);
    let route = |listen: &str, port: u16| format!("{listen}:0=forward;transparent={port};to=name.test,web.test;to-net=127.0.0.0/8;ports={port}");
    let args = [route("127.0.0.1", tls.port), route("127.0.0.1", web.port), route("[::1]", tls.port), route("[::1]", web.port)];
    let mut all = vec!["--resolver", dns.addr().leak() as &str];
    for a in &args {
        all.extend(["--route", a.as_str()]);
    }
    let (mut p, listens) = Proxy::start_routes(rt, 4, &[], &all);
    let to = |i: usize| listens[i].port();
    // The "servers" the clients dial: addresses of this namespace's loopback.
    ip("addr add 203.0.113.10/32 dev lo");
    ip("-6 addr add 2001:db8::10/128 dev lo");
    nft(&format!(
        "table inet wasiter_test {{\n chain out {{\n  type nat hook output priority -100;\n\
         ip daddr 203.0.113.0/24 tcp dport {t} redirect to :{} \n ip daddr 203.0.113.0/24 tcp dport {w} redirect to :{}\n\
         ip6 daddr 2001:db8::/32 tcp dport {t} redirect to :{}\n ip6 daddr 2001:db8::/32 tcp dport {w} redirect to :{}\n }}\n}}\n",
        to(0), to(1), to(2), to(3), t = tls.port, w = web.port
    ));
    let ca = certs.ca();
    for addr in ["203.0.113.10", "[2001:db8::10]"] {
        let resolve = |name: &str, port: u16| format!("{name}:{port}:{addr}");
        let (code, body, err) = curl(&["--resolve", &resolve("name.test", tls.port), "--cacert", ca.to_str().unwrap(), &format!("https://name.test:{}/", tls.port)]);
        assert_eq!((code, body.as_str()), (0, "tls, redirected by the kernel\n"), "{addr}: {err}");
        let (code, _, err) = curl(&["--resolve", &resolve("evil.test", tls.port), "-k", &format!("https://evil.test:{}/", tls.port)]);
        assert_ne!(code, 0, "{addr}: evil.test is not listed: {err}");
        let (code, body, err) = curl(&["--resolve", &resolve("web.test", web.port), &format!("http://web.test:{}/index.html", web.port)]);
        assert_eq!((code, body.as_str()), (0, "plain, redirected by the kernel\n"), "{addr}: {err}");
        let (code, body, _) = curl(&["--resolve", &resolve("evil.test", web.port), "-o", "-", "-w", "%{http_code}", &format!("http://evil.test:{}/", web.port)]);
        assert!(code == 0 && body.ends_with("403") && body.contains("evil.test is not in to="), "{addr}: {body}");
    }
    // Every redirected connection was the proxy's to decide: two refusals
    // per address family, by name.
    eventually("four refusals of evil.test", || p.log().iter().filter(|l| l.contains("host=evil.test:") && l.contains("decision=deny")).count() == 4);
    let opened = p.log().iter().filter(|l| l.contains(" open ") && (l.contains("host=name.test:") || l.contains("host=web.test:"))).count();
    assert_eq!(opened, 4, "the allowed ones went through the proxy, not around it");
    p.assert_alive();
}
