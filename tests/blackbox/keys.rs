//! Keys the sandbox never holds (issue 45), with real clients: curl, Python
//! and Node send a placeholder through the forward proxy, which opens TLS for
//! the listed names and swaps the real value in on the way to the origin
//! only. The origin records what it got; what the client saw, and the
//! proxy's log, must never hold the value. Peers: keys_peers.rs.

use super::keys_peers::*;
use super::*;
use serde_json::Value;

/// The JSON line a client script printed (its last line).
fn answer_json(out: &str) -> Value {
    let line = out.lines().last().unwrap_or_else(|| panic!("the client printed nothing"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A response header from a client script's answer.
fn answer_header(answer: &Value, name: &str) -> Option<String> {
    header(answer, name)
}

pub fn curl_sends_a_placeholder_and_only_the_origin_gets_the_token(rt: Runtime) {
    if !sealed(rt, "curl_sends_a_placeholder_and_only_the_origin_gets_the_token") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let ph = k.ph("GH_TOKEN").to_string();
    assert!(ph.starts_with("ghp_") && ph.len() == REAL_GH.len(), "shaped like GitHub's token: {ph}");
    let bearer = format!("Authorization: Bearer {ph}");
    let (code, out, err) = k.curl("https://api.github.test/user", &["-H", &bearer]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    assert!(out.contains("\"path\": \"/user\""), "the origin's answer: {out}");
    let got = k.origin.request_for("/user");
    assert_eq!(header(&got, "Authorization"), Some(format!("Bearer {REAL_GH}")), "the origin got the real value: {got}");
    k.assert_clean("curl's output", &format!("{out}{err}"));
    // Any scheme (`token P`, as older GitHub clients send it), and a named header.
    let (code, out, err) = k.curl("https://api.github.test/token", &["-H", &format!("Authorization: token {ph}"), "-H", &format!("X-Api-Key: {KEY_PLACEHOLDER}")]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    let got = k.origin.request_for("/token");
    assert_eq!(header(&got, "Authorization"), Some(format!("token {REAL_GH}")), "{got}");
    assert_eq!(header(&got, "X-Api-Key"), Some(REAL_KEY.to_string()), "as=header: the whole value: {got}");
    // An origin that echoes the request's headers, in its headers and its
    // body: the client reads the placeholder back, never the value.
    let (code, out, err) = k.curl("https://api.github.test/echo", &["-H", &bearer, "-H", &format!("X-Api-Key: {KEY_PLACEHOLDER}")]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    let got = k.origin.request_for("/echo");
    assert_eq!(header(&got, "Authorization"), Some(format!("Bearer {REAL_GH}")), "{got}");
    assert!(out.contains(&format!("X-Echo-Authorization: Bearer {ph}\r\n")), "the echoed header, with the placeholder back: {out}");
    assert!(out.contains(&format!("X-Echo-X-Api-Key: {KEY_PLACEHOLDER}\r\n")), "{out}");
    assert!(out.contains(&format!("\"Bearer {ph}\"")) && out.contains(&format!("\"{KEY_PLACEHOLDER}\"")), "the echoed body, in place: {out}");
    k.assert_clean("curl's output", &format!("{out}{err}"));
    // The same echo chunked, 7 bytes a chunk and a write (a TLS record)
    // each: the value is cut across chunks, and still never arrives.
    let (code, out, err) = k.curl("https://api.github.test/echo?chunk=7", &["-H", &bearer]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    assert_eq!(header(&k.origin.request_for("/echo?chunk=7"), "Authorization"), Some(format!("Bearer {REAL_GH}")));
    assert!(out.contains(&format!("\"Bearer {ph}\"")), "the body, de-chunked by curl, has the placeholder: {out}");
    k.assert_clean("curl's output", &format!("{out}{err}"));
    // Through SOCKS5 on the same port, and as a client that would rather
    // speak HTTP/2: offered only http/1.1, it speaks that.
    let ca = k.ca_pem();
    let socks = format!("socks5h://{}", k.proxy.addr);
    let (code, out, err) = curl(&["--http2", "-x", &socks, "--cacert", ca.to_str().unwrap(), "-H", &bearer, "-w", "\n%{http_version}", "https://api.github.test/socks"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("\n1.1"), "HTTP/1.1 by ALPN: {out}");
    assert_eq!(header(&k.origin.request_for("/socks"), "Authorization"), Some(format!("Bearer {REAL_GH}")), "opened after SOCKS5 too");
    k.assert_clean("curl's output", &format!("{out}{err}"));
    // A Basic password (as=basic, git's way): the origin's echo of the
    // login comes back as the login the client sent.
    let login = base64(&format!("x:{}", k.ph("GIT_TOKEN")));
    let (code, out, err) = k.curl("https://github.test/echo", &["-H", &format!("Authorization: Basic {login}")]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    let got = k.origin.wait_for("github.test's /echo", |r| r["path"] == "/echo" && header(r, "Host").as_deref() == Some("github.test"));
    assert_eq!(header(&got, "Authorization"), Some(format!("Basic {}", base64(&format!("x:{REAL_GIT}")))), "{got}");
    assert!(out.contains(&format!("X-Echo-Authorization: Basic {login}\r\n")) && out.contains(&format!("\"Basic {login}\"")), "{out}");
    k.assert_clean("curl's output", &format!("{out}{err}"));
    k.assert_log_clean();
}

pub fn python_urllib_and_requests_send_a_placeholder_and_read_it_back(rt: Runtime) {
    let has_requests = Command::new("python3").args(["-c", "import requests"]).output().is_ok_and(|o| o.status.success());
    if !has_requests && std::env::var_os("WASITER_SEALED").is_none() {
        println!("SKIPPED: {rt:?}: python requests is not installed (urllib alone)");
    }
    if !sealed(rt, "python_urllib_and_requests_send_a_placeholder_and_read_it_back") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let ph = k.ph("GH_TOKEN").to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys_client.py");
    for (lib, path) in [("urllib", "/echo?by=urllib"), ("requests", "/echo?by=requests")] {
        let out = without_ca_settings(&mut Command::new("python3"))
            .arg(&script)
            .args([lib, &k.proxy_url(), k.ca_pem().to_str().unwrap(), &format!("https://api.github.test{path}"), &format!("Authorization: Bearer {ph}")])
            .output()
            .expect("python3");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{lib}: {stdout}{stderr}");
        if stdout.starts_with("SKIPPED") {
            assert!(!has_requests, "{lib}: {stdout}");
            continue;
        }
        let answer = answer_json(&stdout);
        assert_eq!(answer["status"], 200, "{lib}: {stdout}");
        let got = k.origin.request_for(path);
        assert_eq!(header(&got, "Authorization"), Some(format!("Bearer {REAL_GH}")), "{lib}: {got}");
        assert_eq!(answer_header(&answer, "X-Echo-Authorization"), Some(format!("Bearer {ph}")), "{lib}: {stdout}");
        assert!(answer["body"].as_str().unwrap().contains(&format!("Bearer {ph}")), "{lib}: {stdout}");
        k.assert_clean(&format!("python {lib}'s answer"), &format!("{stdout}{stderr}"));
    }
    k.assert_log_clean();
}

pub fn node_sends_a_placeholder_and_reads_it_back(rt: Runtime) {
    // Before the sealed run, whose output only a failure shows.
    if Command::new("node").arg("--version").output().is_err() {
        println!("SKIPPED: {rt:?}: node is not installed");
        return;
    }
    if !sealed(rt, "node_sends_a_placeholder_and_reads_it_back") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let ph = k.ph("GH_TOKEN").to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys_node.js");
    let port = k.proxy.addr.port().to_string();
    let out = without_ca_settings(&mut Command::new("node"))
        .arg(&script)
        .args([port.as_str(), k.ca_pem().to_str().unwrap(), "api.github.test", "/echo?by=node", &format!("Authorization: Bearer {ph}")])
        .output()
        .expect("node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node: {stdout}{stderr}");
    let answer = answer_json(&stdout);
    assert_eq!(answer["status"], 200, "{stdout}");
    println!("node went through the proxy by {}", answer["via"]);
    let got = k.origin.request_for("/echo?by=node");
    assert_eq!(header(&got, "Authorization"), Some(format!("Bearer {REAL_GH}")), "{got}");
    assert_eq!(answer_header(&answer, "X-Echo-Authorization"), Some(format!("Bearer {ph}")), "{stdout}");
    assert!(answer["body"].as_str().unwrap().contains(&format!("Bearer {ph}")), "{stdout}");
    k.assert_clean("node's answer", &format!("{stdout}{stderr}"));
    k.assert_log_clean();
}

/// Send `head` alone on a new connection to the proxy: its whole answer.
fn ask_raw(k: &Keys, head: &str) -> String {
    let mut c = k.proxy.connect();
    c.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn a_placeholder_on_its_way_anywhere_else_is_refused_as_a_leak(rt: Runtime) {
    if !sealed(rt, "a_placeholder_on_its_way_anywhere_else_is_refused_as_a_leak") {
        return;
    }
    let mut k = Keys::start(rt, &["--metrics", "127.0.0.1:0"]);
    let ph = k.ph("GH_TOKEN").to_string();
    let mut refused = 0;
    // To another allowed (and opened) name: not one the entry names. In
    // any header, in any case.
    for (path, extra) in [
        ("/leak-bearer", format!("Authorization: Bearer {ph}")),
        ("/leak-other-header", format!("X-Note: see {ph}")),
        ("/leak-lower", format!("Authorization: Bearer {}", ph.to_lowercase())),
        ("/leak-key", format!("X-Api-Key: {KEY_PLACEHOLDER}")),
    ] {
        let (code, out, err) = k.curl(&format!("https://other.test{path}"), &["-H", &extra]);
        assert_eq!((code, Keys::status(&out)), (0, 403), "{path}: {out}{err}");
        assert!(out.contains("placeholder-leak"), "the answer names the reason: {out}");
        refused += 1;
    }
    // In a plain-HTTP request, even to the entry's own name.
    let (code, out, err) = k.curl("http://api.github.test/leak-plain", &["-H", &format!("Authorization: Bearer {ph}")]);
    assert_eq!((code, Keys::status(&out)), (0, 403), "{out}{err}");
    assert!(out.contains("placeholder-leak"), "{out}");
    refused += 1;
    // In a CONNECT's head: its host name, or a header of it.
    let answer = ask_raw(&k, &format!("CONNECT {KEY_PLACEHOLDER}.other.test:443 HTTP/1.1\r\nHost: {KEY_PLACEHOLDER}.other.test:443\r\n\r\n"));
    assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("placeholder-leak"), "{answer}");
    let answer = ask_raw(&k, &format!("CONNECT api.github.test:443 HTTP/1.1\r\nHost: api.github.test:443\r\nX-Token: {ph}\r\n\r\n"));
    assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("placeholder-leak"), "{answer}");
    refused += 2;
    // Each refusal is a decision of its own, logged as an attempted leak.
    eventually("a placeholder-leak decision per refusal", || {
        k.proxy.log().iter().filter(|l| l.contains(" decision ") && l.contains("decision=deny") && l.contains("rule=placeholder-leak")).count() >= refused
    });
    k.denied_by("placeholder-leak");
    // What was allowed still passes afterwards, and none of the refused reached any origin.
    let (code, out, err) = k.curl("https://other.test/after", &[]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    k.origin.request_for("/after");
    let leaked: Vec<Value> = k.origin.requests().into_iter().filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/leak"))).collect();
    assert!(leaked.is_empty(), "refused requests reached the origin: {leaked:#?}");
    let asked = k.dns.queries();
    assert!(!asked.iter().any(|q| q.to_lowercase().contains(KEY_PLACEHOLDER)), "the name with the placeholder was never looked up: {asked:?}");
    k.assert_log_clean();
}

pub fn a_clients_own_token_passes_unchanged(rt: Runtime) {
    if !sealed(rt, "a_clients_own_token_passes_unchanged") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let own = "ghp_MyOwnScopedTokenNotAPlaceholder00000";
    let (code, out, err) = k.curl("https://api.github.test/own", &["-H", &format!("Authorization: Bearer {own}"), "-H", "X-Api-Key: my-own-key"]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    let got = k.origin.request_for("/own");
    assert_eq!(header(&got, "Authorization"), Some(format!("Bearer {own}")), "never clobbered: {got}");
    assert_eq!(header(&got, "X-Api-Key"), Some("my-own-key".to_string()), "{got}");
    // A Basic login of the client's own to git's host: the same.
    let basic = format!("Authorization: Basic {}", base64("me:my-own-password"));
    let (code, out, err) = k.curl("https://github.test/me/proj.git/info/refs?service=git-upload-pack", &["-H", &basic]);
    assert_eq!((code, Keys::status(&out)), (0, 401), "the origin judged the client's own login: {out}{err}");
    let got = k.origin.request_for("/me/proj.git/info/refs?service=git-upload-pack");
    assert_eq!(header(&got, "Authorization"), Some(format!("Basic {}", base64("me:my-own-password"))), "{got}");
    // No credential at all: none is added.
    let (code, out, err) = k.curl("https://api.github.test/none", &[]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    assert_eq!(header(&k.origin.request_for("/none"), "Authorization"), None);
    k.assert_log_clean();
}
