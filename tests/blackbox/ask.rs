//! Ask a person (issue 46): a destination an `ask` route does not list is
//! held while someone decides, through the admin API a page, the CLI or a
//! hook uses. Real clients (curl over HTTP, CONNECT, SOCKS5 and a
//! transparent listener; dig at the DNS route) against a real origin on
//! 127.0.0.1, names from the tests' DNS server (whose query log says what
//! was looked up, and when). This file: the helpers, and every way out
//! held and then answered. Scopes: ask_scopes.rs; bounds and refusals:
//! ask_limits.rs; the API's own checks: ask_api.rs.

use super::*;
use serde_json::Value;
use std::process::{Child, Stdio};

/// The admin token the tests write (the proxy reads its first line).
pub const TOKEN: &str = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5-test";

/// A plain HTTP origin on 127.0.0.1: answers each request with
/// `origin PATH` and keeps the connection; `accepted()` counts who reached it.
pub fn origin() -> Server {
    // The same origin that identity.rs reads what it saw from.
    seeing_origin().0
}

/// curl started in the background (a client held by the proxy): `-sS`,
/// given up after 30 s, then `args`.
pub fn curl_held(args: &[&str]) -> Child {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl must be installed")
}

/// A background client's end: (exit code, stdout, stderr).
pub fn finished(c: Child) -> (i32, String, String) {
    let out = c.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Still waiting: the proxy holds it.
pub fn still_held(c: &mut Child, what: &str) {
    assert!(c.try_wait().unwrap().is_none(), "{what} ended before anyone answered");
}

/// A proxy with a routes file and the admin listener, in a folder of its
/// own (the routes file, the token): what the Feature runs.
pub struct Asked {
    pub p: Proxy,
    pub at: Vec<SocketAddr>,
    pub dir: TempDir,
    /// The admin listener, `127.0.0.1:PORT`.
    pub admin: String,
    rt: Runtime,
    args: Vec<String>,
    routes: usize,
}

impl Asked {
    /// Start with these routes-file `lines` (the file holds `routes` routes),
    /// resolving through `dns`, with `more` flags.
    pub fn start(rt: Runtime, lines: &[String], routes: usize, dns: &str, more: &[&str]) -> Asked {
        let dir = TempDir::new("ask");
        std::fs::write(dir.path().join("routes"), lines.join("\n") + "\n").unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("token"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let (file, token) = (dir.path().join("routes"), dir.path().join("token"));
        let mut args: Vec<String> = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "100ms", "--admin-token", token.to_str().unwrap(), "--resolver", dns].map(String::from).to_vec();
        args.extend(more.iter().map(|s| s.to_string()));
        let (p, at, admin) = Self::launch(rt, &dir, routes, &args);
        Asked { p, at, dir, admin, rt, args, routes }
    }

    fn launch(rt: Runtime, dir: &TempDir, routes: usize, args: &[String]) -> (Proxy, Vec<SocketAddr>, String) {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--admin", admin.as_str()]);
        let (p, at) = Proxy::start_routes_in(rt, Some(dir.path()), routes, &[], &all);
        (p, at, admin)
    }

    /// Stop the proxy and start it again on the same routes file: what a
    /// session answer must not outlive, and a forever answer must.
    pub fn restart(&mut self) {
        self.p.signal(libc::SIGKILL); // its listeners free for the new one
        self.p.wait_exit();
        let (p, at, admin) = Self::launch(self.rt, &self.dir, self.routes, &self.args);
        self.p = p;
        assert_eq!(at, self.at, "the routes listen where they did");
        self.admin = admin;
    }

    pub fn routes_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("routes")).unwrap()
    }

    /// The ids of the questions filed for `host` so far (one `ask` line each).
    pub fn asked(&self, host: &str) -> Vec<u64> {
        self.p.log().iter().filter(|l| l.contains(" ask question=")).map(|l| record(l)).filter(|r| r["host"] == host).map(|r| r["question"].parse().unwrap()).collect()
    }

    /// The id of the `n`th question filed for `host` (1-based), once it is.
    pub fn question(&mut self, host: &str, n: usize) -> u64 {
        let what = format!("question {n} for {host}");
        let pat = format!(" host={host} ");
        self.p.wait_for_log(&what, |l| l.contains(" ask question=") && l.contains(&pat));
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(id) = self.asked(host).get(n - 1) {
                return *id;
            }
            assert!(Instant::now() < deadline, "no {what}; log:\n{}", self.p.log().join("\n"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request to the admin listener with curl: (status, body). `head`
    /// are extra header lines; the token is sent unless `head` has an
    /// Authorization of its own or `no-token`.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, head: &[&str]) -> (u16, String) {
        let url = format!("http://{}{path}", self.admin);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "-X", method, &url]);
        let auth = format!("Authorization: Bearer {TOKEN}");
        if !head.iter().any(|h| h.starts_with("Authorization:") || *h == "no-token") {
            cmd.args(["-H", &auth]);
        }
        for h in head.iter().filter(|h| **h != "no-token") {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl {url}: {}", String::from_utf8_lossy(&out.stderr)));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// GET /api/questions, parsed.
    pub fn questions(&self) -> Value {
        let (code, body) = self.api("GET", "/api/questions", None, &[]);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    /// The pending question `id` as the API shows it.
    pub fn shown(&self, id: u64) -> Value {
        let all = self.questions();
        let found = all["questions"].as_array().expect("questions: a list").iter().find(|q| q["id"] == id).cloned();
        found.unwrap_or_else(|| panic!("question {id} is not in {all}"))
    }

    /// Answer question `id` as a hook would (POST /api/answer, no Origin).
    pub fn answer(&self, id: u64, scope: &str) {
        let (code, body) = self.api("POST", "/api/answer", Some(&format!(r#"{{"id":{id},"answer":"{scope}","by":"test"}}"#)), &[]);
        assert_eq!(code, 200, "answer {id} {scope}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["ok"].as_bool(), v["id"].as_u64(), v["answer"].as_str()), (Some(true), Some(id), Some(scope)), "{body}");
    }
}

/// `dig` at the DNS route `at`, asking once and waiting 1 s: its output.
pub fn dig_once(at: SocketAddr, name: &str) -> String {
    dig_for(at, name, 1)
}

/// The same, waiting `secs` (for a reply that must come: a slow machine
/// must not turn it into a withheld one).
pub fn dig_for(at: SocketAddr, name: &str, secs: u32) -> String {
    let out = Command::new("dig")
        .args([format!("@{}", at.ip()), "-p".into(), at.port().to_string(), format!("+time={secs}"), "+tries=1".into(), name.into(), "A".into()])
        .output()
        .expect("dig (Debian's dnsutils; scripts/setup --peers installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `dig` output's status (NOERROR, REFUSED), or "no answer".
pub fn dig_status(out: &str) -> &str {
    out.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("no answer")
}

/// No query for `name` reached the tests' DNS server.
pub fn never_looked_up(dns: &DnsServer, name: &str) {
    let q = dns.queries();
    assert!(!q.iter().any(|l| l.starts_with(&format!("query {name} "))), "{name} was sent to DNS before an allow: {q:?}");
}

pub fn every_way_out_is_held_until_a_person_answers(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let certs = Certs::new(&["tls.test"]);
    let tls = nginx_tls(&certs, "tls.test", false, "tls, asked");
    let names = ["plain.test", "tunnel.test", "socks.test", "redirected.test", "tls.test"];
    let dns = DnsServer::start(&names.map(|n| (n, "127.0.0.1")), &[], &[]);
    let (fwd, tp, ttp) = (free_port(), free_port(), free_port());
    let lines = [
        format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask"),
        format!("127.0.0.1:{tp}=forward;transparent={port};to=listed.test;to-net=127.0.0.0/8;ports={port};ask"),
        format!("127.0.0.1:{ttp}=forward;transparent={};to=listed.test;to-net=127.0.0.0/8;ports={};ask", tls.port, tls.port),
    ];
    let mut a = Asked::start(rt, &lines, 3, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let proxy = format!("http://127.0.0.1:{fwd}");
    // A plain request: held, shown with its method and path, unresolved.
    let mut plain = curl_held(&["-x", &proxy, &format!("http://plain.test:{port}/p?q=1")]);
    let id = a.question("plain.test", 1);
    let q = a.shown(id);
    assert_eq!((q["way"].as_str(), q["host"].as_str(), q["port"].as_u64(), q["method"].as_str(), q["path"].as_str()), (Some("http"), Some("plain.test"), Some(port.into()), Some("GET"), Some("/p?q=1")), "{q}");
    assert_eq!((q["client"].as_str(), q["route"].as_str(), q["clients"].as_u64()), (Some("127.0.0.1"), Some(format!("127.0.0.1:{fwd}").as_str()), Some(1)), "{q}");
    still_held(&mut plain, "the plain request");
    never_looked_up(&dns, "plain.test");
    assert_eq!(web.accepted(), 0);
    a.answer(id, "once");
    let (code, body, err) = finished(plain);
    assert_eq!((code, body.as_str()), (0, "origin /p?q=1\n"), "released to the origin: {err}");
    let line = record(&a.p.wait_for_log("the answer's line", |l| l.contains(" answered ") && l.contains(&format!("question={id} "))));
    assert_eq!((line["answer"].as_str(), line["by"].as_str(), line["clients"].as_str(), line["host"].as_str()), ("once", "test", "1", "plain.test"));
    a.p.wait_for_log("an allow by rule asked", |l| l.contains(" decision ") && l.contains("host=plain.test:") && l.contains("decision=allow rule=asked"));

    // CONNECT, with a request behind it in the same write: no 200 and no
    // byte to the origin before the answer; both after it.
    let mut c = connect(format!("127.0.0.1:{fwd}").parse().unwrap());
    c.write_all(format!("CONNECT tunnel.test:{port} HTTP/1.1\r\n\r\nGET /t HTTP/1.1\r\nHost: tunnel.test:{port}\r\n\r\n").as_bytes()).unwrap();
    let id = a.question("tunnel.test", 1);
    assert_eq!(a.shown(id)["way"], "connect");
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut early = [0u8; 64];
    match c.read(&mut early) {
        Err(e) if io_err_is_timeout(&e) => {}
        other => panic!("the CONNECT was answered before anyone allowed it: {other:?} {:?}", String::from_utf8_lossy(&early)),
    }
    assert_eq!(web.accepted(), 1, "only the plain request's connection: the tunnel dialled nothing yet");
    never_looked_up(&dns, "tunnel.test");
    a.answer(id, "once");
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(read_exact_n(&mut c, ok.len()), ok);
    let mut reader = BufReader::new(c);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "the request behind the CONNECT went on: {status}");

    // SOCKS5 (curl resolves nothing itself), then the transparent listener.
    let mut socks = curl_held(&["--socks5-hostname", &format!("127.0.0.1:{fwd}"), &format!("http://socks.test:{port}/s")]);
    let id = a.question("socks.test", 1);
    assert_eq!(a.shown(id)["way"], "socks5");
    still_held(&mut socks, "the SOCKS5 client");
    never_looked_up(&dns, "socks.test");
    a.answer(id, "once");
    let (code, body, err) = finished(socks);
    assert_eq!((code, body.as_str()), (0, "origin /s\n"), "{err}");
    let mut redirected = curl_held(&["--connect-to", &format!("redirected.test:{port}:127.0.0.1:{tp}"), &format!("http://redirected.test:{port}/r")]);
    let id = a.question("redirected.test", 1);
    let q = a.shown(id);
    assert_eq!((q["way"].as_str(), q["route"].as_str()), (Some("transparent"), Some(format!("127.0.0.1:{tp}").as_str())), "{q}");
    still_held(&mut redirected, "the redirected client");
    never_looked_up(&dns, "redirected.test");
    a.answer(id, "once");
    let (code, body, err) = finished(redirected);
    assert_eq!((code, body.as_str()), (0, "origin /r\n"), "{err}");
    // Its TLS client: the ClientHello held (no server hears it), then
    // relayed after the answer, the handshake end to end.
    let ca = certs.ca();
    let mut secure = curl_held(&["--connect-to", &format!("tls.test:{}:127.0.0.1:{ttp}", tls.port), "--cacert", ca.to_str().unwrap(), &format!("https://tls.test:{}/", tls.port)]);
    let id = a.question("tls.test", 1);
    assert_eq!((a.shown(id)["way"].as_str(), a.shown(id)["port"].as_u64()), (Some("transparent"), Some(tls.port.into())));
    still_held(&mut secure, "the TLS client");
    never_looked_up(&dns, "tls.test");
    a.answer(id, "once");
    let (code, body, err) = finished(secure);
    assert_eq!((code, body.as_str()), (0, "tls, asked\n"), "{err}");
    // Each answer is in the recent list and the metrics; nothing waits.
    let all = a.questions();
    assert_eq!(all["questions"].as_array().map(Vec::len), Some(0), "{all}");
    let recent: Vec<&str> = all["recent"].as_array().unwrap().iter().filter_map(|r| r["host"].as_str()).collect();
    assert_eq!(recent, ["tls.test", "redirected.test", "socks.test", "tunnel.test", "plain.test"], "newest first: {all}");
    // Report mode's draft says how each name came in.
    let drafts = all["drafts"].as_str().unwrap_or_default();
    assert!(drafts.contains("#   plain.test  1  asked: a person allowed it (once)"), "{drafts}");
    let m = scrape(a.p.metrics.as_ref().unwrap());
    let once: f64 = m.iter().filter(|(n, l, _)| n == "wasiter_ask_answers_total" && l.get("answer").map(String::as_str) == Some("once")).map(|s| s.2).sum();
    assert_eq!(once, 5.0);
    let pending: f64 = m.iter().filter(|(n, _, _)| n == "wasiter_ask_pending").map(|s| s.2).sum();
    assert_eq!(pending, 0.0);
}

pub fn a_dns_question_is_withheld_until_its_answer(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("asked.test", "127.0.0.1"), ("denied.test", "127.0.0.1")], &[], &[]);
    let (d, fwd) = (free_port(), free_port());
    let lines = [
        format!("127.0.0.1:{d}=dns;to=listed.test;to-net=127.0.0.0/8;ask"),
        format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask"),
    ];
    let mut a = Asked::start(rt, &lines, 2, &dns.addr(), &[]);
    let at: SocketAddr = format!("127.0.0.1:{d}").parse().unwrap();
    // The reply is withheld (dig gives up after its second), and the name
    // is not looked up while a person decides.
    let out = dig_once(at, "asked.test");
    assert_eq!(dig_status(&out), "no answer", "withheld: {out}");
    let id = a.question("asked.test", 1);
    let q = a.shown(id);
    assert_eq!((q["way"].as_str(), q["port"].as_u64(), q["client"].as_str()), (Some("dns"), Some(0), Some("127.0.0.1")), "{q}");
    assert_eq!(dig_status(&dig_once(at, "asked.test")), "no answer", "a retry before the answer is withheld too");
    assert_eq!(a.asked("asked.test").len(), 1, "the retry is the same question");
    never_looked_up(&dns, "asked.test");
    a.answer(id, "once");
    // The retry gets the address, looked up now.
    let out = dig_for(at, "asked.test", 10);
    assert_eq!(dig_status(&out), "NOERROR", "{out}");
    assert!(out.contains("asked.test.\t") && out.contains("127.0.0.1"), "{out}");
    dns.queries_with(&["query asked.test A udp"]);
    // The connection that client then makes is not asked again ...
    let (code, body, err) = curl(&["-x", &format!("http://127.0.0.1:{fwd}"), &format!("http://asked.test:{port}/after-dns")]);
    assert_eq!((code, body.as_str()), (0, "origin /after-dns\n"), "{err}");
    assert_eq!(a.asked("asked.test").len(), 1, "one question for one step");
    // ... but only that one: the next is a question of its own.
    let mut next = curl_held(&["-x", &format!("http://127.0.0.1:{fwd}"), &format!("http://asked.test:{port}/again")]);
    let id = a.question("asked.test", 2);
    still_held(&mut next, "the second connection");
    a.answer(id, "deny");
    let (_, body, _) = finished(next);
    assert!(body.contains("refused (rule ask-denied)"), "{body}");
    // Denied: the retry is REFUSED with the rule, and the name was never looked up.
    assert_eq!(dig_status(&dig_once(at, "denied.test")), "no answer");
    let id = a.question("denied.test", 1);
    a.answer(id, "deny");
    let out = dig_for(at, "denied.test", 10);
    assert_eq!(dig_status(&out), "REFUSED", "{out}");
    assert!(out.contains("ask-denied"), "the refusal says why: {out}");
    never_looked_up(&dns, "denied.test");
    a.p.assert_alive();
}
