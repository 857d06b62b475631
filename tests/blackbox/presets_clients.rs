//! Presets against the real clients (issue 47): `pip install` with only
//! `to=@python`, `cargo fetch` (sparse index) with only `@rust`, `git clone`
//! with only `@github`, `npm install` with only `@node`, each from stand-ins
//! answering under the services' real names (tests/preset_origins.py, a
//! test CA, the test DNS), and each refused on a route holding every other
//! of the four presets but not its own. The clients reach the proxy by the
//! environment alone (HTTPS_PROXY and the like), with empty homes and caches.
//!
//! The stand-ins take port 443, so the case runs in a network namespace of
//! its own (`sealed`): its own loopback, nothing leaving the machine.

use super::keys_peers::{pki, Origin};
use super::*;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;

/// Every name the stand-ins answer under (all on 127.0.0.1).
const NAMES: [&str; 6] = ["pypi.org", "files.pythonhosted.org", "index.crates.io", "static.crates.io", "github.com", "registry.npmjs.org"];
const PRESETS: [&str; 4] = ["@python", "@rust", "@github", "@node"];

/// One client: its preset, the names it reaches (exactly: the log must show
/// these and no other), and the file its success leaves, with a line of it.
struct Client {
    preset: &'static str,
    reaches: &'static [&'static str],
    leaves: &'static str,
    holding: &'static str,
}

const CLIENTS: [Client; 4] = [
    Client { preset: "@python", reaches: &["pypi.org", "files.pythonhosted.org"], leaves: "site/wasiter_probe/__init__.py", holding: "from the stand-in" },
    Client { preset: "@rust", reaches: &["index.crates.io", "static.crates.io"], leaves: "proj/Cargo.lock", holding: "name = \"wasiter-probe\"" },
    Client { preset: "@github", reaches: &["github.com"], leaves: "clone/README", holding: "probe" },
    Client { preset: "@node", reaches: &["registry.npmjs.org"], leaves: "app/node_modules/wasiter-probe/index.js", holding: "from the stand-in" },
];

/// The interpreter behind `python3` (a pyenv shim needs a HOME the
/// clients do not get).
fn python() -> String {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The toolchain's own cargo and rustc (rustup's proxies need a HOME too).
fn cargo() -> (PathBuf, PathBuf) {
    let cargo = PathBuf::from(env!("CARGO"));
    let rustc = cargo.with_file_name("rustc");
    (cargo.clone(), if rustc.exists() { rustc } else { PathBuf::from("rustc") })
}

/// Run `client` in `work` (made empty) through the proxy at `proxy`, trusting
/// only `ca`: (succeeded, what it printed). Only the variables set here.
fn install(client: &Client, work: &Path, proxy: SocketAddr, ca: &Path) -> (bool, String) {
    std::fs::create_dir_all(work.join("home")).unwrap();
    let ca = ca.to_str().unwrap();
    // `timeout`: a client that hangs fails the case, never holds it.
    let mut cmd = Command::new("timeout");
    cmd.arg("120").current_dir(work).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", work.join("home"));
    let url = format!("http://{proxy}");
    for var in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        cmd.env(var, &url);
    }
    match client.preset {
        "@python" => {
            // -vv: pip says why it could not fetch the index (the 403) only at debug level.
            cmd.args([&python(), "-m", "pip", "install", "-vv", "--no-deps", "--no-cache-dir", "--disable-pip-version-check", "--retries", "0", "--cert", ca]);
            cmd.args(["--index-url", "https://pypi.org/simple", "--target", "site", "wasiter-probe"]);
        }
        "@rust" => {
            std::fs::create_dir_all(work.join("proj/src")).unwrap();
            let manifest = "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nwasiter-probe = \"0.1\"\n";
            std::fs::write(work.join("proj/Cargo.toml"), manifest).unwrap();
            std::fs::write(work.join("proj/src/lib.rs"), "").unwrap();
            let (cargo, rustc) = cargo();
            cmd.env("CARGO_HOME", work.join("cargo-home")).env("RUSTC", rustc).env("CARGO_HTTP_CAINFO", ca).env("CARGO_NET_RETRY", "0");
            cmd.env("CARGO_REGISTRIES_CRATES_IO_PROTOCOL", "sparse");
            cmd.arg(cargo).args(["fetch", "--manifest-path", "proj/Cargo.toml"]);
        }
        "@github" => {
            cmd.env("GIT_SSL_CAINFO", ca).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_TERMINAL_PROMPT", "0");
            cmd.args(["git", "clone", "https://github.com/wasiter/probe.git", "clone"]);
        }
        _ => {
            std::fs::create_dir_all(work.join("app")).unwrap();
            std::fs::write(work.join("app/package.json"), r#"{"name": "app", "version": "1.0.0"}"#).unwrap();
            cmd.current_dir(work.join("app"));
            cmd.args(["npm", "install", "--registry", "https://registry.npmjs.org/", "--cafile", ca, "--cache", "../npm-cache"]);
            cmd.args(["--no-audit", "--no-fund", "--no-update-notifier", "--fetch-retries=0", "wasiter-probe"]);
        }
    }
    let out = cmd.stdin(Stdio::null()).output().expect("timeout (coreutils)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// npm is the one client a machine may lack: its part is skipped, loudly.
fn has_npm() -> bool {
    Command::new("npm").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

pub fn pip_cargo_git_and_npm_install_with_their_preset_alone(rt: Runtime) {
    let npm = has_npm();
    if !npm {
        // Here, before the sealed run, whose output only a failure shows.
        println!("SKIPPED: {rt:?}: npm not found (the other clients run)");
    }
    if !sealed(rt, "pip_cargo_git_and_npm_install_with_their_preset_alone") {
        return;
    }
    let dir = TempDir::new("presets");
    let d = dir.path();
    std::fs::create_dir_all(d.join("pki")).unwrap();
    pki(&d.join("pki"), "testca", "origin", &NAMES);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/preset_origins.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--listen", "127.0.0.1:443", "--cert"]).arg(d.join("pki/origin.pem")).arg("--key").arg(d.join("pki/origin.key")).arg("--dir").arg(d);
    let origin = Origin::spawn(cmd, "tests/preset_origins.py");
    let dns = DnsServer::start(&NAMES.map(|n| (n, "127.0.0.1")), &[], &[]);
    // Per client, a route with its preset alone, then one with the three others.
    let mut routes = Vec::new();
    for c in &CLIENTS {
        let others: Vec<&str> = PRESETS.into_iter().filter(|p| *p != c.preset).collect();
        for to in [c.preset.to_string(), others.join(",")] {
            routes.push(format!("127.0.0.1:0=forward;to={to};to-net=127.0.0.0/8"));
        }
    }
    let resolver = dns.addr();
    let mut args = vec!["--resolver", &resolver];
    for route in &routes {
        args.extend(["--route", route]);
    }
    let (mut p, addrs) = Proxy::start_routes(rt, routes.len(), &[], &args);
    let ca = d.join("pki/testca.pem");
    let mut ran = Vec::new();
    for (i, c) in CLIENTS.iter().enumerate() {
        if c.preset == "@node" && !npm {
            continue;
        }
        let (with, without) = (addrs[2 * i], addrs[2 * i + 1]);
        let work = d.join(format!("{}-with", &c.preset[1..]));
        let (ok, said) = install(c, &work, with, &ca);
        assert!(ok, "{} with to={} alone: {said}", c.preset, c.preset);
        let left = std::fs::read_to_string(work.join(c.leaves)).unwrap_or_default();
        assert!(left.contains(c.holding), "{}: {} holds {:?}: {left:?}", c.preset, c.leaves, c.holding);
        for host in c.reaches {
            origin.wait_for(&format!("a request to {host}"), |r| r["host"] == *host && r["status"] == 200);
        }
        let work = d.join(format!("{}-without", &c.preset[1..]));
        let (ok, said) = install(c, &work, without, &ca);
        assert!(!ok && said.contains("403"), "{} without its preset must fail with the proxy's 403: {said}", c.preset);
        let host = format!("{}:443", c.reaches[0]);
        let route = without.to_string();
        p.wait_for_log(&format!("{host} refused on {route}"), |l| {
            let r = record(l);
            l.contains(" decision ") && r.get("route") == Some(&route) && r.get("host") == Some(&host) && r.get("rule").is_some_and(|v| v == "not-listed")
        });
        ran.push((c, with.to_string(), route));
    }
    // Every line is in by now (the last refusal was the last line waited
    // for): each route's decisions, by the names they were about.
    let log = p.log();
    let decided = |route: &str| -> Vec<HashMap<String, String>> {
        log.iter().filter(|l| l.contains(" decision conn=")).map(|l| record(l)).filter(|r| r.get("route").is_some_and(|v| v == route)).collect()
    };
    for (c, with, without) in ran {
        let allowed = decided(&with);
        let names: BTreeSet<&str> = allowed.iter().map(|r| r["host"].trim_end_matches(":443")).collect();
        assert_eq!(names, c.reaches.iter().copied().collect(), "{} reached exactly these names: {allowed:?}", c.preset);
        assert!(allowed.iter().all(|r| r["decision"] == "allow" && r["rule"] == "listed"), "{allowed:?}");
        let refused = decided(&without);
        assert!(refused.iter().all(|r| r["decision"] == "deny" && r["rule"] == "not-listed"), "{}: {refused:?}", c.preset);
        assert!(!log.iter().any(|l| l.contains(" open ") && l.contains(&format!("route={without} "))), "nothing was opened without {}", c.preset);
    }
}
