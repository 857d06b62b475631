//! A parent proxy: squid (from Debian's packages) as the company's proxy
//! in front of every way out, with and without a login, and wasiter's
//! allowlist in front of it. Checked first here, then chained: a tunnel
//! (CONNECT or SOCKS5) becomes a CONNECT to squid, a plain request goes to
//! it in absolute form, and the names of `direct=` skip it. What squid saw
//! is read from its own access log.

use super::*;
use std::path::PathBuf;

/// squid on 127.0.0.1 as a parent: every port allowed (CONNECT too), names
/// resolved from `hosts` alone, an access log, and with `login` a Basic
/// login (an htpasswd file, basic_ncsa_auth) for every request.
struct Squid {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
    _dir: Option<TempDir>,
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Squid {
    fn start(hosts: &[&str], login: Option<(&str, &str)>) -> Squid {
        let dir = TempDir::new("squid-parent");
        let root = dir.path().to_path_buf();
        // squid runs as the `proxy` user when started as root: its files must be open to it.
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        std::fs::write(root.join("hosts"), hosts.iter().map(|h| format!("127.0.0.1 {h}\n")).collect::<String>()).unwrap();
        let log = root.join("access.log");
        let auth = match login {
            Some((user, pass)) => {
                let hash = Command::new("openssl").args(["passwd", "-apr1", pass]).output().expect("openssl");
                std::fs::write(root.join("passwd"), format!("{user}:{}", String::from_utf8_lossy(&hash.stdout).trim())).unwrap();
                format!(
                    "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\nauth_param basic realm parent\nacl login proxy_auth REQUIRED\nhttp_access deny !login\n",
                    root.join("passwd").display()
                )
            }
            None => String::new(),
        };
        // squid binds its port a moment after it starts: another test may
        // take the same free port first. It is ours only if squid answers.
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "http_port 127.0.0.1:{port}\nhosts_file {hosts}\ndns_nameservers 127.0.0.1\nacl refused port 9\nhttp_access deny refused\n{auth}http_access allow localhost\nhttp_access deny all\n\
                 cache deny all\naccess_log stdio:{log}\ncache_log /dev/null\ncache_store_log none\npid_filename none\nworkers 1\nshutdown_lifetime 0 seconds\n\
                 coredump_dir {root}\n",
                hosts = root.join("hosts").display(),
                log = log.display(),
                root = root.display(),
            );
            std::fs::write(root.join("squid.conf"), conf).unwrap();
            let child = Command::new("squid")
                .args(["-N", "-f"])
                .arg(root.join("squid.conf"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("squid (Debian's squid package; scripts/setup --peers installs it)");
            let mut squid = Squid { child, port, log: log.clone(), _dir: None };
            wait_port(port);
            let mut probe = connect(SocketAddr::from(([127, 0, 0, 1], port)));
            let _ = probe.write_all(b"GET cache_object://localhost/ HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = probe.read_to_string(&mut answer);
            if answer.to_ascii_lowercase().contains("squid") {
                squid._dir = Some(dir);
                return squid;
            }
        }
        panic!("squid did not start on a free port in 5 tries");
    }

    fn url(&self, login: &str) -> String {
        format!("http://{login}127.0.0.1:{}", self.port)
    }

    /// squid's access log so far (it writes each line as a request ends).
    fn saw(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn a_parent_proxy_carries_what_the_allowlist_lets_through(rt: Runtime) {
    let certs = Certs::new(&["name.test"]);
    let tls = nginx_tls(&certs, "name.test", false, "tls via the parent");
    let web = nginx(&[("index.html", b"plain via the parent\n")]);
    let squid = Squid::start(&["name.test", "web.test"], None);
    // wasiter's own resolver knows only the direct name and the parent's.
    let dns = DnsServer::start(&[("direct.test", "127.0.0.1")], &[], &[]);
    let opts = format!(
        "to=name.test,web.test,direct.test;to-net=127.0.0.0/8;ports={},{};parent={};direct=direct.test",
        tls.port,
        web.port,
        squid.url("")
    );
    let mut p = forward(rt, &opts, &dns.addr(), &[]);
    let ca = certs.ca();
    let proxy = format!("http://{}", p.addr);
    // CONNECT, through squid's CONNECT; TLS end to end.
    let (code, body, err) = curl(&["-x", &proxy, "--cacert", ca.to_str().unwrap(), &format!("https://name.test:{}/", tls.port)]);
    assert_eq!((code, body.as_str()), (0, "tls via the parent\n"), "{err}");
    // SOCKS5, the same way.
    let (code, body, err) = curl(&["--socks5-hostname", &p.addr.to_string(), "--cacert", ca.to_str().unwrap(), &format!("https://name.test:{}/", tls.port)]);
    assert_eq!((code, body.as_str()), (0, "tls via the parent\n"), "{err}");
    // A plain request, in absolute form to squid.
    let (code, body, err) = curl(&["-x", &proxy, &format!("http://web.test:{}/index.html", web.port)]);
    assert_eq!((code, body.as_str()), (0, "plain via the parent\n"), "{err}");
    // A direct name, beside them: looked up by wasiter, never shown to squid.
    let (code, body, err) = curl(&["-x", &proxy, &format!("http://direct.test:{}/index.html", web.port)]);
    assert_eq!((code, body.as_str()), (0, "plain via the parent\n"), "{err}");
    // A name the allowlist refuses never reaches the parent.
    let (code, body, _) = curl(&["-x", &proxy, "-s", "-o", "-", "-w", "%{http_code}", &format!("http://evil.test:{}/", web.port)]);
    assert!(code == 0 && body.ends_with("403") && body.contains("evil.test is not in to="), "{body}");
    eventually("squid logs the three requests it carried", || squid.saw().lines().count() >= 3);
    let saw = squid.saw();
    assert_eq!(saw.matches(&format!("CONNECT name.test:{}", tls.port)).count(), 2, "the CONNECT and the SOCKS5 tunnel, by name: {saw}");
    assert!(saw.contains(&format!("GET http://web.test:{}/index.html", web.port)), "{saw}");
    assert!(!saw.contains("direct.test") && !saw.contains("evil.test"), "{saw}");
    let queries = dns.queries().join("\n");
    assert!(queries.contains("direct.test") && !queries.contains("name.test") && !queries.contains("web.test"), "the parent resolves what goes through it: {queries}");
    let open = record(&p.wait_for_log("the tunnel's open line", |l| l.contains(" open ") && l.contains("name.test")));
    assert_eq!(open["upstream"], format!("127.0.0.1:{}", squid.port), "the tunnel's upstream is the parent");
}

pub fn a_parent_that_refuses_or_fails_is_named_in_the_answer(rt: Runtime) {
    let web = nginx(&[("index.html", b"logged in\n")]);
    let squid = Squid::start(&["web.test"], Some(("corp", "pa55")));
    let dns = DnsServer::start(&[], &[], &[]);
    let route = |parent: &str| format!("to=web.test;to-net=127.0.0.0/8;ports={},9;parent={parent}", web.port);
    // The right login: through.
    let good = forward(rt, &route(&squid.url("corp:pa55@")), &dns.addr(), &[]);
    let url = format!("http://web.test:{}/index.html", web.port);
    let (code, body, err) = curl(&["-x", &format!("http://{}", good.addr), &url]);
    assert_eq!((code, body.as_str()), (0, "logged in\n"), "a plain request with the parent's login: {err}");
    let tunnel = |p: &Proxy, port: u16| {
        let mut c = p.connect();
        c.write_all(format!("CONNECT web.test:{port} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    let mut c = good.connect();
    c.write_all(format!("CONNECT web.test:{} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n", web.port).as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK"), "a tunnel with the parent's login: {answer}");
    // The parent refuses the destination's port: 502 naming its answer.
    let answer = tunnel(&good, 9);
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("the parent 127.0.0.1:") && answer.contains("with 403"), "{answer}");
    // A wrong login: the parent's 407, in the reason; over SOCKS5, "not allowed".
    let mut wrong = forward(rt, &route(&squid.url("corp:wrong@")), &dns.addr(), &[]);
    let answer = tunnel(&wrong, web.port);
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("with 407"), "{answer}");
    let mut c = wrong.connect();
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exact_n(&mut c, 2), [5, 0]);
    c.write_all(&[&[5u8, 1, 0, 3, 8][..], b"web.test", &web.port.to_be_bytes()].concat()).unwrap();
    let mut reply = Vec::new();
    let _ = c.read_to_end(&mut reply);
    assert_eq!(reply.get(..2), Some(&[5u8, 2][..]), "SOCKS5: not allowed (the parent's 407)");
    let close = record(&wrong.wait_for_log("the refused tunnel's close", |l| l.contains("reason=parent")));
    assert!(close["error"].contains("407"), "{close:?}");
    // The parent down: 502, and SOCKS5's connection refused.
    let down = forward(rt, &route(&format!("http://127.0.0.1:{}", free_port())), &dns.addr(), &[]);
    let answer = tunnel(&down, web.port);
    assert!(answer.starts_with("HTTP/1.1 502 ") && answer.contains("cannot reach"), "{answer}");
    let (code, _, err) = curl(&["--socks5-hostname", &down.addr.to_string(), &url]);
    assert!(code != 0 && err.contains("(5)"), "connection refused: {err}");
    assert!(!wrong.log().iter().chain(good.log().iter()).any(|l| l.contains("pa55") || l.contains("wrong")), "the parent's login is never logged");
}
