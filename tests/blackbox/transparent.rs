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
