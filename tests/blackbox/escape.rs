//! The forward proxy against a client that wants out, trick by trick (issue
//! 43's HTTP rows): framing read from a header that is then dropped as
//! hop-by-hop, odd heads inside a tunnel to a plain port, an h2c upgrade,
//! and IP literals where `to-net=` names the network. The origin is
//! tolerant, as nginx is (it skips empty lines and reads whatever it is
//! given, by Content-Length or chunked), and logs every request it reads:
//! a trick that got past the proxy shows up there as a request no check saw.

use super::*;
use std::sync::Mutex;

/// A tolerant origin: every request it reads on any connection, as its
/// request line and `Host` (`GET /x host=a.test`), in `seen`; the whole
/// head in `heads`. Each is answered 200 with its request line.
struct Origin {
    server: Server,
    seen: Arc<Mutex<Vec<String>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    fn start() -> Origin {
        let (seen, heads) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (s2, h2) = (seen.clone(), heads.clone());
        let server = Server::start(move |s| {
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut out = s;
            while let Some((line, host, head)) = read_request(&mut reader) {
                s2.lock().unwrap().push(format!("{line} host={host}"));
                h2.lock().unwrap().push(head);
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{line}\n", line.len() + 1);
                if out.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        });
        Origin { server, seen, heads }
    }

    fn port(&self) -> u16 {
        self.server.addr.port()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One request as a tolerant server reads it: empty lines skipped, the
/// head to its blank line (LF alone ends a line too), the body by
/// Content-Length or chunked. (request line, Host, head); `None` at EOF.
fn read_request(reader: &mut impl BufRead) -> Option<(String, String, String)> {
    let mut line = String::new();
    while line.trim().is_empty() {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
    }
    let (mut head, mut host, mut length, mut chunked) = (line.clone(), String::new(), 0usize, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        head.push_str(&h);
        let t = h.trim_end();
        if t.is_empty() {
            break;
        }
        let (name, value) = t.split_once(':').unwrap_or((t, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "host" => host = value.trim().to_string(),
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).ok()?;
            let mut data = vec![0u8; n + 2];
            reader.read_exact(&mut data).ok()?;
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).ok()?;
    }
    Some((line.trim_end().to_string(), host, head))
}

/// Everything the proxy answers on one connection until it closes (or 5 s).
pub fn all_answered(p: &Proxy, bytes: &[u8]) -> String {
    let mut c = p.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(bytes);
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The decision lines' rules so far, in order.
fn rules(p: &Proxy) -> Vec<String> {
    p.log().iter().filter(|l| l.contains(" decision ")).map(|l| record(l).get("rule").cloned().unwrap_or_default()).collect()
}

pub fn framing_read_from_a_dropped_header_is_refused(rt: Runtime) {
    let origin = Origin::start();
    let port = origin.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("evil.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    // A body that holds a second request, to a host no check saw; the
    // Connection header that would drop the framing, every way it is spelt.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: evil.test\r\nContent-Length: 200\r\n\r\n";
    let chunked = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    for (connection, framing, body) in [
        ("Connection: Content-Length\r\n", format!("Content-Length: {}\r\n", smuggled.len()), smuggled.to_string()),
        ("Connection: close, Content-Length\r\n", format!("Content-Length: {}\r\n", smuggled.len()), smuggled.to_string()),
        ("connection: keep-alive\r\nConnection: CONTENT-length\r\n", format!("content-length: {}\r\n", smuggled.len()), smuggled.to_string()),
        ("Connection: Transfer-Encoding\r\n", "Transfer-Encoding: chunked\r\n".to_string(), chunked.clone()),
        ("Connection: keep-alive,transfer-encoding\r\n", "Transfer-Encoding: chunked\r\n".to_string(), chunked.clone()),
        ("Connection: Host\r\n", format!("Content-Length: {}\r\n", smuggled.len()), smuggled.to_string()),
    ] {
        let request = format!("POST http://allowed.test:{port}/upload HTTP/1.1\r\nHost: allowed.test:{port}\r\n{connection}{framing}\r\n{body}GET http://allowed.test:{port}/next HTTP/1.1\r\n\r\n");
        let answer = all_answered(&p, request.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("Connection header naming"), "{connection}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "one answer and a close: {answer}");
    }
    assert!(origin.seen().is_empty(), "no request reached the origin: {:?}", origin.seen());
    eventually("a decision line with rule=framing for each", || rules(&p).len() == 6);
    assert!(rules(&p).iter().all(|r| r == "framing"), "{:?}", rules(&p));
    closed_with(&mut p, "bad-request");
    // The framing tricks that were refused already still are, by rule.
    let both = format!("POST http://allowed.test:{port}/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert!(all_answered(&p, both.as_bytes()).starts_with("HTTP/1.1 400 "));
    let twice = format!("POST http://allowed.test:{port}/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n");
    assert!(all_answered(&p, twice.as_bytes()).starts_with("HTTP/1.1 400 "));
    assert!(origin.seen().is_empty());
    // A clean request still goes, and its Host is the target's, whatever
    // the client's own Host said.
    let answer = all_answered(&p, format!("GET http://allowed.test:{port}/fine HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(origin.seen(), [format!("GET /fine HTTP/1.1 host=allowed.test:{port}")]);
    p.assert_alive();
}

pub fn a_response_that_plays_the_same_tricks_closes_both_sides(rt: Runtime) {
    // An origin whose answer names Content-Length in Connection, with a
    // second answer hidden in its body; it counts the requests it reads.
    let asked = Arc::new(Mutex::new(0usize));
    let count = asked.clone();
    let origin = Server::start(move |s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut out = s;
        while read_request(&mut reader).is_some() {
            *count.lock().unwrap() += 1;
            let hidden = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged";
            let answer = format!("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len());
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    let req = format!("GET http://allowed.test:{port}/a HTTP/1.1\r\n\r\nGET http://allowed.test:{port}/b HTTP/1.1\r\n\r\n");
    let answer = all_answered(&p, req.as_bytes());
    assert!(!answer.contains("forged"), "the hidden answer never reaches the client as one: {answer}");
    assert!(*asked.lock().unwrap() <= 1, "the second request did not go on the doubtful connection");
    // The upstream connection was not kept: a new request dials anew and
    // is the origin's first request on it.
    let _ = all_answered(&p, format!("GET http://allowed.test:{port}/c HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
    p.assert_alive();
}

pub fn every_request_in_a_plain_tunnel_is_read_and_checked(rt: Runtime) {
    let origin = Origin::start();
    let port = origin.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=allowed.test,other.test;not-to=blocked.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    let ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    let connect = format!("CONNECT allowed.test:{port} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n");
    let good = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n");
    // The second request names another host (allowed by to=, but not this
    // tunnel's): the first is answered, the second refused.
    let answer = all_answered(&p, format!("{connect}{}GET /second HTTP/1.1\r\nHost: other.test:{port}\r\n\r\n", good("/first")).as_bytes());
    assert!(answer.starts_with(ok) && answer.contains("GET /first HTTP/1.1") && answer.contains("HTTP/1.1 403 "), "{answer}");
    // Odd heads, each after a good first request.
    let big = format!("GET /big HTTP/1.1\r\nHost: allowed.test:{port}\r\nX-Pad: {}\r\n\r\n", "a".repeat(17 * 1024));
    for (trick, want) in [
        (format!("GET /two HTTP/1.1\r\nHost: allowed.test:{port}\r\nHost: blocked.test\r\n\r\n"), "403"),
        (format!("PROPFIND /dav HTTP/1.1\r\nHost: blocked.test:{port}\r\n\r\n"), "403"),
        (format!("GET http://blocked.test:{port}/abs HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"), "403"),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_string(), "403"),
        ("GET /bad HTTP/1.1\r\nHost allowed.test\r\n\r\n".to_string(), "403"),
        (format!("CONNECT blocked.test:{port} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"), "403"),
        (format!("POST /cl HTTP/1.1\r\nHost: allowed.test:{port}\r\nConnection: Content-Length\r\nContent-Length: 40\r\n\r\nGET /hidden HTTP/1.1\r\nHost: blocked.test\r\n\r\n"), "400"),
        (big, "431"),
    ] {
        let answer = all_answered(&p, format!("{connect}{}{trick}", good("/first")).as_bytes());
        let after = answer.split_once("GET /first HTTP/1.1\n").map(|(_, rest)| rest).unwrap_or_default();
        assert!(after.starts_with(&format!("HTTP/1.1 {want} ")), "{trick:.60}: {answer}");
    }
    // The same tricks as the first bytes: refused before anything goes.
    for trick in ["GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n".to_string(), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into(), "SSH-2.0-OpenSSH_9.2\r\n".into()] {
        let answer = all_answered(&p, format!("{connect}{trick}").as_bytes());
        assert!(answer.starts_with(ok) && answer[ok.len()..].starts_with("HTTP/1.1 403 "), "{trick:.40}: {answer}");
    }
    // Empty lines before the request line: read past, and the origin gets
    // a clean head.
    let answer = all_answered(&p, format!("{connect}\r\n\r\nGET /late HTTP/1.1\r\nHost: allowed.test:{port}\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(answer.contains("GET /late HTTP/1.1"), "{answer}");
    let seen = origin.seen();
    assert!(seen.iter().all(|l| l.ends_with(&format!("host=allowed.test:{port}")) && (l.starts_with("GET /first ") || l.starts_with("GET /late "))), "only checked requests reached the origin: {seen:?}");
    assert_eq!(seen.len(), 10, "{seen:?}");
    for rule in ["sni-mismatch", "tunnel-not-http", "framing"] {
        eventually(&format!("a decision with rule={rule}"), || rules(&p).iter().any(|r| r == rule));
    }
    closed_with(&mut p, "tunnel-not-http");
    p.assert_alive();
}

pub fn h2c_and_other_upgrades_are_dropped_on_forward_routes(rt: Runtime) {
    let origin = Origin::start();
    let port = origin.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1")], &[], &[]);
    let p = forward(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    let url = format!("http://allowed.test:{port}/h2c");
    // curl asks for h2c as clients do (Upgrade, HTTP2-Settings, both named in Connection).
    let (code, body, err) = curl(&["--http2", "-x", &format!("http://{}", p.addr), &url]);
    assert_eq!((code, body.as_str()), (0, "GET /h2c HTTP/1.1\n"), "{err}");
    let by_hand = format!("GET {url} HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, TLS/1.2\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: close\r\n\r\n");
    assert!(all_answered(&p, by_hand.as_bytes()).starts_with("HTTP/1.1 200 "));
    let heads = origin.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    for head in heads {
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("upgrade") && !lower.contains("http2-settings"), "the origin heard no upgrade: {head}");
    }
}

pub fn ip_literals_pass_only_where_to_names_them(rt: Runtime) {
    if !sealed(rt, "ip_literals_pass_only_where_to_names_them") {
        return;
    }
    assert!(std::net::TcpStream::connect_timeout(&"10.1.2.3:80".parse().unwrap(), Duration::from_secs(1)).is_err(), "only loopback here");
    let origin = Origin::start();
    let port = origin.port();
    let dns = DnsServer::start(&[("registry.corp", "127.0.0.1")], &[], &[]);
    // to-net= lets registry.corp resolve into those networks; no literal in
    // them passes for that, in any spelling.
    let mut p = forward(rt, &format!("to=registry.corp;to-net=10.0.0.0/8,127.0.0.0/8;ports=443,{port}"), &dns.addr(), &[]);
    p.wait_for_log("the to-net warning", |l| l.contains("to-net-for-names-only"));
    for target in ["10.1.2.3:443".to_string(), "[::ffff:10.1.2.3]:443".into(), "[::ffff:a01:203]:443".into(), format!("127.0.0.1:{port}"), "10.0.0.1:443".into()] {
        let answer = all_answered(&p, format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("rule ip-literal"), "{target}: {answer}");
    }
    let answer = all_answered(&p, format!("GET http://127.0.0.1:{port}/literal HTTP/1.1\r\n\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    // The name itself goes where to-net= lets it.
    let answer = all_answered(&p, format!("GET http://registry.corp:{port}/by-name HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(origin.seen(), [format!("GET /by-name HTTP/1.1 host=registry.corp:{port}")]);
    // An address, or a network, written in to= names literals.
    let listed = forward(rt, &format!("to=127.0.0.0/24;ports={port}"), &dns.addr(), &[]);
    let answer = all_answered(&listed, format!("GET http://127.0.0.1:{port}/listed HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    p.assert_alive();
}
