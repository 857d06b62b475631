//! The forward proxy tried as someone who wants past its list would: a
//! CONNECT to an allowed name carrying a ClientHello for another (domain
//! fronting through a server that hosts both), a request naming another
//! site in its Host header, a plain request inside a tunnel naming another
//! host. Each must be refused before a byte of it reaches the destination.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A destination that counts the bytes it receives and never answers:
/// what reached it is what the proxy let through.
pub fn counting_server() -> (Server, Arc<AtomicUsize>) {
    let got = Arc::new(AtomicUsize::new(0));
    let count = got.clone();
    let server = Server::start(move |mut s| {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            count.fetch_add(n, Ordering::SeqCst);
        }
    });
    (server, got)
}

/// An origin that keeps every connection alive whatever the request's
/// `Connection` says (as most do) and answers each request with `tag` and
/// the head (and body) it received; counts the requests it answered.
pub fn head_echo_origin(tag: &'static str) -> (Server, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let server = Server::start(move |s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut out = s;
        while let Some((head, body)) = read_message(&mut reader) {
            count.fetch_add(1, Ordering::SeqCst);
            let got = format!("{tag}\n{head}{}", String::from_utf8_lossy(&body));
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{got}", got.len());
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    (server, requests)
}

/// One HTTP/1.1 message from `reader`: its head (with the blank line) and
/// its body, by Content-Length or chunked (de-chunked). `None` at EOF.
fn read_message(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(len) = lower.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((head, body))
}

/// Read one answer from the proxy: (status line, body as text).
pub fn answer(reader: &mut impl BufRead) -> (String, String) {
    let (head, body) = read_message(reader).expect("an answer before the proxy closed");
    (head.lines().next().unwrap_or_default().to_string(), String::from_utf8_lossy(&body).into_owned())
}

/// A forward route with these options (`forward::forward`), and metrics.
pub fn forward_proxy(rt: Runtime, options: &str, dns: &str) -> Proxy {
    forward(rt, options, dns, &["--metrics", "127.0.0.1:0"])
}

/// The close line of the connection that ended with `reason`.
pub fn closed_with(p: &mut Proxy, reason: &str) -> HashMap<String, String> {
    record(&p.wait_for_log(&format!("a close with reason={reason}"), |l| l.contains(" close ") && l.contains(&format!("reason={reason}"))))
}

pub fn tunnel_tls_name_is_bound_to_the_connect_target(rt: Runtime) {
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let mut p = forward_proxy(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    // curl's --connect-to makes the CONNECT name allowed.test while its
    // ClientHello names other.test: domain fronting, as a user would try it.
    let url = format!("https://other.test:{port}/");
    let fronted = format!("other.test:{port}:allowed.test:{port}");
    let (code, _, err) = curl(&["-x", &format!("http://{}", p.addr), "--connect-to", &fronted, "-k", &url]);
    assert_ne!(code, 0, "the fronted handshake must fail: {err}");
    let close = closed_with(&mut p, "sni-mismatch");
    assert!(close["error"].contains("names other.test") && close["error"].contains(&format!("allowed.test:{port}")), "both names: {close:?}");
    assert_eq!(close["to_upstream"], "0", "nothing went on: {close:?}");
    // The same by hand: the answer is the 200, then a fatal
    // unrecognized_name alert, then the close.
    let mut c = p.connect();
    let mut asked = format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").into_bytes();
    asked.extend(tls_records(&client_hello(Some("OTHER.test."), &["http/1.1"], 0), 100)); // split across records, too
    c.write_all(&asked).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert!(answer.starts_with(ok), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(answer[ok.len()..], [21, 3, 1, 0, 2, 2, 112], "a fatal unrecognized_name alert");
    // A ClientHello with no name at all, to a name: refused too.
    let mut c = p.connect();
    let mut asked = format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").into_bytes();
    asked.extend(tls_records(&client_hello(None, &[], 0), 1 << 14));
    c.write_all(&asked).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert!(answer.ends_with(&[21, 3, 1, 0, 2, 2, 112]), "{answer:?}");
    p.wait_for_log("the nameless ClientHello's close", |l| l.contains("reason=sni-mismatch") && l.contains("names no server"));
    assert_eq!(got.load(Ordering::SeqCst), 0, "no byte of a refused tunnel reached the destination");
    // The right name passes, in any case and with a trailing dot: the
    // ClientHello is the first thing the destination gets.
    let mut c = p.connect();
    let hello = tls_records(&client_hello(Some("Allowed.Test."), &[], 0), 1 << 14);
    let mut asked = format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").into_bytes();
    asked.extend(&hello);
    c.write_all(&asked).unwrap();
    assert_eq!(read_exact_n(&mut c, ok.len()), ok);
    let t = Instant::now();
    while got.load(Ordering::SeqCst) < hello.len() && t.elapsed() < PATIENCE {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got.load(Ordering::SeqCst), hello.len(), "the matching ClientHello went on whole");
    let m = scrape(p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_closes_total", Some(("reason", "sni-mismatch"))), 3.0);
    assert_eq!(sample(&m, "wasiter_forward_decisions_total", Some(("rule", "sni-mismatch"))), 3.0, "each a decision of its own");
    p.wait_for_log("the tunnel's deny decision", |l| l.contains(" decision conn=") && l.contains("decision=deny rule=sni-mismatch"));
}

pub fn tunnel_plain_request_must_name_the_connect_host(rt: Runtime) {
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1")], &[], &[]);
    let mut p = forward_proxy(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    let mut c = p.connect();
    c.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: other.test\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    let (ok, refused) = answer.split_once("\r\n\r\n").unwrap();
    assert_eq!(ok, "HTTP/1.1 200 Connection established");
    assert!(refused.starts_with("HTTP/1.1 403 ") && refused.contains("Host other.test") && refused.contains(&format!("allowed.test:{port}")), "{refused}");
    closed_with(&mut p, "sni-mismatch");
    assert_eq!(got.load(Ordering::SeqCst), 0, "the request did not reach the destination");
    // Its own Host passes, as a request read and sent on in origin form.
    let mut c = p.connect();
    c.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n").as_bytes()).unwrap();
    let want = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(read_exact_n(&mut c, want.len()), want);
    let sent = format!("GET / HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n").len();
    eventually("the request reaches the destination", || got.load(Ordering::SeqCst) == sent);
    // Bytes that are not a request (ssh's banner) are refused: they cannot
    // be read, so they cannot be checked ...
    let mut c = p.connect();
    c.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.contains("HTTP/1.1 403 ") && answer.contains(&format!("opaque={port}")), "{answer}");
    closed_with(&mut p, "tunnel-not-http");
    // ... unless the route lets that port's tunnels through unread.
    let opaque = forward_proxy(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port};opaque={port}"), &dns.addr());
    let mut c = opaque.connect();
    c.write_all(format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n").as_bytes()).unwrap();
    assert_eq!(read_exact_n(&mut c, want.len()), want);
    eventually("the banner reaches the destination", || got.load(Ordering::SeqCst) == sent + "SSH-2.0-OpenSSH_9.2\r\n".len());
}

pub fn plain_requests_carry_the_targets_host(rt: Runtime) {
    let (origin, _) = head_echo_origin("origin");
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let p = forward_proxy(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    // The client's own Host names another site: the origin sees the URL's.
    let url = format!("http://allowed.test:{port}/x");
    let (code, body, err) = curl(&["-x", &format!("http://{}", p.addr), "-H", "Host: other.test", "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: 1", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(body.starts_with("origin\nGET /x HTTP/1.1\r\n"), "origin form: {body}");
    assert!(body.contains(&format!("\r\nHost: allowed.test:{port}\r\n")) && !body.contains("other.test"), "the target's Host only: {body}");
    assert!(!body.contains("X-Hop") && !body.to_ascii_lowercase().contains("proxy-connection"), "hop-by-hop headers stay with the proxy: {body}");
    // Framing that two readers could read two ways: 400, and the origin
    // never hears of it.
    let before = origin.accepted();
    let mut c = p.connect();
    c.write_all(format!("POST {url} HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("both Content-Length and Transfer-Encoding"), "{answer}");
    // A URL with userinfo: whose host is it? Refused, not guessed.
    let mut c = p.connect();
    c.write_all(format!("GET http://other.test@allowed.test:{port}/ HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 ") && answer.contains("userinfo"), "{answer}");
    assert_eq!(origin.accepted(), before, "refused requests reached no origin");
}

pub fn each_request_on_a_kept_alive_connection_goes_to_its_own_host(rt: Runtime) {
    let (a, to_a) = head_echo_origin("origin A");
    let (b, to_b) = head_echo_origin("origin B");
    let (pa, pb) = (a.addr.port(), b.addr.port());
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1"), ("denied.test", "127.0.0.1")], &[], &[]);
    let mut p = forward_proxy(rt, &format!("to=allowed.test,other.test;to-net=127.0.0.0/8;ports={pa},{pb}"), &dns.addr());
    let get = |host: &str, port: u16, path: &str| format!("GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    // One after the other on one connection: each from its own origin,
    // the second with its own Host.
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    w.write_all(get("allowed.test", pa, "/1").as_bytes()).unwrap();
    let (status, body) = answer(&mut reader);
    assert!(status.starts_with("HTTP/1.1 200") && body.starts_with("origin A\nGET /1 "), "{status} {body}");
    w.write_all(get("other.test", pb, "/2").as_bytes()).unwrap();
    let (status, body) = answer(&mut reader);
    assert!(status.starts_with("HTTP/1.1 200") && body.starts_with("origin B\nGET /2 "), "the second request went to its own host: {body}");
    assert!(body.contains(&format!("Host: other.test:{pb}")), "{body}");
    // A name not on the list, on the same connection: 403 from the proxy,
    // and no origin hears of it; the connection ends.
    w.write_all(get("denied.test", pa, "/3").as_bytes()).unwrap();
    let (status, body) = answer(&mut reader);
    assert!(status.starts_with("HTTP/1.1 403") && body.contains("denied.test is not in to="), "{status} {body}");
    assert_eq!((to_a.load(Ordering::SeqCst), to_b.load(Ordering::SeqCst)), (1, 1), "the denied request reached no origin");
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed after the 403");
    // Each request had its own decision and its own record; one client.
    let close = closed_with(&mut p, "answered");
    assert_eq!(close["host"], format!("allowed.test:{pa}"), "{close:?}");

    // Pipelined in one write, with a chunked upload first: answered in
    // order, each from its own origin, the body whole at the first.
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    let upload = format!("POST http://allowed.test:{pa}/up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    w.write_all(format!("{upload}{}{}", get("other.test", pb, "/p2"), get("allowed.test", pa, "/p3")).as_bytes()).unwrap();
    let (_, body) = answer(&mut reader);
    assert!(body.starts_with("origin A\nPOST /up ") && body.ends_with("hello world"), "{body}");
    let (_, body) = answer(&mut reader);
    assert!(body.starts_with("origin B\nGET /p2 "), "{body}");
    let (_, body) = answer(&mut reader);
    assert!(body.starts_with("origin A\nGET /p3 "), "{body}");

    // A request smuggled in a body is body: it reaches the origin as bytes
    // of the first request, not as a request to denied.test.
    let smuggled = get("denied.test", pa, "/s");
    let before = to_a.load(Ordering::SeqCst);
    w.write_all(format!("POST http://allowed.test:{pa}/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()).as_bytes()).unwrap();
    let (_, body) = answer(&mut reader);
    assert!(body.starts_with("origin A\nPOST /x ") && body.ends_with(&smuggled), "{body}");
    assert_eq!(to_a.load(Ordering::SeqCst), before + 1);

    // curl, fetching two URLs with one connection to the proxy.
    let (code, out, err) = curl(&["-v", "-x", &format!("http://{}", p.addr), &format!("http://allowed.test:{pa}/c1"), &format!("http://other.test:{pb}/c2")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("origin A\nGET /c1 ") && out.contains("origin B\nGET /c2 "), "{out}");
    assert!(err.contains("Re-using existing connection") || err.contains("Reusing existing connection"), "curl kept its connection to the proxy: {err}");
}

/// Run the rest of the calling test in a network namespace of its own with
/// only loopback (`unshare -n`), where a check that failed could dial a
/// refused address and no packet could leave: the test binary runs itself
/// again in there, for this one case. `true`: this is that inner run.
pub fn sealed(rt: Runtime, case: &str) -> bool {
    if std::env::var_os("WASITER_SEALED").is_some() {
        return true;
    }
    let module = match rt {
        Runtime::Native => "native",
        Runtime::Wasmtime => "wasmtime",
        Runtime::WasmEdge => "wasmedge",
        Runtime::WasmEdgeAot => "wasmedge_aot",
    };
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["--exact", &format!("{module}::{case}"), "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env("WASITER_SEALED", "1")
        .output()
        .expect("unshare (util-linux) runs the case where no packet can leave");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("1 passed"), "the sealed run of {case} failed (unshare -n needs root):\n{stdout}\n{stderr}");
    false
}

pub fn addresses_outside_the_list_are_refused_where_no_packet_can_leave(rt: Runtime) {
    if !sealed(rt, "addresses_outside_the_list_are_refused_where_no_packet_can_leave") {
        return;
    }
    // Only loopback here: prove it, so that a failure below cannot reach out.
    assert!(std::net::TcpStream::connect_timeout(&"10.1.2.3:80".parse().unwrap(), Duration::from_secs(1)).is_err());
    let dns = DnsServer::start(
        &[("private.test", "10.1.2.3"), ("meta.test", "169.254.169.254"), ("cgnat.test", "100.64.0.1"), ("ula.test", "fd00::1"), ("nat64.test", "64:ff9b::7f00:1"), ("sixtofour.test", "2002:a9fe:a9fe::1")],
        &[],
        &[],
    );
    let p = forward_proxy(rt, "to=*;ports=80,443", &dns.addr());
    let refused = |request: String, want: &str| {
        let mut c = p.connect();
        c.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains(want), "{request:?}: {answer}");
    };
    // Names that resolve into the networks around the container.
    for (name, addr) in [("private.test", "10.1.2.3"), ("meta.test", "169.254.169.254"), ("cgnat.test", "100.64.0.1"), ("ula.test", "fd00::1"), ("nat64.test", "64:ff9b::7f00:1"), ("sixtofour.test", "2002:a9fe:a9fe::1")] {
        refused(format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n"), &format!("resolves to {addr}"));
        refused(format!("GET http://{name}/ HTTP/1.1\r\n\r\n"), &format!("resolves to {addr}"));
    }
    // Addresses asked for directly, in every form: to=* names none of them.
    for target in ["10.1.2.3", "169.254.169.254", "93.184.215.14", "[64:ff9b::a9fe:a9fe]", "[::ffff:10.0.0.1]", "[fd00::1]"] {
        refused(format!("CONNECT {target}:443 HTTP/1.1\r\n\r\n"), "is an IP address");
        refused(format!("GET http://{target}/ HTTP/1.1\r\n\r\n"), "is an IP address");
    }
    for odd in ["2130706433", "0x7f.1", "127.1", "0251.0376.0251.0376"] {
        refused(format!("CONNECT {odd}:443 HTTP/1.1\r\n\r\n"), "not dotted-quad");
    }
    // And on a kept-alive connection, after an allowed request: the second
    // one, to the metadata address, is refused on its own.
    let (origin, _) = head_echo_origin("origin");
    let dns2 = DnsServer::start(&[("ok.test", "127.0.0.1"), ("meta.test", "169.254.169.254")], &[], &[]);
    let p2 = forward_proxy(rt, &format!("to=ok.test,meta.test;to-net=127.0.0.0/8;ports=80,{}", origin.addr.port()), &dns2.addr());
    let c = p2.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    w.write_all(format!("GET http://ok.test:{}/ HTTP/1.1\r\n\r\n", origin.addr.port()).as_bytes()).unwrap();
    assert!(answer(&mut reader).1.starts_with("origin\n"));
    w.write_all(b"GET http://meta.test/latest/meta-data/ HTTP/1.1\r\n\r\n").unwrap();
    let (status, body) = answer(&mut reader);
    assert!(status.starts_with("HTTP/1.1 403") && body.contains("resolves to 169.254.169.254"), "{status} {body}");
}

pub fn refusals_explain_themselves_and_every_decision_is_logged(rt: Runtime) {
    let (origin, _) = head_echo_origin("origin");
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("denied.test", "127.0.0.1")], &[], &[]);
    let route = format!("127.0.0.1:0=forward;to=allowed.test;to-net=127.0.0.0/8;ports={port}");
    let args = ["--route", route.as_str(), "--resolver", &dns.addr(), "--metrics", "127.0.0.1:0"];
    let (mut p, _) = Proxy::start_routes(rt, 1, &[("WASITER_LOG_FORMAT", "json")], &args);
    let ask = |request: String| {
        let mut c = p.connect();
        c.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(c);
        answer(&mut reader)
    };
    let (status, body) = ask(format!("GET http://allowed.test:{port}/ HTTP/1.1\r\n\r\n"));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.starts_with("origin\n"));
    // Each refusal: one line with the destination, the rule and the fix.
    for (target, rule, fix) in [
        (format!("denied.test:{port}"), "not-listed", "add it to to= (to=...,denied.test)"),
        ("allowed.test:1".to_string(), "port", "add 1 to ports="),
        (format!("[::1]:{port}"), "ip-literal", "to=...,::1/128"),
    ] {
        let (status, body) = ask(format!("GET http://{target}/ HTTP/1.1\r\n\r\n"));
        assert!(status.starts_with("HTTP/1.1 403"), "{target}: {status}");
        let line = body.trim_end();
        assert!(!line.contains('\n') && line.contains(&format!("{target} refused (rule {rule})")) && line.contains(fix), "{target}: {body}");
    }
    // Every decision is a JSON line an audit script can group by rule.
    let allow = record(&p.wait_for_log("the allow decision", |l| l.contains("\"event\":\"decision\"") && l.contains("\"decision\":\"allow\"")));
    assert_eq!((allow["host"].as_str(), allow["rule"].as_str()), (format!("allowed.test:{port}").as_str(), "listed"));
    for rule in ["not-listed", "port", "ip-literal"] {
        p.wait_for_log(&format!("a deny decision by {rule}"), |l| l.contains("\"decision\":\"deny\"") && l.contains(&format!("\"rule\":\"{rule}\"")));
    }
    let m = scrape(p.metrics.as_ref().unwrap());
    let count = |decision: &str, rule: &str| {
        m.iter().find(|(n, l, _)| n == "wasiter_forward_decisions_total" && l.get("decision").map(String::as_str) == Some(decision) && l.get("rule").map(String::as_str) == Some(rule)).map(|s| s.2)
    };
    assert_eq!((count("allow", "listed"), count("deny", "not-listed"), count("deny", "port"), count("deny", "ip-literal")), (Some(1.0), Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!(count("deny", "address"), Some(0.0), "every rule has its series");
}

pub fn report_mode_lets_unlisted_names_through_and_drafts_the_list(rt: Runtime) {
    let (origin, _) = head_echo_origin("origin");
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("new.test", "127.0.0.1"), ("cdn.new.test", "127.0.0.1")], &[], &[]);
    let mut p = forward_proxy(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port};report"), &dns.addr());
    let metrics = p.metrics.clone().unwrap();
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    for host in ["allowed.test", "new.test", "cdn.new.test", "new.test"] {
        w.write_all(format!("GET http://{host}:{port}/ HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        let (status, body) = answer(&mut reader);
        assert!(status.starts_with("HTTP/1.1 200") && body.starts_with("origin\n"), "{host} is let through: {status}");
    }
    // The rules that are not about names still hold.
    w.write_all(b"GET http://new.test:1/ HTTP/1.1\r\n\r\n").unwrap();
    assert!(answer(&mut reader).0.starts_with("HTTP/1.1 403"), "ports= still refuses");
    p.wait_for_log("a would-deny decision", |l| l.contains(" decision conn=") && l.contains("decision=would-deny") && l.contains("rule=not-listed") && l.contains("new.test"));
    let (code, draft, err) = curl(&[&metrics.replace("/metrics", "/allowlist")]);
    assert_eq!(code, 0, "{err}");
    assert!(draft.contains("#   new.test  2  would-deny") && draft.contains("#   allowed.test  1  listed"), "{draft}");
    let want = format!("{}=forward;to=allowed.test,cdn.new.test,new.test;to-net=127.0.0.0/8;ports={port}", p.addr);
    assert!(draft.lines().any(|l| l == want), "ready to paste:\n{draft}\nwant {want}");
    // The log has the draft each time a name joins it (the last is the
    // whole list), and natively once more on stop, with the final counts.
    let drafts: Vec<_> = p.log().into_iter().filter(|l| l.contains("allowlist-draft")).collect();
    assert_eq!(drafts.len(), 3, "one per new name: {drafts:?}");
    let last = record(drafts.last().unwrap());
    assert_eq!((last["line"].as_str(), last["names"].as_str()), (want.as_str(), "allowed.test=1 cdn.new.test=1(would-deny) new.test=1(would-deny)"));
    if rt == Runtime::Native {
        p.signal(libc::SIGTERM);
        p.wait_exit();
        let logged = record(&p.wait_for_log("the draft on stop", |l| l.contains("allowlist-draft") && l.contains("new.test=2")));
        assert_eq!((logged["line"].as_str(), logged["names"].as_str()), (want.as_str(), "allowed.test=1 cdn.new.test=1(would-deny) new.test=2(would-deny)"));
    }
}

pub fn a_websocket_upgrade_becomes_a_tunnel_to_its_destination(rt: Runtime) {
    // A destination that accepts the upgrade, then echoes: what a websocket
    // server does once its handshake is through. It keeps the head it got.
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let keep = seen.clone();
    let ws = Server::start(move |s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut out = s;
        let Some((head, _)) = read_message(&mut reader) else { return };
        *keep.lock().unwrap() = head.clone();
        if !head.to_ascii_lowercase().contains("upgrade: websocket") {
            let _ = out.write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        out.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if out.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let port = ws.addr.port();
    let dns = DnsServer::start(&[("ws.test", "127.0.0.1")], &[], &[]);
    let p = forward_proxy(rt, &format!("to=ws.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    // The first frame comes right behind the handshake, in the same write.
    w.write_all(format!("GET http://ws.test:{port}/chat HTTP/1.1\r\nHost: other.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\nfirst").as_bytes()).unwrap();
    let (head, _) = read_message(&mut reader).expect("the 101");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut got = [0u8; 5];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"first", "bytes sent with the handshake went on after it");
    for msg in [&b"hello"[..], b"world, twice as long"] {
        w.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        reader.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "the tunnel carries both ways");
    }
    let head = seen.lock().unwrap().clone();
    assert!(head.contains(&format!("Host: ws.test:{port}")) && head.contains("Upgrade: websocket") && head.to_ascii_lowercase().contains("connection: upgrade"), "{head}");
}

pub fn connections_to_a_destination_are_kept_for_the_next_request(rt: Runtime) {
    let (a, _) = head_echo_origin("origin A");
    let (b, _) = head_echo_origin("origin B");
    // An origin that closes after each answer without saying so: what a
    // server's keep-alive timeout does to a kept connection.
    let closer = Server::start(|s| {
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut out = s;
        if read_message(&mut reader).is_some() {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncloser");
        }
    });
    let (pa, pb, pc) = (a.addr.port(), b.addr.port(), closer.addr.port());
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1"), ("closer.test", "127.0.0.1")], &[], &[]);
    let p = forward_proxy(rt, &format!("to=allowed.test,other.test,closer.test;to-net=127.0.0.0/8;ports={pa},{pb},{pc}"), &dns.addr());
    let get = |host: &str, port: u16| format!("GET http://{host}:{port}/ HTTP/1.1\r\n\r\n");
    let c = p.connect();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    for (host, port, tag) in [("allowed.test", pa, "origin A"), ("other.test", pb, "origin B"), ("allowed.test", pa, "origin A"), ("allowed.test", pa, "origin A")] {
        w.write_all(get(host, port).as_bytes()).unwrap();
        let (status, body) = answer(&mut reader);
        assert!(status.starts_with("HTTP/1.1 200") && body.starts_with(tag), "{host}: {status} {body}");
    }
    // Another client, the same host: the same kept connection.
    let c2 = p.connect();
    let mut reader2 = BufReader::new(c2.try_clone().unwrap());
    let mut w2 = c2;
    w2.write_all(get("allowed.test", pa).as_bytes()).unwrap();
    assert!(answer(&mut reader2).1.starts_with("origin A"));
    assert_eq!((a.accepted(), b.accepted()), (1, 1), "one connection per destination for five requests");
    // The closer's kept connection is found closed, and the next request
    // dials anew instead of failing.
    for _ in 0..3 {
        w.write_all(get("closer.test", pc).as_bytes()).unwrap();
        let (status, body) = answer(&mut reader);
        assert!(status.starts_with("HTTP/1.1 200") && body == "closer", "{status} {body}");
        thread::sleep(Duration::from_millis(100)); // its close arrives
    }
    assert_eq!(closer.accepted(), 3);
}
