//! Issue 45's rules and edges: method and path rules on opened names (and
//! plain HTTP) that no `..` or `%2e%2e` climbs out of; a name not listed in
//! `open=` stays a tunnel (its certificate is the origin's); an origin whose
//! certificate the upstream roots do not vouch for is refused with rustls'
//! reason; and no value in the log with `--trace` and `--dump` on.

use super::keys_peers::*;
use super::*;
use std::process::Stdio;

pub fn method_and_path_rules_refuse_what_they_do_not_allow(rt: Runtime) {
    if !sealed(rt, "method_and_path_rules_refuse_what_they_do_not_allow") {
        return;
    }
    let mut k = Keys::start(rt, &[]);
    let post = ["-X", "POST", "--path-as-is", "-d", "{}"];
    // Allowed: reads everywhere, writes under one repository.
    for (url, more) in [("https://api.github.test/repos/other/x", &[][..]), ("https://api.github.test/repos/me/proj/issues", &post[..])] {
        let (code, out, err) = k.curl(url, more);
        assert_eq!((code, Keys::status(&out)), (0, 200), "{url}: {out}{err}");
    }
    k.origin.request_for("/repos/me/proj/issues");
    // Refused: a write elsewhere, a method no rule names, and climbs out of
    // the allowed repository in every spelling.
    let refused = [
        ("POST", "/repos/other/x/issues"),
        ("DELETE", "/user"),
        ("POST", "/repos/me/proj/../../other/x/issues"),
        ("POST", "/repos/me/proj/%2e%2e/%2e%2e/other/x/issues"),
        ("POST", "/repos/me/proj/%2E%2e%2F%2e%2E%2Fother/x/issues"),
        ("POST", "/repos/me/proj/..%2F..%2Fother/x/issues"),
        ("POST", "/repos/me/proj/.%2e/.%2e/other/x/issues"),
        ("POST", "/repos/me/proj%2F..%2F..%2Fother/x/issues"),
    ];
    for (method, path) in refused {
        let url = format!("https://api.github.test{path}");
        let (code, out, err) = k.curl(&url, &["-X", method, "--path-as-is", "-d", "{}"]);
        assert_eq!((code, Keys::status(&out)), (0, 403), "{method} {path}: {out}{err}");
    }
    let line = k.denied_by("http-rule");
    assert!(line.get("host").is_some_and(|h| h.starts_with("api.github.test")), "the decision names the host: {line:?}");
    eventually("an http-rule decision per refused request", || k.proxy.log().iter().filter(|l| l.contains(" decision ") && l.contains("decision=deny rule=http-rule")).count() >= refused.len());
    // Plain HTTP gets the same rules.
    let (code, out, err) = k.curl("http://api.github.test/repos/other/x/issues", &post);
    assert_eq!((code, Keys::status(&out)), (0, 403), "{out}{err}");
    assert!(out.contains("http-rule"), "the answer names the rule: {out}");
    // None of the refused reached the origin: the allowed request after them did.
    let (code, out, err) = k.curl("https://api.github.test/repos/me/proj/pulls", &post);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    k.origin.request_for("/repos/me/proj/pulls");
    let through: Vec<String> = k.origin.requests().iter().filter_map(|r| r["path"].as_str().map(str::to_string)).collect();
    assert_eq!(through, ["/repos/other/x", "/repos/me/proj/issues", "/repos/me/proj/pulls"], "only what the rules allow reached the origin");
}

/// `openssl s_client` through the proxy to NAME:443 trusting `ca`: (the
/// verification line, the server's certificate as PEM).
fn server_certificate(k: &Keys, name: &str, ca: &Path) -> (String, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-proxy", &k.proxy.addr.to_string(), "-connect", &format!("{name}:443"), "-servername", name, "-CAfile", ca.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let verify = text.lines().find(|l| l.contains("Verify return code")).unwrap_or_default().trim().to_string();
    let pem = match (text.find("-----BEGIN CERTIFICATE-----"), text.find("-----END CERTIFICATE-----")) {
        (Some(a), Some(b)) => text[a..b + 25].to_string() + "\n",
        _ => panic!("no certificate from {name}: {text}{}", String::from_utf8_lossy(&out.stderr)),
    };
    (verify, pem)
}

/// `openssl x509 -noout` with `args` on a PEM certificate.
pub fn x509(pem: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl").args(["x509", "-noout"]).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("openssl");
    child.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn a_name_not_listed_for_opening_stays_a_tunnel(rt: Runtime) {
    if !sealed(rt, "a_name_not_listed_for_opening_stays_a_tunnel") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let testca = k.dir.path().join("pki/testca.pem");
    // registry.test is allowed but not opened: the client's TLS goes to the
    // origin untouched, so it verifies against the origin's CA ...
    let (code, out, err) = k.curl("https://registry.test/pkg", &["--cacert", testca.to_str().unwrap(), "-v"]);
    assert_eq!((code, Keys::status(&out)), (0, 200), "{out}{err}");
    k.origin.request_for("/pkg");
    let (verify, pem) = server_certificate(&k, "registry.test", &testca);
    assert!(verify.ends_with("0 (ok)"), "{verify}");
    let (_, issuer) = x509(&pem, &["-issuer"]);
    assert_eq!(issuer, "issuer=CN = testca", "the origin's own certificate");
    // ... and not against the proxy's: nothing was minted for it.
    let (_, ours) = server_certificate(&k, "registry.test", &k.ca_pem());
    assert_eq!(ours, pem, "the same certificate whoever asks");
    let ca = k.ca_pem();
    let (code, _, err) = curl(&["-x", &k.proxy_url(), "--cacert", ca.to_str().unwrap(), "https://registry.test/pkg2"]);
    assert_eq!(code, 60, "curl cannot verify it against the proxy's CA: {err}");
    // An opened name, for contrast: its certificate is the proxy's.
    let (verify, pem) = server_certificate(&k, "api.github.test", &k.ca_pem());
    assert!(verify.ends_with("0 (ok)"), "{verify}");
    let (_, issuer) = x509(&pem, &["-issuer"]);
    assert_ne!(issuer, "issuer=CN = testca", "minted by the proxy: {issuer}");
}

pub fn a_wrong_upstream_certificate_is_refused_with_its_reason(rt: Runtime) {
    if !sealed(rt, "a_wrong_upstream_certificate_is_refused_with_its_reason") {
        return;
    }
    let mut k = Keys::start(rt, &[]);
    let pki = k.dir.path().join("pki");
    // wrong.test is opened, and its origin's certificate comes from a CA
    // the proxy's upstream roots (the test CA) do not hold.
    let wrong = Origin::start("127.0.0.2", &pki.join("wrong.pem"), &pki.join("wrong.key"), REAL_GIT, false, None);
    let (code, out, err) = k.curl("https://wrong.test/x", &[]);
    assert_eq!(Keys::status(&out), 502, "{out}{err}");
    // The proxy may meet the origin at the CONNECT (curl then shows no
    // body: ask by hand) or at the first request inside.
    let body = if code == 0 {
        out.rsplit("\r\n\r\n").next().unwrap_or_default().to_string()
    } else {
        let mut c = k.proxy.connect();
        c.write_all(b"CONNECT wrong.test:443 HTTP/1.1\r\nHost: wrong.test:443\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        answer
    };
    assert!(body.to_lowercase().contains("certificate"), "the body says why: {body}");
    let line = k.proxy.wait_for_log("the upstream-tls refusal", |l| l.contains("upstream-tls"));
    assert!(line.contains("UnknownIssuer") || line.contains("unknown issuer"), "rustls' words: {line}");
    assert!(wrong.requests().is_empty(), "no request reached the wrong origin: {:?}", wrong.requests());
    k.assert_clean("curl's output", &format!("{out}{err}"));
    k.assert_log_clean();
}

pub fn no_log_line_carries_a_value_with_trace_and_dump_on(rt: Runtime) {
    if !sealed(rt, "no_log_line_carries_a_value_with_trace_and_dump_on") {
        return;
    }
    let k = Keys::start(rt, &["--trace", "--dump", "text", "--log-level", "debug"]);
    let ph = k.ph("GH_TOKEN").to_string();
    for (url, auth) in [
        ("https://api.github.test/echo", format!("Authorization: Bearer {ph}")),
        ("https://api.github.test/user", format!("X-Api-Key: {KEY_PLACEHOLDER}")),
        ("https://github.test/me/proj.git/info/refs?service=git-upload-pack", format!("Authorization: Basic {}", base64(&format!("x:{}", k.ph("GIT_TOKEN"))))),
        ("https://other.test/leak", format!("Authorization: Bearer {ph}")),
    ] {
        let (code, out, err) = k.curl(url, &["-H", &auth]);
        assert_eq!(code, 0, "{url}: {out}{err}");
        k.assert_clean("curl's output", &format!("{out}{err}"));
    }
    let got = k.origin.request_for("/me/proj.git/info/refs?service=git-upload-pack");
    assert_eq!(header(&got, "Authorization"), Some(format!("Basic {}", base64(&format!("x:{REAL_GIT}")))), "{got}");
    let log = k.proxy.log();
    assert!(log.iter().any(|l| l.contains(" dump conn=")), "the dump is on:\n{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains(" trace ")), "the trace is on");
    let plain = log.iter().any(|l| l.contains(" dump conn=") && l.contains("GET /echo"));
    println!("{rt:?}: the dump shows the opened requests in clear text: {plain}");
    k.assert_log_clean();
}
