//! Ask mode's admin side, driven as a person's tools drive it: the JSON API
//! (a held request listed, answered, released; the token and the Origin
//! checked) and the `wasiter ask` CLI, run under the same runtime as the proxy.

use super::*;

/// One request to the admin API: (status, body).
fn api(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        request.push_str(&format!("{h}\r\n"));
    }
    request.push_str(&format!("\r\n{body}"));
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The question waiting for `way` to `host`, once the API lists it.
fn waiting(addr: &str, bearer: &str, way: &str, host: &str) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = api(addr, "GET", "/api/questions", &[bearer], "");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let found = list["questions"].as_array().unwrap().iter().find(|q| q["way"] == way && q["host"] == host && q["clients"].as_u64() > Some(0)).cloned();
        if let Some(q) = found {
            return q;
        }
        assert!(Instant::now() < deadline, "no {way} question for {host} listed: {body}");
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn the_admin_api_and_the_cli_answer_a_held_request(rt: Runtime) {
    let origin = Server::start(|mut s| {
        let mut head = [0u8; 1024];
        let _ = s.read(&mut head);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
    });
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("held.test", "127.0.0.1"), ("tunnel.test", "127.0.0.1")], &[], &[]);
    let dir = TempDir::new("ask-admin");
    let token_file = dir.path().join("admin-token");
    let token_file = token_file.to_str().unwrap();
    let route = format!("127.0.0.1:0=forward;to=allowed.test;to-net=127.0.0.0/8;ports={port};ask");
    let dns_addr = dns.addr();
    // The same address for both: one listener serves the metrics and the admin pages.
    let args = ["--route", &route, "--resolver", &dns_addr, "--admin", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--admin-token", token_file];
    let (mut p, _) = Proxy::start_routes_in(rt, Some(dir.path()), 1, &[], &args);
    let start = record(&p.log().into_iter().find(|l| l.contains(" start listen=")).unwrap());
    let admin = start["admin"].trim_start_matches("http://").trim_end_matches('/').to_string();
    assert_eq!(start["metrics"], format!("http://{admin}/metrics"), "one listener for both");
    let token = std::fs::read_to_string(token_file).expect("the token file is made at start");
    let token = token.trim();
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    let made = p.wait_for_log("the admin line", |l| l.contains(" admin page="));
    assert!(made.contains("made=now") && !made.contains(token), "where the token is, never the token: {made}");
    let bearer = format!("Authorization: Bearer {token}");

    // A plain request to a name to= does not list is held...
    let mut client = p.connect();
    client.write_all(format!("GET http://held.test:{port}/ HTTP/1.1\r\nHost: held.test:{port}\r\n\r\n").as_bytes()).unwrap();
    let q = waiting(&admin, &bearer, "http", "held.test");
    assert_eq!((q["port"].as_u64(), q["method"].as_str(), q["path"].as_str()), (Some(u64::from(port)), Some("GET"), Some("/")), "{q}");
    let id = q["id"].as_u64().unwrap();
    // ...and the API answers only who shows the token, from no foreign page.
    let body = format!("{{\"id\":{id},\"answer\":\"once\",\"by\":\"test\"}}");
    let (status, text) = api(&admin, "GET", "/api/questions", &[], "");
    assert_eq!(status, 401, "{text}");
    let (status, _) = api(&admin, "POST", "/api/answer", &["Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000"], &body);
    assert_eq!(status, 401, "a wrong token");
    let (status, _) = api(&admin, "POST", "/api/answer", &[&bearer, "Origin: http://evil.test"], &body);
    assert_eq!(status, 403, "a foreign Origin");
    let refused = p.wait_for_log("admin-refused lines", |l| l.contains("admin-refused") && l.contains("status=403"));
    assert!(!refused.contains(token), "{refused}");
    assert_eq!(p.log().iter().filter(|l| l.contains("admin-refused")).count(), 3, "each refusal logged");
    assert!(!p.log().iter().any(|l| l.contains(token)), "the token is in no log line");
    let mut nothing = [0u8; 1];
    client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(client.read(&mut nothing).is_err(), "still held after the refused answers");
    // The page's own origin may answer.
    let (status, text) = api(&admin, "POST", "/api/answer", &[&bearer, &format!("Origin: http://{admin}")], &body);
    assert_eq!((status, text.as_str()), (200, format!("{{\"ok\":true,\"id\":{id},\"answer\":\"once\"}}").as_str()));
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "released: {line}");
    p.wait_for_log("the answer's line", |l| l.contains(" answered ") && l.contains(&format!("question={id}")) && l.contains("answer=once") && l.contains("by=test"));
    let (status, again) = api(&admin, "POST", "/api/answer", &[&bearer], &body);
    assert_eq!(status, 404, "answered already: {again}");
    let (_, metrics) = api(&admin, "GET", "/metrics", &[], "");
    assert!(metrics.contains(&format!("wasiter_ask_answers_total{{route=\"{}\",answer=\"once\"}} 1", p.addr)), "{metrics}");

    // The CLI, under the proxy's own runtime: a CONNECT held, listed, answered.
    let mut tunnel = p.connect();
    tunnel.write_all(format!("CONNECT tunnel.test:{port} HTTP/1.1\r\nHost: tunnel.test:{port}\r\n\r\n").as_bytes()).unwrap();
    let id = waiting(&admin, &bearer, "connect", "tunnel.test")["id"].as_u64().unwrap();
    let cli = |words: &[&str]| {
        let mut args = vec!["ask"];
        args.extend_from_slice(words);
        args.extend_from_slice(&["--admin", &admin, "--admin-token", token_file]);
        let out = rt.command_in(Some(dir.path()), &[], &args).stdin(std::process::Stdio::null()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, listed, err) = cli(&["list"]);
    assert_eq!(code, Some(0), "wasiter ask list: {err}");
    assert!(listed.lines().any(|l| l.starts_with(&format!("  #{id}  ")) && l.contains(&format!(" connect tunnel.test:{port}"))), "one line per question:\n{listed}");
    let (code, listed, err) = cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "wasiter ask list --json: {err}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert!(listed["questions"].as_array().unwrap().iter().any(|q| q["id"] == id && q["way"] == "connect"), "{listed}");
    let (code, out, err) = cli(&["answer", &id.to_string(), "session"]);
    assert_eq!((code, out.trim()), (Some(0), format!("question {id} answered session").as_str()), "{err}");
    let mut reader = BufReader::new(tunnel);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "the tunnel opens: {line}");
    p.wait_for_log("the CLI's answer", |l| l.contains(" answered ") && l.contains(&format!("question={id}")) && l.contains("by=cli"));
    let (code, _, err) = cli(&["answer", "999", "once"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("no question 999 is waiting"), "{err}");
    let (code, _, err) = cli(&["answer", "1", "always"]);
    // WASI 0.2's exit carries only success or failure: wasmtime reports 1.
    let usage_code = if rt == Runtime::Wasmtime { 1 } else { 2 };
    assert_eq!(code, Some(usage_code), "bad usage: {err}");
    assert!(err.contains("\"always\" is not an answer"), "{err}");
    p.assert_alive();
}
