//! The peers of the keys cases (issue 45): a test CA standing for the
//! system's roots (the proxy gets it through `--upstream-ca`), an origin on
//! 127.0.0.1:443 with a certificate for several names that records every
//! request (tests/keys_origin.py: JSON, `/echo`, `git http-backend` behind
//! Basic auth), a second origin whose certificate comes from an unrelated CA,
//! and the proxy started with `--ca`, `--upstream-ca` and `--secrets`.
//!
//! Opened names are for port 443 only, so every keys case runs in a network
//! namespace of its own (`sealed`): its own loopback, its own port 443.

use super::*;
use std::path::PathBuf;
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::Mutex;

/// The real values: the proxy's environment has them, the sandbox never.
pub const REAL_GH: &str = "ghp_R3alV4lueNeverInTheSandbox0123456789";
pub const REAL_GIT: &str = "ghp_G1tV4lueNeverInTheSandboxAbCdEf98765";
/// What GH_TOKEN's value becomes when the reload case changes the file.
pub const REAL_GH2: &str = "ghp_N3wV4lueAfterTheReloadNeverSeen01234";
pub const REAL_KEY: &str = "REALKEYvalue9876543210zyxwvutsrq";
/// API_KEY's placeholder, given (`placeholder=`): letters and digits, so
/// that it can stand in a host name.
pub const KEY_PLACEHOLDER: &str = "keyplaceholder0123456789abcdefgh";

/// What the proxy may ask of GitHub: read everything, write one repository.
pub const RULES: &str = "api.github.test/**:GET|HEAD,api.github.test/repos/me/proj/**:POST|PATCH|PUT|DELETE,\
github.test/*/*/info/refs:GET,github.test/*/*/git-upload-pack:POST,github.test/me/proj.git/git-receive-pack:POST,github.test/echo:GET";

/// The secrets file of most cases.
pub fn secrets_file() -> String {
    format!(
        "# GitHub's API with a bearer token; git with the token as a Basic password.\n\
         GH_TOKEN value=env:REAL_GH to=api.github.test as=bearer\n\n\
         GIT_TOKEN value=env:REAL_GIT to=github.test as=basic\n\
         API_KEY value=env:REAL_KEY to=api.github.test as=header:X-Api-Key placeholder={KEY_PLACEHOLDER}\n"
    )
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA `ca` and a leaf `leaf` it signed for `names` (EC P-256, 2 days).
pub fn pki(dir: &Path, ca: &str, leaf: &str, names: &[&str]) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let subj = format!("/CN={ca}");
    let (ca_key, ca_pem) = (format!("{ca}.key"), format!("{ca}.pem"));
    openssl(dir, &[&["req", "-x509"], &ec[..], &["-days", "2", "-subj", &subj, "-keyout", &ca_key, "-out", &ca_pem]].concat());
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let ext = format!("{leaf}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName={}\nbasicConstraints=critical,CA:FALSE\n", san.join(","))).unwrap();
    let (key, csr, pem, subj) = (format!("{leaf}.key"), format!("{leaf}.csr"), format!("{leaf}.pem"), format!("/CN={}", names[0]));
    openssl(dir, &[&["req", "-new"], &ec[..], &["-subj", &subj, "-keyout", &key, "-out", &csr]].concat());
    openssl(dir, &["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial", "-days", "2", "-extfile", &ext, "-out", &pem]);
}

/// tests/keys_origin.py on `ip`: TLS on 443 (and clear text on 80 with
/// `plain`); `requests()` is what it received, in order. Killed on drop.
pub struct Origin {
    child: Child,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Origin {
    pub fn start(ip: &str, cert: &Path, key: &Path, token: &str, plain: bool, git_root: Option<&Path>) -> Origin {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys_origin.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg("--listen").arg(format!("{ip}:443")).arg("--cert").arg(cert).arg("--key").arg(key).args(["--token", token]);
        if plain {
            cmd.args(["--plain", "80"]);
        }
        if let Some(root) = git_root {
            cmd.arg("--git-root").arg(root);
        }
        Self::spawn(cmd, "tests/keys_origin.py")
    }

    /// `cmd` (a script that prints `ready`, then a JSON line per request).
    pub fn spawn(mut cmd: Command, what: &str) -> Origin {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(ready, "ready", "{what} did not start");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(serde_json::from_str(&line).unwrap_or(Value::String(line)));
            }
        });
        Origin { child, log }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    /// The first request that `pred` accepts, once it has arrived.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(Instant::now() < deadline, "the origin never received {what}; it received: {:#?}", self.requests());
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The request for `path` (exactly, query included).
    pub fn request_for(&self, path: &str) -> Value {
        self.wait_for(path, |r| r["path"] == path)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request's header (first of that name, any case).
pub fn header(request: &Value, name: &str) -> Option<String> {
    request["headers"].as_array()?.iter().find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))).and_then(|h| h[1].as_str().map(str::to_string))
}

/// Everything a keys case needs: its directory (mapped into the sandbox of
/// the wasm runtimes), the DNS peer, the origin, the proxy, the placeholders.
pub struct Keys {
    pub dir: TempDir,
    pub dns: DnsServer,
    pub origin: Origin,
    pub proxy: Proxy,
    pub placeholders: HashMap<String, String>,
}

impl Keys {
    /// The proxy with the usual route and secrets file, and `more` flags.
    pub fn start(rt: Runtime, more: &[&str]) -> Keys {
        Self::start_with(rt, &secrets_file(), more)
    }

    pub fn start_with(rt: Runtime, secrets: &str, more: &[&str]) -> Keys {
        let dir = TempDir::new("keys");
        let d = dir.path();
        std::fs::create_dir_all(d.join("pki")).unwrap();
        pki(&d.join("pki"), "testca", "origin", &["api.github.test", "github.test", "registry.test", "other.test"]);
        pki(&d.join("pki"), "unrelated", "wrong", &["wrong.test"]);
        let git_root = bare_repositories(d);
        let origin = Origin::start("127.0.0.1", &d.join("pki/origin.pem"), &d.join("pki/origin.key"), REAL_GIT, true, Some(&git_root));
        let names = ["api.github.test", "github.test", "registry.test", "other.test", "wrong.test"];
        let mut records: Vec<(&str, &str)> = names.iter().map(|n| (*n, if *n == "wrong.test" { "127.0.0.2" } else { "127.0.0.1" })).collect();
        let leak = format!("{KEY_PLACEHOLDER}.other.test");
        records.push((&leak, "127.0.0.1"));
        let dns = DnsServer::start(&records, &[], &[]);
        write_private(&d.join("secrets"), secrets);
        let route = format!(
            "127.0.0.1:0=forward;to=api.github.test,github.test,registry.test,other.test,*.other.test,wrong.test;to-net=127.0.0.0/8;\
             ports=443,80;open=api.github.test,github.test,other.test,wrong.test;allow-http={RULES}"
        );
        std::fs::write(d.join("routes"), format!("{route}\n")).unwrap();
        let (ca, upstream, file, routes) = (d.join("ca"), d.join("pki/testca.pem"), d.join("secrets"), d.join("routes"));
        let mut args = vec!["--resolver".to_string(), dns.addr()];
        for (flag, path) in [("--routes-file", &routes), ("--ca", &ca), ("--upstream-ca", &upstream), ("--secrets", &file)] {
            args.push(flag.to_string());
            args.push(path.display().to_string());
        }
        args.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let placeholders = placeholders(rt, d, &file);
        let (mut proxy, _) = Proxy::start_routes_in(rt, Some(d), 1, &env(), &args);
        // The CA is made before anything is bound, and its own line says it
        // is there (a client that read only the start line would find it too).
        proxy.wait_for_log("the CA's line", |l| l.contains(" ca cert="));
        Keys { dir, dns, origin, proxy, placeholders }
    }

    pub fn ph(&self, name: &str) -> &str {
        self.placeholders.get(name).unwrap_or_else(|| panic!("no placeholder for {name}: {:?}", self.placeholders))
    }

    /// The CA's certificate, as the sandbox trusts it.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca/ca.pem")
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    /// The last status a curl `-D -` output shows (after a CONNECT's own 200).
    pub fn status(out: &str) -> u16 {
        let line = out.lines().rfind(|l| l.starts_with("HTTP/")).unwrap_or_else(|| panic!("no status line in: {out}"));
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status in {line}"))
    }

    /// curl through the proxy trusting its CA only: (exit, head and body, stderr).
    pub fn curl(&self, url: &str, more: &[&str]) -> (i32, String, String) {
        let ca = self.ca_pem();
        let proxy = self.proxy_url();
        let mut args = vec!["-x", proxy.as_str(), "--cacert", ca.to_str().unwrap(), "-D", "-"];
        args.extend_from_slice(more);
        args.push(url);
        curl(&args)
    }

    /// Panics if `text` (what the sandbox saw, or a log) holds a real value
    /// in any form the proxy could have sent it.
    pub fn assert_clean(&self, what: &str, text: &str) {
        for value in [REAL_GH, REAL_GH2, REAL_GIT, REAL_KEY] {
            // In base64 (Basic) after a user name of any length: the whole
            // triples of the value from each of the three alignments.
            let mut forms: Vec<String> = (0..3).map(|a| base64(&value[a..][..(value.len() - a) / 3 * 3])).collect();
            forms.push(value.to_string());
            forms.push(value.bytes().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")); // --dump=hex
            for form in &forms {
                assert!(!text.contains(form.as_str()), "{what} holds a real value ({form}):\n{text}");
            }
        }
    }

    /// No log line of the proxy carries a real value.
    pub fn assert_log_clean(&self) {
        self.assert_clean("the proxy's log", &self.proxy.log().join("\n"));
    }

    /// The decision line that refused with `rule`.
    pub fn denied_by(&mut self, rule: &str) -> HashMap<String, String> {
        let want = format!("rule={rule}");
        record(&self.proxy.wait_for_log(&format!("a deny decision by {rule}"), |l| l.contains(" decision ") && l.contains("decision=deny") && l.contains(&want)))
    }
}

/// The proxy's environment: where `value=env:` finds the real values.
pub fn env() -> Vec<(&'static str, &'static str)> {
    vec![("REAL_GH", REAL_GH), ("REAL_GH2", REAL_GH2), ("REAL_GIT", REAL_GIT), ("REAL_KEY", REAL_KEY)]
}

/// Write `text` to `path` with mode 0600 (as the proxy's user keeps it).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `wasiter --secrets FILE --placeholders`: NAME -> PLACEHOLDER, what a
/// launcher exports into the sandbox.
pub fn placeholders(rt: Runtime, dir: &Path, file: &Path) -> HashMap<String, String> {
    let env: Vec<(&str, String)> = env().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let out = rt.command_in(Some(dir), &env, &["--secrets", file.to_str().unwrap(), "--placeholders"]).stdin(Stdio::null()).output().expect("runtime starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "--placeholders failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let map: HashMap<String, String> = stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (name, value) in [("GH_TOKEN", REAL_GH), ("GIT_TOKEN", REAL_GIT), ("API_KEY", REAL_KEY)] {
        if let Some(ph) = map.get(name) {
            assert_eq!(ph.len(), value.len(), "{name}'s placeholder has the value's length: {ph}");
            assert_ne!(ph, value, "{name}'s placeholder is not its value");
        }
    }
    map
}

/// Bare repositories `me/proj.git` and `other/repo.git` under DIR/git, each
/// with one commit on main; pushes over HTTP are allowed.
fn bare_repositories(d: &Path) -> PathBuf {
    let root = d.join("git");
    let seed = d.join("seed");
    git_in(d, &["init", "-q", "-b", "main", seed.to_str().unwrap()]);
    std::fs::write(seed.join("README"), "first\n").unwrap();
    git_in(&seed, &["add", "README"]);
    git_in(&seed, &["commit", "-q", "-m", "first"]);
    for repo in ["me/proj.git", "other/repo.git"] {
        let bare = root.join(repo);
        git_in(d, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
        git_in(&bare, &["config", "http.receivepack", "true"]);
        git_in(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
    }
    root
}

/// git in `dir` with a home of its own (no user or system configuration).
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).env("HOME", dir).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_TERMINAL_PROMPT", "0");
    without_ca_settings(&mut cmd);
    cmd.env("GIT_AUTHOR_NAME", "t").env("GIT_AUTHOR_EMAIL", "t@t").env("GIT_COMMITTER_NAME", "t").env("GIT_COMMITTER_EMAIL", "t@t");
    cmd
}

/// Leave out the machine's CA settings (GIT_SSL_CAINFO outranks git's
/// http.sslCAInfo; SSL_CERT_FILE and the like would add the system roots):
/// a client trusts what its test gives it, nothing else.
pub fn without_ca_settings(cmd: &mut Command) -> &mut Command {
    for var in ["GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
        cmd.env_remove(var);
    }
    cmd
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir).args(args).output().expect("git must be installed");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard base64 with padding (what HTTP Basic uses).
pub fn base64(text: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}
