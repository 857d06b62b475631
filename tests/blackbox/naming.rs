//! One port, many services: routes picked by TLS server name (SNI), ALPN and
//! HTTP Host, with real TLS servers (nginx, certificates made by openssl),
//! real clients (curl, openssl s_client), and hand-made ClientHellos for the
//! splits, the garbage and the oversized.

use super::*;

/// A fixed port on 127.0.0.1 (routes share a port only when it is not 0).
fn shared_port() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// `--route LISTEN=UPSTREAM;OPTIONS` for each (upstream, options).
fn routes(listen: &str, each: &[(&str, &str)], extra: &str) -> Vec<String> {
    each.iter().map(|(up, opts)| format!("{listen}={up}{}{opts}{extra}", if opts.is_empty() { "" } else { ";" })).collect()
}

fn start(rt: Runtime, routes: &[String], more: &[&str]) -> Proxy {
    let mut args: Vec<&str> = routes.iter().flat_map(|r| ["--route", r.as_str()]).collect();
    args.extend_from_slice(more);
    Proxy::start_routes(rt, 1, &[], &args).0
}

/// curl over TLS to `name` through `port`, trusting only the test CA: the
/// answer's body, and curl's exit code and error.
fn https(certs: &Certs, name: &str, port: u16, more: &[&str]) -> (i32, String, String) {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}/");
    let ca = certs.ca();
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(more);
    args.push(&url);
    curl(&args)
}

fn opens(p: &Proxy) -> Vec<std::collections::HashMap<String, String>> {
    p.log().iter().filter(|l| l.contains(" open ")).map(|l| record(l)).collect()
}

pub fn tls_clients_reach_the_server_of_the_name_they_ask_for(rt: Runtime) {
    let certs = Certs::new(&["app.test", "api.test", "*.wild.test", "default.test"]);
    let app = nginx_tls(&certs, "app.test", false, "app");
    let api = nginx_tls(&certs, "api.test", false, "api");
    let wild = nginx_tls(&certs, "*.wild.test", false, "wild");
    let default = nginx_tls(&certs, "default.test", false, "default");
    let listen = shared_port();
    let up = |d: &Daemon| format!("127.0.0.1:{}", d.port);
    let (a, b, w, d) = (up(&app), up(&api), up(&wild), up(&default));
    let r = routes(&listen, &[(&a, "sni=app.test"), (&b, "sni=api.test"), (&w, "sni=*.wild.test"), (&d, "")], "");
    let p = start(rt, &r, &["--metrics", "127.0.0.1:0"]);
    let port = p.addr.port();
    // Verified against the test CA: the certificate each client saw is its server's.
    assert_eq!(https(&certs, "app.test", port, &[]), (0, "app\n".into(), String::new()));
    assert_eq!(https(&certs, "API.test", port, &[]).1, "api\n", "names compare without case");
    assert_eq!(https(&certs, "x.wild.test", port, &[]).1, "wild\n");
    // *.wild.test matches one label or more (the certificate covers one: -k).
    assert_eq!(https(&certs, "a.b.wild.test", port, &["-k"]).1, "wild\n");
    assert_eq!(https(&certs, "wild.test", port, &["-k"]).1, "default\n", "the wildcard needs a label before it");
    assert_eq!(https(&certs, "unknown.test", port, &["-k"]).1, "default\n", "no match: the default");
    // Logged with what was asked and which route took it.
    let opened = opens(&p);
    let app_open = opened.iter().find(|o| o.get("sni").map(String::as_str) == Some("app.test")).expect("an open line with sni=app.test");
    assert_eq!((app_open["backend"].as_str(), app_open["upstream"].as_str()), ("sni=app.test", a.as_str()));
    assert!(app_open["alpn"].contains("http/1.1"), "curl's ALPN offer is logged: {app_open:?}");
    let deep = opened.iter().find(|o| o["sni"] == "a.b.wild.test").expect("the wildcard's open line");
    assert_eq!(deep["backend"], "sni=*.wild.test");
    // Metrics: each route under its backend label; the port's own line.
    let m = scrape(p.metrics.as_ref().unwrap());
    let count = |backend: &str| {
        m.iter().find(|(n, l, _)| n == "wasiter_connections_total" && l.get("backend").map(String::as_str) == Some(backend)).map(|s| s.2)
    };
    assert_eq!((count("sni=app.test"), count("sni=api.test"), count("sni=*.wild.test"), count("default")), (Some(1.0), Some(1.0), Some(2.0), Some(2.0)));
    let door = m.iter().find(|(n, l, _)| n == "wasiter_connections_total" && !l.contains_key("backend")).expect("the port's own line");
    assert_eq!(door.2, 6.0, "every client counted once at the port");
}

pub fn an_unknown_name_gets_a_tls_alert_and_never_reaches_an_upstream(rt: Runtime) {
    let only = Server::echo();
    let r = routes(&shared_port(), &[(&only.remote(), "sni=only.test")], "");
    let mut p = start(rt, &r, &[]);
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &p.addr.to_string(), "-servername", "nope.test"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unrecognized name") && text.contains("alert number 112"), "openssl s_client said:\n{text}");
    let line = p.wait_for_log("no-route close", |l| l.contains("reason=no-route"));
    let close = record(&line);
    assert_eq!((close["sni"].as_str(), close["upstream"].as_str()), ("nope.test", "-"), "{close:?}");
    assert_eq!(only.accepted(), 0, "the upstream never saw it");
    p.assert_alive();
}

pub fn alpn_sends_h2_and_http1_clients_to_their_own_servers(rt: Runtime) {
    let certs = Certs::new(&["app.test"]);
    let h2 = nginx_tls(&certs, "app.test", true, "h2 server");
    let h1 = nginx_tls(&certs, "app.test", false, "http/1.1 server");
    let (u2, u1) = (format!("127.0.0.1:{}", h2.port), format!("127.0.0.1:{}", h1.port));
    let r = routes(&shared_port(), &[(&u1, "sni=app.test;alpn=http/1.1"), (&u2, "sni=app.test;alpn=h2")], "");
    let p = start(rt, &r, &[]);
    let port = p.addr.port();
    // curl --http2 offers h2 first, then http/1.1: its first choice wins.
    let (code, body, err) = https(&certs, "app.test", port, &["--http2", "-w", " %{http_version}"]);
    assert_eq!((code, body.as_str()), (0, "h2 server\n 2"), "{err}");
    let (code, body, err) = https(&certs, "app.test", port, &["--http1.1", "-w", " %{http_version}"]);
    assert_eq!((code, body.as_str()), (0, "http/1.1 server\n 1.1"), "{err}");
}

pub fn plain_http_is_routed_by_its_host_header(rt: Runtime) {
    let x = nginx(&[("index.html", b"x site\n")]);
    let y = nginx(&[("index.html", b"y site\n")]);
    let (ux, uy) = (format!("127.0.0.1:{}", x.port), format!("127.0.0.1:{}", y.port));
    // From the environment, one route per line (as the README's devContainer example).
    let r = routes(&shared_port(), &[(&ux, "host=x.test"), (&uy, "host=y.test,*.y.test")], "");
    let (mut p, _) = Proxy::start_routes(rt, 1, &[("WASITER_ROUTES", &format!("\n  {}\n  {}\n", r[0], r[1]))], &[]);
    let url = format!("http://{}/", p.addr);
    let get = |host: &str| curl(&["-H", &format!("Host: {host}"), "-w", " %{http_code}", &url]);
    assert_eq!(get("x.test").1, "x site\n 200");
    assert_eq!(get("Y.TEST.:8080").1, "y site\n 200", "case, a trailing dot and the port do not count");
    assert_eq!(get("docs.y.test").1, "y site\n 200");
    let (_, body, _) = get("z.test");
    assert!(body.ends_with(" 421") && body.contains("no route for host \"z.test\""), "{body}");
    let line = p.wait_for_log("no-route close", |l| l.contains("reason=no-route"));
    assert_eq!(record(&line)["host"], "z.test");
    // Not HTTP at all, on an HTTP-routed port: closed, and why.
    let mut c = p.connect();
    c.write_all(b"\x00\x01\x02 binary\r\n\r\n").unwrap();
    assert!(is_closed(&mut c));
    let line = p.wait_for_log("bad-request close", |l| l.contains("reason=bad-request"));
    assert!(record(&line)["error"].contains("not an HTTP/1.x request"), "{line}");
    // The first request decides the connection (as HAProxy's TCP mode):
    // keep-alive requests after it go where it went, whatever they say.
    let mut c = p.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\nGET / HTTP/1.1\r\nHost: y.test\r\nConnection: close\r\n\r\n").unwrap();
    let mut both = String::new();
    c.read_to_string(&mut both).unwrap();
    assert_eq!(both.matches("x site").count(), 2, "{both}");
}

pub fn a_client_hello_in_pieces_is_reassembled_and_relayed_unchanged(rt: Runtime) {
    let (a, b) = (Server::echo(), Server::echo());
    let r = routes(&shared_port(), &[(&a.remote(), "sni=a.test"), (&b.remote(), "sni=b.test")], "");
    let p = start(rt, &r, &[]);
    // 50-byte records, sent in three writes with pauses: the name comes late.
    let hello = tls_records(&client_hello(Some("b.test"), &["h2"], 100), 50);
    let mut c = p.connect();
    let thirds = hello.len() / 3;
    for piece in [&hello[..thirds], &hello[thirds..2 * thirds], &hello[2 * thirds..]] {
        c.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(150));
    }
    c.write_all(b"and what follows").unwrap();
    let mut want = hello.clone();
    want.extend_from_slice(b"and what follows");
    assert_eq!(read_exact_n(&mut c, want.len()), want, "every byte reached b.test's server, in order");
    assert_eq!((a.accepted(), b.accepted()), (0, 1));
    // A large ClientHello (15 KiB, in 1000-byte records) still fits the peek.
    let big = tls_records(&client_hello(Some("a.test"), &[], 15 * 1024), 1000);
    let got = exchange(p.connect(), big.clone());
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the large ClientHello came back unchanged");
    assert_eq!(a.accepted(), 1);
}

pub fn silent_garbage_and_oversized_clients_are_closed_with_their_reason(rt: Runtime) {
    let only = Server::echo();
    let r = routes(&shared_port(), &[(&only.remote(), "sni=only.test")], "");
    let mut p = start(rt, &r, &["--peek-timeout", "300ms"]);
    let reason_of = |p: &mut Proxy, reason: &str| record(&p.wait_for_log(reason, |l| l.contains(&format!("reason={reason}"))));
    // Silent (a server-speaks-first protocol on a name-routed port).
    let t = Instant::now();
    let mut silent = p.connect();
    assert!(is_closed(&mut silent));
    assert!(t.elapsed() >= Duration::from_millis(250), "not before the peek timeout");
    assert!(reason_of(&mut p, "peek-timeout")["error"].contains("0 bytes read"));
    // Garbage (closed), and a TLS record that is not a ClientHello (a
    // fatal decode_error alert, then closed).
    for (bytes, why, answer) in [(&b"\x00\x01\x02garbage"[..], "not TLS", &[][..]), (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not a ClientHello", &[21, 3, 1, 0, 2, 2, 50])] {
        let mut c = p.connect();
        c.write_all(bytes).unwrap();
        assert_eq!(read_exact_n(&mut c, answer.len()), answer, "{why}");
        assert!(is_closed(&mut c));
        p.wait_for_log(why, |l| l.contains("reason=bad-client-hello") && l.contains(why));
    }
    // A 64 KiB "ClientHello": refused from its first bytes, not buffered.
    let huge = tls_records(&client_hello(Some("only.test"), &[], 60_000), 16 * 1024);
    let mut c = p.connect();
    let _ = c.write_all(&huge); // the proxy may close before it is all written
    assert!(is_closed(&mut c));
    assert!(reason_of(&mut p, "peek-too-large")["error"].contains("at most 16384"));
    assert_eq!(only.accepted(), 0, "none of them reached the upstream");
    // And the port still serves a good client.
    let hello = tls_records(&client_hello(Some("only.test"), &[], 0), 1 << 14);
    assert_eq!(exchange(p.connect(), hello.clone()), hello);
    p.assert_alive();
}

pub fn accept_proxy_comes_first_then_the_peek(rt: Runtime) {
    let (a, b) = (Server::echo(), Server::echo());
    let r = routes(&shared_port(), &[(&a.remote(), "sni=a.test"), (&b.remote(), "sni=b.test")], ";accept-proxy");
    let mut p = start(rt, &r, &[]);
    let lb = haproxy_sending(p.addr, "send-proxy-v2");
    let mut c = connect(format!("127.0.0.1:{}", lb.port).parse().unwrap());
    let hello = tls_records(&client_hello(Some("b.test"), &[], 0), 1 << 14);
    c.write_all(&hello).unwrap();
    assert_eq!(read_exact_n(&mut c, hello.len()), hello, "relayed to b.test's server without the PROXY header");
    assert_eq!((a.accepted(), b.accepted()), (0, 1));
    let line = p.wait_for_log("open through the LB", |l| l.contains(" open ") && l.contains("sni=b.test"));
    let open = record(&line);
    assert_eq!(open["client"], c.local_addr().unwrap().to_string(), "the client the header told of");
}

pub fn the_name_asked_is_in_json_logs_the_dump_and_the_trace(rt: Runtime) {
    let (a, b) = (Server::echo(), Server::echo());
    let r = routes(&shared_port(), &[(&a.remote(), "sni=a.test"), (&b.remote(), "")], "");
    let mut args: Vec<&str> = r.iter().flat_map(|r| ["--route", r.as_str()]).collect();
    args.extend_from_slice(&["--dump", "hex", "--trace"]);
    let (mut p, _) = Proxy::start_routes(rt, 1, &[("WASITER_LOG_FORMAT", "json")], &args);
    let hello = tls_records(&client_hello(Some("A.test"), &["h2"], 0), 1 << 14);
    assert_eq!(exchange(p.connect(), hello.clone()), hello);
    let line = p.wait_for_log("JSON close", |l| l.contains("\"event\":\"close\""));
    let close = record(&line);
    assert_eq!((close["sni"].as_str(), close["alpn"].as_str(), close["backend"].as_str()), ("a.test", "h2", "sni=a.test"), "{line}");
    let peeked = record(&p.wait_for_log("the peeked dump", |l| l.contains("\"peeked\"")));
    assert_eq!((peeked["peeked"].as_str(), peeked["sni"].as_str()), (hello.len().to_string().as_str(), "a.test"));
    let first = p.log().into_iter().find(|l| l.contains("\"event\":\"dump\"") && l.contains("\"hex\"")).expect("a hex dump line");
    assert!(record(&first)["hex"].starts_with("16 03 01"), "the ClientHello's bytes, as relayed: {first}");
    let pick = record(&p.wait_for_log("the pick in the trace", |l| l.contains("pick(conn=")));
    assert_eq!((pick["call"].as_str(), pick["result"].as_str()), ("pick(conn=1, sni=a.test)", "sni=a.test"));
}
