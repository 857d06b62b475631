//! More kinds of ends: the UDP relay (`udp:LISTEN=...`) with real peers
//! (a DNS server asked by `dig`, iperf3 `-u` both ways, socat, and small
//! std::net echo servers for the exact cases: many clients at once, a
//! 60 KiB datagram, a silent client, a full table, a server that answers
//! ICMP unreachable), and port ranges (one rule, ten listeners).

use super::*;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::Child;

/// A UDP echo server on 127.0.0.1: every datagram goes back to its sender,
/// whole. Lives as long as the test (its thread blocks in recv_from).
fn udp_echo() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    addr
}

/// A client socket on `from` (a loopback address), with the tests' patience.
fn udp_client(from: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Send `data` to `to` and wait for one datagram back.
fn ask(s: &UdpSocket, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    s.send_to(data, to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = s.recv_from(&mut buf).unwrap_or_else(|e| panic!("no answer to {} bytes through {to}: {e}", data.len()));
    assert_eq!(from, to, "the answer comes from the address the client sent to");
    buf.truncate(n);
    buf
}

/// The close line of the flow of client `client` (its address), once logged.
fn flow_close(p: &mut Proxy, client: SocketAddr) -> HashMap<String, String> {
    let pat = format!("client={client} ");
    record(&p.wait_for_log("the flow's close line", |l| l.contains(" close ") && l.contains(&pat) && l.contains("proto=udp")))
}

pub fn udp_relay_carries_dns_and_keeps_flows_apart(rt: Runtime) {
    // A real DNS server, asked by dig through the relay (UDP, as dig asks first).
    let dns = DnsServer::start(&[("svc.relay.test", "192.0.2.7")], &[], &[]);
    let echo = udp_echo();
    let routes = [format!("udp:127.0.0.1:0=127.0.0.1:{};idle=5s", dns.port), format!("udp:127.0.0.1:0={echo}")];
    let (mut p, at) = Proxy::start_routes(rt, 2, &[], &["--route", &routes[0], "--route", &routes[1], "--metrics", "127.0.0.1:0"]);
    let out = Command::new("dig").args([&format!("@{}", at[0].ip()), "-p", &at[0].port().to_string(), "+time=3", "+tries=1", "svc.relay.test", "A"]).output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("status: NOERROR") && out.contains("192.0.2.7"), "dig through the relay: {out}");
    assert!(dns.queries().iter().any(|q| q.contains("svc.relay.test") && q.contains("udp")), "the server was asked over UDP: {:?}", dns.queries());

    // Twenty clients at once, from five loopback addresses, each sending its
    // own numbered datagrams: each gets back exactly its own, in one piece.
    let relay = at[1];
    let clients: Vec<_> = (0..20)
        .map(|c| {
            thread::spawn(move || {
                let s = udp_client(&format!("127.0.0.{}", 1 + c % 5));
                for seq in 0..10 {
                    let msg = format!("client {c} datagram {seq} {}", "x".repeat(c * 50));
                    assert_eq!(ask(&s, relay, msg.as_bytes()), msg.as_bytes(), "client {c} got another's datagram");
                }
                s.local_addr().unwrap()
            })
        })
        .collect();
    let addrs: Vec<SocketAddr> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    // A datagram of 60 KiB arrives whole both ways.
    let big = pattern(60 << 10, 28);
    let s = udp_client("127.0.0.1");
    assert_eq!(ask(&s, relay, &big), big, "60 KiB, one datagram, whole");
    // socat, as users run it, is a client like any other.
    let mut socat = Command::new("socat")
        .args(["-t", "2", "-", &format!("UDP4:{relay}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("socat (scripts/setup --peers installs it)");
    socat.stdin.take().unwrap().write_all(b"hello from socat\n").unwrap();
    let out = socat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from socat\n");

    // One flow per client address, each logged with the upstream it got.
    let opens: Vec<HashMap<String, String>> = p.log().iter().filter(|l| l.contains(" open ") && l.contains("proto=udp")).map(|l| record(l)).collect();
    for a in &addrs {
        assert_eq!(opens.iter().filter(|o| o["client"] == a.to_string()).count(), 1, "one flow for {a}; log:\n{}", p.log().join("\n"));
    }
    assert!(opens.iter().filter(|o| o["route"] == format!("udp:{relay}")).all(|o| o["upstream"] == echo.to_string()));
    // The metrics count the datagrams (20 x 10, the big one, socat's).
    let (_, body, _) = curl(&["-s", p.metrics.as_deref().unwrap()]);
    let line = format!("wasiter_udp_datagrams_total{{route=\"udp:{relay}\",direction=\"to_client\"}} ");
    let n: u64 = body.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line} in:\n{body}"));
    assert!(n >= 202, "{n} datagrams to clients counted");
    assert!(body.contains(&format!("wasiter_connections_total{{route=\"udp:{relay}\"}} 22")), "22 flows counted:\n{body}");
    p.assert_alive();
}

pub fn a_silent_udp_flow_expires_and_a_full_table_drops_the_idlest(rt: Runtime) {
    let echo = udp_echo();
    let mut p = Proxy::start(rt, &format!("{echo};idle=1s;flows=2"), &[("LOCAL", "udp:127.0.0.1:0"), ("WASITER_DUMP", "text"), ("WASITER_TRACE", "1")], &[]);
    let relay = p.addr;
    let a = udp_client("127.0.0.1");
    assert_eq!(ask(&a, relay, b"a"), b"a");
    // The dump shows each datagram, both ways, as a connection's bytes; the
    // trace the socket calls that carried them.
    let dumped = |dir: &str| p.log().iter().any(|l| l.contains(" dump ") && l.contains(&format!("dir={dir}")) && l.contains("len=1"));
    eventually("the dump of both datagrams", || dumped("to_upstream") && dumped("to_client"));
    let calls = p.log().join("\n");
    assert!(calls.contains("recvfrom(fd=") || calls.contains("sock_recv_from(fd="), "the trace shows the listen socket's reads");
    // Silent for idle=: closed, with what it carried.
    let closed = flow_close(&mut p, a.local_addr().unwrap());
    assert_eq!((closed["reason"].as_str(), closed["datagrams_to_upstream"].as_str(), closed["datagrams_to_client"].as_str()), ("idle-timeout", "1", "1"));
    // It speaks again: a new flow, and it works.
    assert_eq!(ask(&a, relay, b"again"), b"again");
    // Two flows fill the table (a's new one and b's); c's makes a, the
    // idlest, go, and c is served.
    let (b, c) = (udp_client("127.0.0.2"), udp_client("127.0.0.3"));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(ask(&b, relay, b"b"), b"b");
    assert_eq!(ask(&c, relay, b"c"), b"c");
    // (The close line is written at the end of the proxy's pass, which c's answer can beat.)
    let a_at = format!("client={} ", a.local_addr().unwrap());
    p.wait_for_log("a's second flow evicted", |l| l.contains(" close ") && l.contains(&a_at) && l.contains("reason=evicted"));
    let closes = p.log().iter().filter(|l| l.contains(" close ") && l.contains(&a_at)).count();
    assert_eq!(closes, 2, "a's first flow went idle, its second was evicted; log:\n{}", p.log().join("\n"));
    assert!(!p.log().iter().any(|l| l.contains(" close ") && l.contains(&format!("client={} ", b.local_addr().unwrap()))), "b's flow stays");
    p.assert_alive();
}

pub fn an_unreachable_udp_server_is_marked_down_and_skipped(rt: Runtime) {
    let echo = udp_echo();
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed again: ICMP port unreachable
    let mut p = Proxy::start(rt, &format!("{dead},{echo}"), &[("LOCAL", "udp:127.0.0.1:0")], &["--fail-threshold", "1"]);
    let client = udp_client("127.0.0.1");
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    client.send_to(b"lost", p.addr).unwrap();
    let mut buf = [0u8; 64];
    assert!(client.recv_from(&mut buf).is_err(), "the first datagram went to the dead server");
    let closed = flow_close(&mut p, client.local_addr().unwrap());
    assert_eq!((closed["upstream"].as_str(), closed["reason"].as_str()), (dead.to_string().as_str(), "upstream-unreachable"));
    p.wait_for_log("the server marked down", |l| l.contains("upstream-down") && l.contains(&dead.to_string()));
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ask(&client, p.addr, b"next"), b"next", "the next datagram goes to the live server");
    p.assert_alive();
}

/// iperf3 -u through the relay at `mbit`, `reverse` or not: its JSON's
/// (datagrams, lost percent) as the receiver counted them.
fn iperf3_udp(port: u16, reverse: bool, mbit: u32) -> (u64, f64) {
    let mut cmd = Command::new("iperf3");
    cmd.args(["-c", "127.0.0.1", "-p", &port.to_string(), "-u", "-b", &format!("{mbit}M"), "-l", "1400", "-t", "2", "--json"]);
    if reverse {
        cmd.arg("-R");
    }
    let out = cmd.output().expect("iperf3 (scripts/setup --peers installs it)");
    let json = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("iperf3's JSON ({e}): {json}"));
    let sum = &v["end"]["sum"];
    assert!(sum.is_object(), "iperf3 finished: {json}");
    (sum["packets"].as_u64().unwrap_or(0), sum["lost_percent"].as_f64().unwrap_or(100.0))
}

pub fn iperf3_udp_crosses_the_relay_both_ways(rt: Runtime) {
    let server_port = free_port();
    // iperf3 talks TCP (its control connection) and UDP (its data) on one
    // port: two routes, one of each, on the same address.
    let port = free_port();
    let (tcp, udp) = (format!("127.0.0.1:{port}=127.0.0.1:{server_port}"), format!("udp:127.0.0.1:{port}=127.0.0.1:{server_port}"));
    let (mut p, _) = Proxy::start_routes(rt, 2, &[], &["--route", &tcp, "--route", &udp]);
    for reverse in [false, true] {
        // A server for this test alone (-1), ready when it says so: a
        // connect to probe it would be its client, and a server still busy
        // with the last test resets the next one's control connection.
        let mut server = Killed(Command::new("iperf3").args(["-s", "-1", "--forceflush", "-p", &server_port.to_string()]).stdout(std::process::Stdio::piped()).spawn().unwrap());
        let mut said = std::io::BufReader::new(server.0.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("Server listening") {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut said, &mut line).unwrap() > 0, "iperf3 -s exited before it listened");
        }
        let (packets, lost) = iperf3_udp(port, reverse, 20);
        let _ = server.0.wait();
        // 20 Mbit/s of 1400-byte datagrams for 2 s: about 3,600 of them.
        assert!(packets > 1000, "reverse={reverse}: {packets} datagrams arrived");
        assert!(lost < 5.0, "reverse={reverse}: {lost}% lost at 20 Mbit/s");
    }
    assert!(p.log().iter().filter(|l| l.contains(" open ") && l.contains("proto=udp")).count() >= 2, "{}", p.log().join("\n"));
    p.assert_alive();
}

/// `n` consecutive ports nothing listens on (TCP and UDP), from a random
/// start below Linux's ephemeral range; their TCP listeners, still bound.
fn free_ports(n: u16) -> (u16, Vec<TcpListener>) {
    let seed = std::process::id() as u64 ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed.wrapping_mul(7919).wrapping_add(attempt * 104_729)) % 12_000) as u16;
        let held: Vec<_> = (0..n).map_while(|k| Some((TcpListener::bind(("127.0.0.1", base + k)).ok()?, UdpSocket::bind(("127.0.0.1", base + k)).ok()?))).collect();
        if held.len() == n as usize {
            return (base, held.into_iter().map(|(t, _)| t).collect());
        }
    }
    panic!("no {n} free consecutive ports");
}

pub fn a_range_of_ten_ports_reaches_ten_servers(rt: Runtime) {
    // Ten servers on consecutive ports, each saying which it is; ten TCP
    // and ten UDP ports for the proxy after them (one block: the ports
    // are free only until bound, so no second search may find them again).
    let (up, mut held) = free_ports(30);
    let (tcp, udp) = (up + 10, up + 20);
    held.truncate(10); // the proxy's ports are free again
    let servers: Vec<Server> = held
        .into_iter()
        .zip(0..10u16)
        .map(|(l, k)| {
            Server::on(l, move |mut s| {
                let _ = s.write_all(format!("server {k}\n").as_bytes());
            })
        })
        .collect();
    let echo = udp_echo();
    let dir = TempDir::new("ranges");
    let file = dir.path().join("routes");
    let rules = |last: u16| format!("127.0.0.1:{tcp}-{}=127.0.0.1:{up}-{}\nudp:127.0.0.1:{udp}-{}={echo}\n", tcp + last, up + last, udp + last);
    std::fs::write(&file, rules(9)).unwrap();
    let args = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "100ms"];
    let (mut p, at) = Proxy::start_routes_in(rt, Some(dir.path()), 20, &[], &args);
    assert_eq!(at.iter().map(|a| a.port()).collect::<Vec<_>>(), (tcp..tcp + 10).chain(udp..udp + 10).collect::<Vec<_>>());
    let greeting = |port: u16| {
        let mut s = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        line
    };
    // Offsets kept: the k-th port reaches the k-th server; the UDP range reaches its one port.
    for k in 0..10u16 {
        assert_eq!(greeting(tcp + k), format!("server {k}\n"));
        let c = udp_client("127.0.0.1");
        assert_eq!(ask(&c, SocketAddr::from(([127, 0, 0, 1], udp + k)), format!("port {k}").as_bytes()), format!("port {k}").as_bytes());
    }
    // The rule shrinks to five ports: the other five listeners close, as a removed route's do.
    std::fs::write(&file, rules(4)).unwrap();
    let line = record(&p.wait_for_log("the reload", |l| l.contains(" reload ")));
    assert_eq!(line["closed_listeners"].split(',').count(), 10, "{line:?}");
    assert!(line["closed_listeners"].contains(&format!("udp:127.0.0.1:{}", udp + 9)), "{line:?}");
    assert_eq!(greeting(tcp + 4), "server 4\n");
    assert!(TcpStream::connect(("127.0.0.1", tcp + 5)).is_err(), "port {} closed", tcp + 5);
    drop(servers);
    p.assert_alive();
}

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP server on a Unix socket at `path` (Python's http.server), answering `body`.
fn http_on_unix_socket(path: &Path, body: &str) -> Killed {
    let script = format!(
        r#"
import http.server, socketserver, os, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {body:?}.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class Server(socketserver.UnixStreamServer):
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)
Server({path:?}, Answer).serve_forever()
"#,
        path = path.to_str().unwrap()
    );
    let child = Killed(Command::new("python3").args(["-c", &script]).stdout(std::process::Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + PATIENCE;
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(Instant::now() < deadline, "the Unix-socket server did not start");
        thread::sleep(Duration::from_millis(20));
    }
    child
}

pub fn unix_socket_ends_work_natively_and_are_refused_clearly_on_wasm(rt: Runtime) {
    let dir = TempDir::new("unix");
    let (front, back) = (dir.path().join("front.sock"), dir.path().join("back.sock"));
    let tcp = free_port();
    // A Unix socket on both sides: curl → unix:front → TCP → wasiter → unix:back → the server.
    let routes = [format!("unix:{}=127.0.0.1:{tcp};mode=0660", front.display()), format!("127.0.0.1:{tcp}=unix:{}", back.display())];
    if rt != Runtime::Native {
        // WASI has no AF_UNIX: one line at start, naming the route and why.
        let (status, _, err) = rt.run(&[], &["--route", &routes[1]]);
        assert!(!status.success(), "{err}"); // 2, where the runtime passes the code on (WASI 0.2 says only "failed")
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--route: Unix sockets (unix:/path) need the native build: WASI has no AF_UNIX"), "{err}");
        return;
    }
    let _server = http_on_unix_socket(&back, "from the unix socket\n");
    // A stale socket file where the front will listen (its process is gone): replaced.
    drop(std::os::unix::net::UnixListener::bind(&front).unwrap());
    assert!(front.exists());
    let (mut p, _) = Proxy::start_routes(rt, 2, &[], &["--route", &routes[0], "--route", &routes[1]]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&front).unwrap().permissions().mode() & 0o7777, 0o660, "mode= is the socket file's mode");
    // curl through the Unix-socket listener, and through the Unix-socket upstream.
    let (code, body, err) = curl(&["-s", "--unix-socket", front.to_str().unwrap(), "http://app/"]);
    assert_eq!((code, body.as_str()), (0, "from the unix socket\n"), "{err}");
    let (code, body, err) = curl(&["-s", &format!("http://127.0.0.1:{tcp}/")]);
    assert_eq!((code, body.as_str()), (0, "from the unix socket\n"), "{err}");
    let close = record(&p.wait_for_log("the Unix client's close line", |l| l.contains(" close ") && l.contains("route=unix:")));
    // The server answers and closes while curl, with the whole body, closes
    // too: whichever FIN the proxy reads first names the end.
    assert_eq!(close["client"].as_str(), "unix", "a Unix peer is shown as unix: {close:?}");
    assert!(matches!(close["reason"].as_str(), "upstream-closed" | "client-closed"), "{close:?}");
    // A second proxy may not take a socket that still answers, nor a file that is not a socket.
    let (status, _, err) = Runtime::Native.run(&[], &["--route", &format!("unix:{}=127.0.0.1:1", front.display())]);
    assert!(status.code() == Some(1) && err.contains("another process listens on"), "{err}");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "data").unwrap();
    let (status, _, err) = Runtime::Native.run(&[], &["--route", &format!("unix:{}=127.0.0.1:1", plain.display())]);
    assert!(status.code() == Some(1) && err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "data", "left alone");
    // Stopped, it removes its socket file.
    p.signal(libc::SIGTERM);
    assert!(p.wait_exit().success());
    assert!(!front.exists(), "the socket file goes with the proxy");
}
