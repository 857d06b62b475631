//! SOCKS5 on the forward route's port, with real clients (curl's
//! --socks5-hostname and --socks5, ALL_PROXY, ncat as an ssh-style
//! ProxyCommand) and by hand where a test must say exactly what is sent:
//! the same policy, logs and name binding as the HTTP front, and the RFC's
//! reply codes for every refusal.

use super::*;
use std::sync::atomic::Ordering;

/// A raw SOCKS5 client: the greeting (no login), then `request`; the
/// method answer, and whatever the proxy sent after the request until it
/// closed or `want` bytes came.
fn socks_ask(p: &Proxy, request: &[u8], want: usize) -> (Vec<u8>, TcpStream) {
    let mut c = p.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [5, 0], "no login asked");
    c.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < want {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, c)
}

/// A CONNECT request for a name, an IPv4 or an IPv6 address.
fn to_name(name: &str, port: u16) -> Vec<u8> {
    [&[5, 1, 0, 3, name.len() as u8][..], name.as_bytes(), &port.to_be_bytes()].concat()
}

fn to_ip(ip: &str, port: u16) -> Vec<u8> {
    match ip.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => [&[5, 1, 0, 1][..], &a.octets(), &port.to_be_bytes()].concat(),
        std::net::IpAddr::V6(a) => [&[5, 1, 0, 4][..], &a.octets(), &port.to_be_bytes()].concat(),
    }
}

/// The reply code the proxy gave to `request` (it closes after a refusal).
fn rep(p: &Proxy, request: &[u8]) -> u8 {
    let (got, _) = socks_ask(p, request, usize::MAX);
    assert!(got.len() == 10 && got[0] == 5, "a SOCKS5 reply: {got:?}");
    got[1]
}

pub fn socks5_and_http_clients_share_one_port(rt: Runtime) {
    let certs = Certs::new(&["name.test"]);
    let tls = nginx_tls(&certs, "name.test", false, "tls by name");
    let web = nginx(&[("index.html", b"plain by name\n")]);
    // A server that speaks first, as sshd does: the client reads its banner.
    let banner = Server::start(|mut s| {
        let _ = s.write_all(b"SSH-2.0-wasiter-test\r\n");
        let mut buf = [0u8; 64];
        while let Ok(1..) = s.read(&mut buf) {}
    });
    let dns = DnsServer::start(&[("name.test", "127.0.0.1"), ("web.test", "127.0.0.1"), ("ssh.test", "127.0.0.1")], &[], &[]);
    let opts = format!("to=name.test,web.test,ssh.test,127.0.0.1;to-net=127.0.0.0/8;ports={},{},{};opaque={}", tls.port, web.port, banner.addr.port(), banner.addr.port());
    let mut p = forward(rt, &opts, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let ca = certs.ca();
    // socks5h: the proxy resolves the name; TLS end to end through the tunnel.
    let url = format!("https://name.test:{}/", tls.port);
    let (code, body, err) = curl(&["--socks5-hostname", &p.addr.to_string(), "--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!((code, body.as_str()), (0, "tls by name\n"), "curl --socks5-hostname: {err}");
    dns.queries_with(&["query name.test A udp"]);
    // ALL_PROXY=socks5h://, as tools that read it use it; and an HTTP client
    // on the same port.
    let web_url = format!("http://web.test:{}/index.html", web.port);
    let out = Command::new("curl").args(["-sS", "--max-time", "10", &web_url]).env("ALL_PROXY", format!("socks5h://{}", p.addr)).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "plain by name\n", "ALL_PROXY: {}", String::from_utf8_lossy(&out.stderr));
    let (code, body, err) = curl(&["-x", &format!("http://{}", p.addr), &web_url]);
    assert_eq!((code, body.as_str()), (0, "plain by name\n"), "HTTP on the same port: {err}");
    // socks5 (the client resolves): an address, allowed because to= names it.
    let (code, body, err) = curl(&["--socks5", &p.addr.to_string(), &format!("http://127.0.0.1:{}/index.html", web.port)]);
    assert_eq!((code, body.as_str()), (0, "plain by name\n"), "curl --socks5: {err}");
    // ncat as an ssh ProxyCommand would run it: the server's banner comes back.
    let out = Command::new("ncat")
        .args(["--proxy", &p.addr.to_string(), "--proxy-type", "socks5", "--proxy-dns", "remote", "-w", "5", "ssh.test", &banner.addr.port().to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ncat (Debian's ncat package; scripts/setup --peers installs it)");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SSH-2.0-wasiter-test"), "ncat through SOCKS5: {:?} {}", out.stdout, String::from_utf8_lossy(&out.stderr));
    // The same decision lines and metrics as the HTTP front's.
    let line = record(&p.wait_for_log("the SOCKS5 tunnel's decision", |l| l.contains(" decision ") && l.contains(&format!("host=name.test:{}", tls.port))));
    assert_eq!((line["decision"].as_str(), line["rule"].as_str()), ("allow", "listed"));
    let m = scrape(p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_forward_requests_total", Some(("host", "web.test"))), 3.0, "one SOCKS5 tunnel and the request read inside it, one HTTP");
    assert_eq!(sample(&m, "wasiter_forward_requests_total", Some(("host", "name.test"))), 1.0);
}

pub fn socks5_refusals_carry_the_rfc_codes(rt: Runtime) {
    if !sealed(rt, "socks5_refusals_carry_the_rfc_codes") {
        return;
    }
    // Only loopback here: prove it, so that a failure below cannot reach out.
    assert!(std::net::TcpStream::connect_timeout(&"10.1.2.3:80".parse().unwrap(), Duration::from_secs(1)).is_err());
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let closed = free_port();
    let dns = DnsServer::start(&[("ok.test", "127.0.0.1"), ("meta.test", "169.254.169.254"), ("private.test", "10.1.2.3"), ("nat64.test", "64:ff9b::a9fe:a9fe")], &[], &[]);
    let p = forward(rt, &format!("to=ok.test,meta.test,private.test,nat64.test,nowhere.test;to-net=127.0.0.0/8;ports={port},{closed};opaque={port}"), &dns.addr(), &[]);
    // Not allowed by the ruleset (2): names, ports, addresses and what
    // the names resolve to, in every form.
    for (what, request) in [
        ("an unlisted name", to_name("evil.test", port)),
        ("a port not in ports=", to_name("ok.test", port + 1)),
        ("a name that resolves to cloud metadata", to_name("meta.test", port)),
        ("a name that resolves to a private network", to_name("private.test", port)),
        ("a name that resolves to NAT64 of metadata", to_name("nat64.test", port)),
        ("an IPv4 address no rule names", to_ip("10.1.2.3", port)),
        ("metadata's address", to_ip("169.254.169.254", port)),
        ("an IPv4-mapped IPv6 address", to_ip("::ffff:10.0.0.1", port)),
        ("NAT64 of metadata", to_ip("64:ff9b::a9fe:a9fe", port)),
        ("an address as a name", to_name("10.1.2.3", port)),
        ("a number that reads as an address", to_name("2130706433", port)),
        ("an address in hex", to_name("0x7f.1", port)),
    ] {
        assert_eq!(rep(&p, &request), 2, "{what}");
    }
    assert_eq!(rep(&p, &to_name("nowhere.test", port)), 4, "NXDOMAIN: host unreachable");
    assert_eq!(rep(&p, &to_name("ok.test", closed)), 5, "nothing listens: connection refused");
    assert_eq!(rep(&p, &to_name("evil.test\0.ok.test", port)), 4, "a name with a NUL is no host");
    assert_eq!(rep(&p, &[5, 2, 0, 3, 7, b'o', b'k', b'.', b't', b'e', b's', b't', 0, 80]), 7, "BIND: command not supported");
    assert_eq!(rep(&p, &[5, 3, 0, 1, 127, 0, 0, 1, 0, 53]), 7, "UDP ASSOCIATE: command not supported");
    assert_eq!(rep(&p, &[5, 1, 0, 9, 127, 0, 0, 1, 0, 80]), 8, "address type not supported");
    // SOCKS4 gets SOCKS4's refusal; a greeting offering no method, a close.
    let mut c = p.connect();
    c.write_all(&[4, 1, 0, 80, 127, 0, 0, 1, 0]).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    assert_eq!(answer, [0, 91, 0, 0, 0, 0, 0, 0], "SOCKS4: request rejected");
    let mut c = p.connect();
    c.write_all(&[5, 0]).unwrap();
    assert!(is_closed(&mut c), "a greeting with no method is closed");
    // A DNS server that never answers: TTL expired (6), as HTTP's 504.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let quiet = forward(rt, &format!("to=*;to-net=127.0.0.0/8;ports={port}"), &silent.local_addr().unwrap().to_string(), &["--dns-timeout", "200ms"]);
    assert_eq!(rep(&quiet, &to_name("quiet.test", port)), 6, "no DNS answer in time");
    assert_eq!(got.load(Ordering::SeqCst) + dest.accepted(), 0, "nothing refused reached the destination");
    // A slow client holds no one up: half a greeting waits, others pass.
    let mut slow = p.connect();
    slow.write_all(&[5]).unwrap();
    let (reply, c) = socks_ask(&p, &[to_name("ok.test", port), b"ping".to_vec()].concat(), 10);
    assert_eq!(reply[..2], [5, 0], "allowed: succeeded");
    assert_eq!(&reply[3..8], &[1, 127, 0, 0, 1], "BND.ADDR: where the proxy connected from");
    let t = Instant::now();
    while got.load(Ordering::SeqCst) < 4 && t.elapsed() < PATIENCE {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got.load(Ordering::SeqCst), 4, "the bytes after the request went on");
    drop(c.shutdown(Shutdown::Both));
    let log = p.log();
    for reason in ["forbidden", "dns-failed", "connect-failed", "bad-socks"] {
        assert!(log.iter().any(|l| l.contains(&format!("reason={reason}"))), "a close with reason={reason}:\n{}", log.join("\n"));
    }
    assert!(log.iter().any(|l| l.contains("reason=bad-socks") && l.contains("UDP ASSOCIATE is not served")), "each malformed or unserved request says why");
    assert!(log.iter().any(|l| l.contains("reason=bad-socks") && l.contains("SOCKS4 is not served")));
    drop(slow);
}

pub fn socks5_login_is_checked_and_never_logged(rt: Runtime) {
    let web = nginx(&[("index.html", b"logged in\n")]);
    let p = forward(rt, &format!("to=*,127.0.0.1;ports={};auth=dev:s3cret", web.port), "127.0.0.1:1", &[]);
    let url = format!("http://127.0.0.1:{}/", web.port);
    let (code, body, err) = curl(&["--proxy", &format!("socks5h://dev:s3cret@{}", p.addr), &url]);
    assert_eq!((code, body.as_str()), (0, "logged in\n"), "curl logs in over SOCKS5: {err}");
    let (code, _, _) = curl(&["--proxy", &format!("socks5h://dev:wrong@{}", p.addr), &url]);
    assert_ne!(code, 0, "a wrong password");
    let (code, _, _) = curl(&["--proxy", &format!("socks5h://{}", p.addr), &url]);
    assert_ne!(code, 0, "no login");
    // By hand: no acceptable method (FF) for a client that offers none but
    // "no login"; a wrong password gets status 1, then the close.
    let mut c = p.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [5, 0xff]);
    assert!(is_closed(&mut c));
    let mut c = p.connect();
    c.write_all(&[5, 2, 0, 2]).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [5, 2], "a login asked");
    c.write_all(&[&[1, 3][..], b"dev", &[6], b"s3cres"].concat()).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [1, 1], "refused");
    assert!(is_closed(&mut c));
    // HTTP's Basic login still works on the same port.
    let (code, body, err) = curl(&["-x", &format!("http://dev:s3cret@{}", p.addr), &url]);
    assert_eq!((code, body.as_str()), (0, "logged in\n"), "{err}");
    eventually("four refused logins, each logged", || p.log().iter().filter(|l| l.contains("reason=proxy-auth")).count() == 4);
    assert!(!p.log().iter().any(|l| l.contains("s3cre")), "the login is never logged");
}

pub fn socks5_tunnels_are_bound_to_the_name_asked(rt: Runtime) {
    let (dest, got) = counting_server();
    let port = dest.addr.port();
    let dns = DnsServer::start(&[("allowed.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=allowed.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr(), &[]);
    // curl's --connect-to makes the SOCKS5 name allowed.test while its
    // ClientHello names other.test: domain fronting, as a user would try it.
    let fronted = format!("other.test:{port}:allowed.test:{port}");
    let (code, _, err) = curl(&["--socks5-hostname", &p.addr.to_string(), "--connect-to", &fronted, "-k", &format!("https://other.test:{port}/")]);
    assert_ne!(code, 0, "the fronted handshake must fail: {err}");
    let close = closed_with(&mut p, "sni-mismatch");
    assert!(close["error"].contains("names other.test") && close["error"].contains(&format!("allowed.test:{port}")), "both names: {close:?}");
    // By hand: the success reply, then a fatal unrecognized_name alert.
    let hello = tls_records(&client_hello(Some("OTHER.test."), &["http/1.1"], 0), 100);
    let (answer, _) = socks_ask(&p, &[to_name("allowed.test", port), hello].concat(), usize::MAX);
    assert_eq!(answer[..2], [5, 0]);
    assert_eq!(answer[10..], [21, 3, 1, 0, 2, 2, 112], "a fatal unrecognized_name alert");
    // A plain request in the tunnel must name its host too.
    let (answer, _) = socks_ask(&p, &[to_name("allowed.test", port), b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n".to_vec()].concat(), usize::MAX);
    assert!(String::from_utf8_lossy(&answer[10..]).starts_with("HTTP/1.1 403 "), "{answer:?}");
    assert_eq!(got.load(Ordering::SeqCst), 0, "no byte of a refused tunnel reached the destination");
    // The right name passes.
    let hello = tls_records(&client_hello(Some("allowed.test"), &[], 0), 1 << 14);
    let (answer, _c) = socks_ask(&p, &[to_name("allowed.test", port), hello.clone()].concat(), 10);
    assert_eq!(answer[..2], [5, 0]);
    eventually("the ClientHello reaches the destination", || got.load(Ordering::SeqCst) == hello.len());
}

pub fn ssh_goes_through_socks5_as_its_proxy_command(rt: Runtime) {
    // A real SSH-2 server (tests/ssh_server.py, paramiko: no system sshd)
    // that lets one key in, and OpenSSH's client with ncat as its
    // ProxyCommand (`--proxy-dns remote`: the proxy resolves ssh.test).
    let dir = TempDir::new("ssh");
    let key = dir.path().join("user_key");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&key).output().expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_server.py")).arg(port.to_string()).arg(dir.path().join("user_key.pub"));
    let _server = spawn_daemon(cmd, port, TempDir::new("ssh-server"), "tests/ssh_server.py (paramiko; scripts/setup --peers installs it)");
    let dns = DnsServer::start(&[("ssh.test", "127.0.0.1"), ("other.test", "127.0.0.1")], &[], &[]);
    let mut p = forward(rt, &format!("to=ssh.test;to-net=127.0.0.0/8;ports={port};opaque={port}"), &dns.addr(), &[]);
    let ssh = |host: &str| {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-i"])
            .arg(&key)
            .args(["-o", &format!("ProxyCommand=ncat --proxy {} --proxy-type socks5 --proxy-dns remote %h %p", p.addr), "-p", &port.to_string()])
            .arg(format!("dev@{host}"))
            .args(["echo", "through", "socks5"])
            .output()
            .expect("ssh (openssh-client)")
    };
    let out = ssh("ssh.test");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through socks5\n", "ssh through the proxy: {}", String::from_utf8_lossy(&out.stderr));
    let refused = ssh("other.test");
    assert!(!refused.status.success() && refused.stdout.is_empty(), "a name not in to= is refused");
    // The line is written at the end of the proxy's pass, maybe after ssh has seen the refusal.
    p.wait_for_log("other.test's refusal", |l| l.contains("host=other.test:") && l.contains("decision=deny"));
}
