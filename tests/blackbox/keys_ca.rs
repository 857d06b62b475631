//! Issue 45's CA, secrets file and reload: `--make-ca` makes the CA once
//! and keeps it; the leaf a client gets is issued by it, for the name asked,
//! short-lived; a secrets file others can read is refused at start; a
//! changed secrets file is picked up on a connection kept open across the
//! reload.

use super::keys_peers::*;
use super::keys_rules::x509;
use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

pub fn the_ca_is_made_once_and_its_leaves_are_short_lived(rt: Runtime) {
    if !sealed(rt, "the_ca_is_made_once_and_its_leaves_are_short_lived") {
        return;
    }
    let k = Keys::start(rt, &[]);
    let d = k.dir.path();
    // --make-ca: makes the key (owner only) and the certificate, exits 0.
    let made = d.join("made");
    std::fs::create_dir_all(&made).unwrap();
    let make = |dir: &Path| {
        let out = rt.command_in(Some(d), &[], &["--make-ca", dir.to_str().unwrap()]).stdin(Stdio::null()).output().expect("runtime starts");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, said) = make(&made);
    assert!(ok, "--make-ca: {said}");
    let (key, cert) = (std::fs::read(made.join("ca-key.pem")).expect("ca-key.pem"), std::fs::read(made.join("ca.pem")).expect("ca.pem"));
    if rt == Runtime::Native {
        let mode = std::fs::metadata(made.join("ca-key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is the proxy's user's alone");
    }
    let (ok, _) = x509(&String::from_utf8_lossy(&cert), &["-subject"]);
    assert!(ok, "ca.pem is a certificate");
    // A second run keeps it, and says so.
    let (ok, said) = make(&made);
    assert!(ok, "--make-ca again: {said}");
    assert_eq!((std::fs::read(made.join("ca-key.pem")).unwrap(), std::fs::read(made.join("ca.pem")).unwrap()), (key, cert), "the CA is kept");
    let lower = said.to_lowercase();
    assert!(lower.contains("kept") || lower.contains("exist") || lower.contains("already"), "it says the CA was kept: {said}");
    // The proxy made its own at start (--ca DIR absent): the same layout.
    let ca_dir = d.join("ca");
    assert!(ca_dir.join("ca-key.pem").exists() && ca_dir.join("ca.pem").exists(), "the proxy made its CA at start");
    if rt == Runtime::Native {
        assert_eq!(std::fs::metadata(ca_dir.join("ca-key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // A leaf as the client receives it: issued by that CA, for the name
    // asked, short-lived.
    let out = Command::new("openssl")
        .args(["s_client", "-proxy", &k.proxy.addr.to_string(), "-connect", "api.github.test:443", "-servername", "api.github.test"])
        .arg("-CAfile")
        .arg(ca_dir.join("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Verify return code: 0 (ok)"), "the leaf verifies against the CA: {text}{}", String::from_utf8_lossy(&out.stderr));
    let pem = match (text.find("-----BEGIN CERTIFICATE-----"), text.find("-----END CERTIFICATE-----")) {
        (Some(a), Some(b)) => text[a..b + 25].to_string() + "\n",
        _ => panic!("no certificate: {text}"),
    };
    let (_, issuer) = x509(&pem, &["-issuer"]);
    let (_, subject) = x509(&String::from_utf8_lossy(&std::fs::read(ca_dir.join("ca.pem")).unwrap()), &["-subject"]);
    assert_eq!(issuer.trim_start_matches("issuer="), subject.trim_start_matches("subject="), "issued by the proxy's CA");
    let (_, san) = x509(&pem, &["-ext", "subjectAltName"]);
    assert!(san.contains("DNS:api.github.test"), "names the name asked: {san}");
    let (lives_an_hour, _) = x509(&pem, &["-checkend", "3600"]);
    let (lives_a_week, _) = x509(&pem, &["-checkend", "604800"]);
    assert!(lives_an_hour && !lives_a_week, "valid now, gone within days: {}", x509(&pem, &["-dates"]).1);
}

pub fn a_secrets_file_others_can_read_is_refused_at_start(rt: Runtime) {
    if rt != Runtime::Native {
        // WASI shows no file mode or owner: scripts/run and the launchers
        // check the file before the module starts.
        println!("SKIPPED: {rt:?}: WASI shows no mode or owner; the launcher (scripts/run) checks the secrets file");
        return;
    }
    let dir = TempDir::new("keys-mode");
    let file = dir.path().join("secrets");
    write_private(&file, &secrets_file());
    let route = "127.0.0.1:0=forward;to=api.github.test;ports=443;open=api.github.test";
    let ca = dir.path().join("ca");
    let env_owned: Vec<(&str, String)> = env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let args = ["--route", route, "--ca", ca.to_str().unwrap(), "--secrets", file.to_str().unwrap()];
    // A refusal exits at once; a proxy that starts anyway is stopped after
    // PATIENCE and fails the case.
    let start = || {
        let mut child = rt.command(&env_owned, &args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let env_ref: Vec<(&str, &str)> = env().into_iter().collect();
    let good = Proxy::start_routes(rt, 1, &env_ref, &args);
    drop(good);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = start();
    assert_eq!(code, Some(2), "readable by others: refused as a configuration error: {err}");
    assert!(!err.contains(" start listen="), "refused before anything is bound: {err}");
    let line = err.trim_end().lines().last().unwrap_or_default();
    assert!(line.contains(&file.display().to_string()) && line.contains("0644"), "a line naming the file and its mode: {err}");
    // Not the proxy's user's: refused, saying both.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    let (code, err) = start();
    let uid = unsafe { libc::getuid() };
    assert_ne!(code, Some(0), "another user's file: refused");
    assert!(err.contains("65534") && err.contains(&uid.to_string()), "both uids: {err}");
}

pub fn a_changed_secrets_file_is_used_on_a_connection_kept_open(rt: Runtime) {
    if !sealed(rt, "a_changed_secrets_file_is_used_on_a_connection_kept_open") {
        return;
    }
    // Both files give the same placeholder, so that the client keeps it.
    let ph = "ghp_PlaceholderKeptAcrossTheReload000000";
    let v1 = format!("GH_TOKEN value=env:REAL_GH to=api.github.test as=bearer placeholder={ph}\n");
    let v2 = format!("# rotated\nGH_TOKEN value=env:REAL_GH2 to=api.github.test as=bearer placeholder={ph}\n");
    let mut k = Keys::start_with(rt, &v1, &["--reload-interval", "100ms"]);
    assert_eq!(k.ph("GH_TOKEN"), ph);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys_client.py");
    let mut client = without_ca_settings(&mut Command::new("python3"))
        .arg(script)
        .args(["session", &k.proxy_url(), k.ca_pem().to_str().unwrap(), "api.github.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut to = client.stdin.take().unwrap();
    let mut from = BufReader::new(client.stdout.take().unwrap());
    let mut ask = |path: &str| {
        writeln!(to, "{}", serde_json::json!({"path": path, "headers": {"Authorization": format!("Bearer {ph}")}})).unwrap();
        let mut line = String::new();
        from.read_line(&mut line).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("the client's answer ({e}): {line:?}"));
        assert_eq!(answer["status"], 200, "{answer}");
    };
    ask("/before");
    assert_eq!(header(&k.origin.request_for("/before"), "Authorization"), Some(format!("Bearer {REAL_GH}")));
    let reloads = |p: &Proxy| p.log().iter().filter(|l| l.contains(" reload ")).count();
    let before = reloads(&k.proxy);
    write_private(&k.dir.path().join("secrets"), &v2);
    eventually("the reload of the changed secrets file", || reloads(&k.proxy) > before);
    // The same connection (the client never dials again): the new value.
    ask("/after");
    assert_eq!(header(&k.origin.request_for("/after"), "Authorization"), Some(format!("Bearer {REAL_GH2}")), "the next request carries the new value");
    drop(to);
    let _ = client.wait();
    k.proxy.assert_alive();
    assert!(!k.proxy.log().iter().any(|l| l.contains(" close ") && l.contains("reload")), "no connection was closed by the reload");
    k.assert_log_clean();
}
