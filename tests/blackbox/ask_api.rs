//! Ask a person: the admin listener's own checks, tried from the sandbox's
//! side (no token, a wrong one), from a web page elsewhere (a foreign
//! Origin, a DNS-rebinding Host, Sec-Fetch-Site) and with a hostile path
//! in a question; the token in no log line. Then the page itself in a
//! real headless browser (tests/browser/ask_page.mjs).

use super::*;
use serde_json::Value;

pub fn the_admin_api_wants_its_token_and_a_page_of_its_own(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("hostile.test", "127.0.0.1"), ("flag.test", "127.0.0.1")], &[], &[]);
    let (fwd, flag) = (free_port(), free_port());
    let lines = [format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask")];
    // A second route from a flag, not the file: forever cannot be written for it.
    let route = format!("127.0.0.1:{flag}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask");
    let mut a = Asked::start(rt, &lines, 2, &dns.addr(), &["--route", &route, "--trace"]);
    // A request whose path would be markup, quotes and all.
    let path = "/a\"b'<script>alert(1)</script>%22%3Cimg%20src=x%3E\\";
    let mut c = connect(format!("127.0.0.1:{fwd}").parse().unwrap());
    c.write_all(format!("GET http://hostile.test:{port}{path} HTTP/1.1\r\nHost: hostile.test:{port}\r\n\r\n").as_bytes()).unwrap();
    let id = a.question("hostile.test", 1);

    // No token, a wrong one, a token in another scheme: 401, JSON, logged
    // as admin-refused; the question still waits.
    for head in [&["no-token"][..], &["Authorization: Bearer wrong-token-0123456789"], &[&format!("Authorization: Basic {TOKEN}")]] {
        for (method, api, body) in [("GET", "/api/questions", None), ("POST", "/api/answer", Some(format!(r#"{{"id":{id},"answer":"once"}}"#)))] {
            let (code, got) = a.api(method, api, body.as_deref(), head);
            assert_eq!(code, 401, "{method} {api} {head:?}: {got}");
            let v: Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("a JSON error ({e}): {got}"));
            assert!(v["error"].is_string(), "{got}");
        }
    }
    let refused = record(&a.p.wait_for_log("an admin-refused line", |l| l.contains("admin-refused")));
    assert!(refused.values().any(|v| v.contains("127.0.0.1")), "it names the peer: {refused:?}");
    // A page elsewhere: its Origin, a rebinding name for this address, a
    // cross-site fetch. Each 403, even with the right token.
    let here = a.admin.clone();
    let admin_port = here.rsplit(':').next().unwrap().to_string();
    let answer_once = format!(r#"{{"id":{id},"answer":"once"}}"#);
    for head in [
        vec!["Origin: http://evil.test".to_string()],
        vec!["Origin: null".to_string()],
        vec![format!("Origin: https://{here}")],
        vec![format!("Host: evil.test:{admin_port}"), format!("Origin: http://evil.test:{admin_port}")],
        vec![format!("Host: 127.0.0.1.evil.test:{admin_port}"), format!("Origin: http://127.0.0.1.evil.test:{admin_port}")],
        vec!["Sec-Fetch-Site: cross-site".to_string()],
    ] {
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let (code, got) = a.api("POST", "/api/answer", Some(&answer_once), &head);
        assert_eq!(code, 403, "{head:?}: {got}");
    }
    assert_eq!(a.shown(id)["clients"], 1, "no refused request answered it");
    // Bad bodies and answers: 400; an unknown id: 404; forever for a route
    // the file does not hold: 409. None answers it.
    for body in ["{", "[]", r#"{"id":"x","answer":"once"}"#, &format!(r#"{{"id":{id},"answer":"always"}}"#), &format!(r#"{{"id":{id},"answer":"timeout"}}"#)] {
        let (code, got) = a.api("POST", "/api/answer", Some(body), &[]);
        assert_eq!(code, 400, "{body}: {got}");
    }
    let (code, got) = a.api("POST", "/api/answer", Some(&format!(r#"{{"id":{},"answer":"once"}}"#, id + 1000)), &[]);
    assert_eq!(code, 404, "{got}");
    let (code, got) = a.api("POST", "/api/answer", Some(&"x".repeat(9 * 1024)), &[]);
    assert!(code == 413 || code == 400, "a body over 8 KiB: {code} {got}");
    let (code, got) = a.api("DELETE", "/api/questions", None, &[]);
    assert!(code == 404 || code == 405, "{code} {got}");
    let mut flagged = curl_held(&["-x", &format!("http://127.0.0.1:{flag}"), &format!("http://flag.test:{port}/")]);
    let flag_id = a.question("flag.test", 1);
    let (code, got) = a.api("POST", "/api/answer", Some(&format!(r#"{{"id":{flag_id},"answer":"forever"}}"#)), &[]);
    assert_eq!(code, 409, "forever for a route from a flag: {got}");
    still_held(&mut flagged, "the client whose forever was refused");
    a.answer(flag_id, "deny");
    finished(flagged);

    // The hostile path comes back as the same string, escaped as JSON.
    let (code, raw) = a.api("GET", "/api/questions", None, &[]);
    assert_eq!(code, 200, "{raw}");
    let q = a.shown(id);
    assert_eq!((q["path"].as_str(), q["host"].as_str()), (Some(path), Some("hostile.test")), "{q}");
    assert!(raw.contains(r#"\"b'"#) && !raw.contains(r#"a"b"#), "the quote is escaped: {raw}");
    // A browser's own POST (Origin = its Host, a loopback address) is let
    // through, as the page's is.
    let (code, got) = a.api("POST", "/api/answer", Some(&format!(r#"{{"id":{id},"answer":"once","by":"Page <b>!"}}"#)), &[&format!("Origin: http://{here}")]);
    assert_eq!(code, 200, "{got}");
    let mut reader = BufReader::new(c);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let line = record(&a.p.wait_for_log("the answer", |l| l.contains(" answered ") && l.contains(&format!("question={id} "))));
    assert!(line["by"].chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') && line["by"].len() <= 16, "by is sanitized: {line:?}");

    // The page and its files need no token, and carry their headers.
    for file in ["/", "/ask.js", "/ask.css"] {
        let out = Command::new("curl").args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/null", &format!("http://{here}{file}")]).output().unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{file}: {head}");
        for want in ["content-security-policy: default-src 'none'; script-src 'self'", "frame-ancestors 'none'", "x-content-type-options: nosniff", "referrer-policy: no-referrer", "cache-control: no-store"] {
            assert!(head.contains(want), "{file}: no {want:?} in {head}");
        }
    }
    // The token is in no log line (with --trace on).
    let log = a.p.log();
    assert!(!log.iter().any(|l| l.contains(TOKEN)), "the token was logged:\n{}", log.join("\n"));
    a.p.assert_alive();
}

/// The page in a real browser: Debian's chromium driven by playwright-core
/// (tests/browser/ask_page.mjs). Without them, one SKIPPED line.
pub fn the_admin_page_shows_questions_and_its_buttons_answer_them(rt: Runtime) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ask_page.mjs");
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/playwright-core");
    if !Path::new("/usr/bin/chromium").exists() || !modules.exists() || Command::new("node").arg("--version").output().is_err() {
        // WASITER_REQUIRE_BROWSER=1 (set by .ci/run): CI installs them, so a skip there fails.
        assert!(std::env::var_os("WASITER_REQUIRE_BROWSER").is_none(), "WASITER_REQUIRE_BROWSER=1, and chromium or playwright-core is missing (scripts/setup --browser)");
        println!("SKIPPED: {rt:?}: no chromium or playwright-core (scripts/setup --browser installs them)");
        return;
    }
    let web = origin();
    let port = web.addr.port();
    let names = ["hostile.test", "once.test", "session.test", "forever.test", "deny.test", "never.test"];
    let dns = DnsServer::start(&names.map(|n| (n, "127.0.0.1")), &[], &[]);
    let fwd = free_port();
    let lines = [format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask")];
    let a = Asked::start(rt, &lines, 1, &dns.addr(), &[]);
    let out = Command::new("node")
        .arg(&script)
        .env("ADMIN", &a.admin)
        .env("TOKEN", TOKEN)
        .env("PROXY", format!("127.0.0.1:{fwd}"))
        .env("ORIGIN_PORT", port.to_string())
        .env("ROUTES_FILE", a.dir.path().join("routes"))
        .output()
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}\nproxy log:\n{}", a.p.log().join("\n"));
    assert!(stdout.contains("ask page: all answers checked"), "{stdout}");
    let log = a.p.log();
    assert!(!log.iter().any(|l| l.contains(TOKEN)), "the token was logged:\n{}", log.join("\n"));
}
