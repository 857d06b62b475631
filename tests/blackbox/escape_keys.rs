//! Keys the sandbox never holds, attacked from inside the sandbox (issue
//! 45): a client that holds a placeholder and wants the real value back, or
//! a method the rules refuse. The origin (tests/escape_keys_origin.py)
//! echoes the credential it gets where a redactor of the answer's content
//! alone would not look; the client reads the answer raw, as an injected
//! agent with a socket of its own would.

use super::*;
use std::process::{Child, Stdio};
use std::sync::Mutex;

const REAL: &str = "ghp_R3alV4lueNeverInTheSandbox0123456789";
const PLACEHOLDER: &str = "ghp_Pl4ceh0lderOnlyInTheSandbox987654321";

/// tests/escape_keys_origin.py on 127.0.0.1:`port`; `requests()` are the
/// heads it received (one JSON line each). Killed on drop.
struct Echoer {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Echoer {
    fn start(port: u16, dir: &Path) -> Echoer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/escape_keys_origin.py");
        let (cert, key) = (dir.join("origin.pem"), dir.join("origin.key"));
        let mut child = Command::new("python3").arg(script).arg(port.to_string()).arg(&cert).arg(&key).stdout(Stdio::piped()).spawn().expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"), "tests/escape_keys_origin.py did not start");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || lines.map_while(Result::ok).for_each(|l| sink.lock().unwrap().push(l)));
        Echoer { child, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The head it received for `path`, once it has.
    fn request_for(&self, path: &str) -> String {
        let want = format!("\"path\": \"{path}\"");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| r.contains(&want)) {
                return r;
            }
            assert!(Instant::now() < deadline, "the origin never got {path}: {:?}", self.requests());
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Echoer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl must be installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The origin's test CA (`testca.pem`, the proxy's `--upstream-ca`) and its
/// leaf for a.test (`origin.pem`, `origin.key`).
fn origin_pki(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(dir, &[&["req", "-x509"], &ec[..], &["-days", "2", "-subj", "/CN=testca", "-keyout", "testca.key", "-out", "testca.pem"]].concat());
    std::fs::write(dir.join("origin.ext"), "subjectAltName=DNS:a.test\nbasicConstraints=critical,CA:FALSE\n").unwrap();
    openssl(dir, &[&["req", "-new"], &ec[..], &["-subj", "/CN=a.test", "-keyout", "origin.key", "-out", "origin.csr"]].concat());
    openssl(dir, &["x509", "-req", "-in", "origin.csr", "-CA", "testca.pem", "-CAkey", "testca.key", "-CAcreateserial", "-days", "2", "-extfile", "origin.ext", "-out", "origin.pem"]);
}

/// A proxy that opens a.test (on the echoer's `port`), holds REAL for it
/// behind PLACEHOLDER, and lets it be asked GET and POST anywhere, DELETE
/// under /priv only; and the echoer. Dropped in this order: the directory
/// outlives both.
struct Case {
    proxy: Proxy,
    echoer: Echoer,
    dir: TempDir,
    port: u16,
}

fn start(rt: Runtime) -> Case {
    let dir = TempDir::new("escape-keys");
    let d = dir.path();
    origin_pki(d);
    let port = free_port();
    let echoer = Echoer::start(port, d);
    std::fs::write(d.join("hosts"), "127.0.0.1 a.test\n").unwrap();
    let secrets = d.join("secrets");
    std::fs::write(&secrets, format!("GH_TOKEN value=env:REAL_GH to=a.test as=bearer placeholder={PLACEHOLDER}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let route = format!("127.0.0.1:0=forward;to=a.test;to-net=127.0.0.0/8;ports={port};open=a.test;allow-http=a.test/**:GET|POST,a.test/priv/**:DELETE");
    let (ca, upstream, hosts) = (d.join("ca"), d.join("testca.pem"), d.join("hosts"));
    let args = ["--route", &route, "--hosts-file", hosts.to_str().unwrap(), "--ca", ca.to_str().unwrap(), "--upstream-ca", upstream.to_str().unwrap(), "--secrets", secrets.to_str().unwrap()];
    let (mut proxy, _) = Proxy::start_routes_in(rt, Some(d), 1, &[("REAL_GH", REAL)], &args);
    proxy.wait_for_log("the CA's line", |l| l.contains(" ca cert="));
    Case { proxy, echoer, dir, port }
}

/// curl through the proxy to a.test, trusting the proxy's CA: (exit, head and body, stderr).
fn ask(c: &Case, path: &str, more: &[&str]) -> (i32, String, String) {
    let (url, via, ca) = (format!("https://a.test:{}{path}", c.port), format!("http://{}", c.proxy.addr), c.dir.path().join("ca/ca.pem"));
    let mut args = vec!["-x", via.as_str(), "--cacert", ca.to_str().unwrap(), "-D", "-"];
    args.extend_from_slice(more);
    args.push(&url);
    curl(&args)
}

pub fn an_echo_in_chunk_extensions_trailers_or_a_compressed_body_never_reaches_the_sandbox(rt: Runtime) {
    let c = start(rt);
    let bearer = format!("Authorization: Bearer {PLACEHOLDER}");
    // Read raw: chunk extensions and trailers as the origin sent them.
    let (code, out, err) = ask(&c, "/ext", &["--raw", "-H", &bearer]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(c.echoer.request_for("/ext").contains(&format!("Bearer {REAL}")), "the origin got the real value: {:?}", c.echoer.requests());
    assert!(!out.contains(REAL), "the value came back in the answer's chunked framing:\n{out}");
    assert!(out.contains(&format!(";echo=Bearer_{PLACEHOLDER}\r\n")) && out.contains(&format!("X-Echo: Bearer {PLACEHOLDER}\r\n")), "the placeholder in its place: {out}");
    // The client asks for gzip, which would hide the echo from a redactor
    // of bytes: the origin is asked for the answer uncompressed.
    let (code, out, err) = ask(&c, "/echo", &["--compressed", "-H", &bearer]);
    assert_eq!(code, 0, "{out}{err}");
    let got = c.echoer.request_for("/echo");
    assert!(got.contains("[\"Accept-Encoding\", \"identity\"]") && !got.contains("gzip"), "the origin was asked for no compression: {got}");
    assert!(!out.contains(REAL) && out.contains(&format!("Bearer {PLACEHOLDER}")), "{out}");
    assert!(!c.proxy.log().join("\n").contains(REAL), "the proxy's log holds the value");
}

pub fn a_method_override_header_meets_the_method_rules(rt: Runtime) {
    let mut c = start(rt);
    let (code, out, err) = ask(&c, "/x", &["-X", "POST", "-d", "", "-H", "X-HTTP-Method-Override: DELETE"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("403 Forbidden") && out.contains("DELETE /x to a.test is allowed by no rule"), "{out}");
    c.proxy.wait_for_log("the refusal", |l| l.contains(" decision ") && l.contains("rule=http-rule"));
    for (path, header) in [("/priv/x", "X-HTTP-Method: DELETE"), ("/y", "X-Method-Override: GET")] {
        let (code, out, err) = ask(&c, path, &["-X", "POST", "-d", "", "-H", header]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("200 OK"), "{header} on {path}, which the rules allow: {out}");
        c.echoer.request_for(path);
    }
    assert!(!c.echoer.requests().iter().any(|r| r.contains("\"path\": \"/x\"")), "the refused request reached the origin: {:?}", c.echoer.requests());
}
