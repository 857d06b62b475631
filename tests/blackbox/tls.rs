//! TLS inside the module: routes that terminate TLS (`cert=`, `key=`) in
//! front of plain servers, and routes that speak TLS to their upstreams
//! (`upstream-tls`, `upstream-ca=`), with certificates made by openssl, real
//! clients (curl verifying against the test CA, openssl s_client) and real
//! servers (nginx, over TLS or in clear text).

use super::*;

/// A terminating route's options for `name`'s certificate in `certs`.
fn cert_opts(certs: &Certs, name: &str) -> String {
    let (cert, key) = certs.leaf(name);
    format!("cert={};key={}", cert.display(), key.display())
}

/// Start with these routes, the certificates' folder readable in the sandbox.
fn start_in(rt: Runtime, certs: &Certs, routes: &[String]) -> Proxy {
    let args: Vec<&str> = routes.iter().flat_map(|r| ["--route", r.as_str()]).collect();
    Proxy::start_routes_in(rt, Some(certs.dir.path()), 1, &[], &args).0
}

/// curl over TLS to `name` at the proxy, trusting only the test CA.
fn https(certs: &Certs, p: &Proxy, name: &str, path: &str, more: &[&str]) -> (i32, String, String) {
    let resolve = format!("{name}:{}:127.0.0.1", p.addr.port());
    let url = format!("https://{name}:{}{path}", p.addr.port());
    let ca = certs.ca();
    let mut args = vec!["--cacert", ca.to_str().unwrap(), "--resolve", &resolve];
    args.extend_from_slice(more);
    args.push(&url);
    curl(&args)
}

pub fn tls_is_terminated_in_front_of_a_plain_server(rt: Runtime) {
    let certs = Certs::new(&["app.test"]);
    let big = pattern(8 << 20, 15);
    let web = nginx(&[("big", &big), ("index.html", b"plain server\n")]);
    let p = start_in(rt, &certs, &[format!("127.0.0.1:0=127.0.0.1:{};{}", web.port, cert_opts(&certs, "app.test"))]);
    assert!(p.log().iter().any(|l| l.contains(" start ") && l.contains("tls=")), "the start line names the certificate");
    // curl verified the certificate against the test CA: it is the route's.
    let (code, body, err) = https(&certs, &p, "app.test", "/", &["-w", " %{http_version}"]);
    assert_eq!((code, body.as_str()), (0, "plain server\n 1.1"), "{err}");
    // 8 MiB through rustls and the relay, byte for byte, in each TLS 1.3
    // suite (on the wasm builds AES-GCM is RustCrypto's, natively ring's).
    for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"] {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--tlsv1.3", "--tls13-ciphers", suite, "--cacert", certs.ca().to_str().unwrap()])
            .args(["--resolve", &format!("app.test:{}:127.0.0.1", p.addr.port())])
            .arg(format!("https://app.test:{}/big", p.addr.port()))
            .output()
            .expect("curl");
        assert!(out.status.success(), "{suite}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == big, "{suite}: 8 MiB arrived intact ({} bytes)", out.stdout.len());
    }
    // TLS 1.2 too, for older clients.
    let (code, body, err) = https(&certs, &p, "app.test", "/", &["--tls-max", "1.2"]);
    assert_eq!((code, body.as_str()), (0, "plain server\n"), "{err}");
}

/// The suite a terminating route picks for a client that lists AES-GCM
/// first, as every client with AES instructions does: on the wasm builds
/// ChaCha20-Poly1305 (software AES is several times slower there); natively
/// the client's choice. TLS 1.3 and 1.2 alike.
pub fn tls_the_server_picks_the_suite_its_runtime_is_fast_at(rt: Runtime) {
    let certs = Certs::new(&["app.test"]);
    let web = nginx(&[("index.html", b"plain server\n")]);
    let p = start_in(rt, &certs, &[format!("127.0.0.1:0=127.0.0.1:{};{}", web.port, cert_opts(&certs, "app.test"))]);
    let suite = |version: &str, list: &str, which: &str| -> String {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &p.addr.to_string(), "-servername", "app.test", version, which, list])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.contains("Cipher is ")).unwrap_or_else(|| panic!("no cipher in:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
        line.rsplit(' ').next().unwrap_or_default().to_string()
    };
    let wasm = rt != Runtime::Native;
    let tls13 = suite("-tls1_3", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", "-ciphersuites");
    assert_eq!(tls13, if wasm { "TLS_CHACHA20_POLY1305_SHA256" } else { "TLS_AES_128_GCM_SHA256" }, "TLS 1.3 on {rt:?}");
    let tls12 = suite("-tls1_2", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305", "-cipher");
    assert!(tls12.contains("CHACHA20") == wasm && (wasm || tls12.contains("AES128-GCM")), "TLS 1.2 on {rt:?}: {tls12}");
}

pub fn tls_certificates_are_chosen_by_the_name_asked(rt: Runtime) {
    let certs = Certs::new(&["app.test", "api.test"]);
    let app = nginx(&[("index.html", b"app\n")]);
    let api = nginx(&[("index.html", b"api\n")]);
    let listen = format!("127.0.0.1:{}", free_port());
    let routes = [
        format!("{listen}=127.0.0.1:{};sni=app.test;{}", app.port, cert_opts(&certs, "app.test")),
        format!("{listen}=127.0.0.1:{};sni=api.test;{}", api.port, cert_opts(&certs, "api.test")),
    ];
    let p = start_in(rt, &certs, &routes);
    // Each client verified its name's own certificate, and reached its server.
    assert_eq!(https(&certs, &p, "app.test", "/", &[]), (0, "app\n".into(), String::new()));
    assert_eq!(https(&certs, &p, "api.test", "/", &[]), (0, "api\n".into(), String::new()));
    let (code, _, err) = https(&certs, &p, "nope.test", "/", &[]);
    assert_ne!(code, 0, "no route for nope.test: {err}");
}

pub fn tls_alpn_h2_goes_to_the_route_that_offers_it(rt: Runtime) {
    let certs = Certs::new(&["app.test"]);
    let h2 = nginx_h2c("h2 backend");
    let h1 = nginx(&[("index.html", b"http/1.1 backend\n")]);
    let listen = format!("127.0.0.1:{}", free_port());
    let c = cert_opts(&certs, "app.test");
    let routes = [format!("{listen}=127.0.0.1:{};alpn=h2;{c}", h2.port), format!("{listen}=127.0.0.1:{};{c}", h1.port)];
    let p = start_in(rt, &certs, &routes);
    // curl --http2 offers h2: that route takes it, offers h2 back, and its
    // backend speaks h2 in clear text.
    let (code, body, err) = https(&certs, &p, "app.test", "/", &["--http2", "-w", " %{http_version}"]);
    assert_eq!((code, body.as_str()), (0, "h2 backend\n 2"), "{err}");
    let (code, body, err) = https(&certs, &p, "app.test", "/", &["--http1.1", "-w", " %{http_version}"]);
    assert_eq!((code, body.as_str()), (0, "http/1.1 backend\n 1.1"), "{err}");
}

pub fn tls_garbage_instead_of_a_client_hello_gets_an_alert(rt: Runtime) {
    let certs = Certs::new(&["app.test"]);
    let web = nginx(&[("index.html", b"still here\n")]);
    let mut p = start_in(rt, &certs, &[format!("127.0.0.1:0=127.0.0.1:{};{}", web.port, cert_opts(&certs, "app.test"))]);
    let mut s = connect(p.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&0x15), "a TLS alert record, not an HTTP answer: {answer:?}");
    let line = p.wait_for_log("the close line", |l| l.contains("reason=tls"));
    assert!(record(&line).get("error").is_some_and(|e| !e.is_empty()), "{line}");
    p.assert_alive();
    assert_eq!(https(&certs, &p, "app.test", "/", &[]).1, "still here\n", "the next client is served");
}

pub fn tls_to_the_upstream_is_verified_against_its_ca(rt: Runtime) {
    let certs = Certs::new(&["backend.test"]);
    let other = Certs::new(&["backend.test"]); // the same name, another CA
    let backend = nginx_tls(&certs, "backend.test", false, "tls backend");
    // One folder, readable in the sandbox, holds both CAs.
    let cas = TempDir::new("cas");
    let (good, wrong) = (cas.path().join("good.pem"), cas.path().join("wrong.pem"));
    std::fs::copy(certs.ca(), &good).unwrap();
    std::fs::copy(other.ca(), &wrong).unwrap();
    let route = |ca: &Path| format!("127.0.0.1:0=127.0.0.1:{};upstream-ca={};upstream-name=backend.test", backend.port, ca.display());
    let (good, wrong) = (route(&good), route(&wrong));
    let (mut p, addrs) = Proxy::start_routes_in(rt, Some(cas.path()), 2, &[], &["--route", &good, "--route", &wrong]);
    // A plain client; the proxy speaks TLS onward and checks the server.
    let (code, body, err) = curl(&[&format!("http://{}/", addrs[0])]);
    assert_eq!((code, body.as_str()), (0, "tls backend\n"), "{err}");
    // Another CA: refused, logged, and the client closed with nothing.
    let (code, body, _) = curl(&[&format!("http://{}/", addrs[1])]);
    assert!(code != 0 && body.is_empty(), "a server not signed by upstream-ca= is refused ({code})");
    let line = p.wait_for_log("the refusal", |l| l.contains("reason=upstream-tls"));
    assert!(record(&line)["error"].contains("invalid peer certificate"), "{line}");
    p.assert_alive();
}

pub fn tls_an_expired_upstream_certificate_is_refused(rt: Runtime) {
    let certs = Certs::new(&[]);
    let (cert, key) = certs.expired("old.test");
    let backend = nginx_tls_with(&cert, &key, false, "expired backend");
    let route = format!("127.0.0.1:0=127.0.0.1:{};upstream-ca={};upstream-name=old.test", backend.port, certs.ca().display());
    let (mut p, _) = Proxy::start_routes_in(rt, Some(certs.dir.path()), 1, &[], &["--route", &route]);
    let (code, body, _) = curl(&[&format!("http://{}/", p.addr)]);
    assert!(code != 0 && body.is_empty(), "an expired certificate is refused ({code}): {body}");
    let line = p.wait_for_log("the refusal", |l| l.contains("reason=upstream-tls"));
    assert!(record(&line)["error"].contains("expired"), "{line}");
    p.assert_alive();
}
