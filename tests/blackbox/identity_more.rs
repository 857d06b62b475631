//! A policy per client (issue 47 item 2), continued from identity.rs:
//! budgets and ask's grants kept per client, Unix peers told apart by the
//! uid the kernel gives (natively), and the configurations refused.

use super::*;
use std::os::unix::process::CommandExt;

pub fn budgets_and_ask_grants_are_each_clients_own(rt: Runtime) {
    let (web, seen) = seeing_origin();
    let port = web.addr.port();
    let dns = three_names();
    let listen = format!("127.0.0.1:{}", free_port());
    let common = format!("to=a.test;to-net=127.0.0.0/8;ports={port};budget=a.test:1req/1h");
    let p = sharing(rt, &listen, &["client=alpha;from=127.0.0.2", "client=beta;from=127.0.0.3"], &common, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let proxy = format!("http://{listen}");
    let get = |from: &str, path: &str| curl(&["--interface", from, "-x", &proxy, "-w", "\n%{http_code}", &format!("http://a.test:{port}/{path}")]).1;
    assert_eq!(get("127.0.0.2", "alpha"), "origin /alpha\n\n200");
    let body = get("127.0.0.2", "never-alpha");
    assert!(body.ends_with("\n429") && body.contains("refused for client alpha (rule budget)"), "{body}");
    assert_eq!(get("127.0.0.3", "beta"), "origin /beta\n\n200", "alpha's use spent none of beta's budget");
    let body = get("127.0.0.3", "never-beta");
    assert!(body.ends_with("\n429") && body.contains("refused for client beta (rule budget)"), "{body}");
    let s = scrape(p.metrics.as_deref().expect("metrics"));
    for name in ["alpha", "beta"] {
        let route = format!("{name}@{listen}");
        let refused = s.iter().find(|(n, l, _)| n == "wasiter_budget_refused_total" && l.get("route") == Some(&route)).map(|x| x.2);
        assert_eq!(refused, Some(1.0), "{name}'s budget, on its own route");
    }
    origin_saw_no_refused_request(&seen);
    drop(p);

    // ask on both: a session answer to alpha's question is alpha's alone.
    let listen = format!("127.0.0.1:{}", free_port());
    let route = |policy: &str| format!("{listen}=forward;{policy};to=listed.test;to-net=127.0.0.0/8;ports={port};ask");
    let lines = [route("client=alpha;from=127.0.0.2"), route("client=beta;from=127.0.0.3")];
    let mut a = Asked::start(rt, &lines, 1, &dns.addr(), &[]);
    let proxy = format!("http://{listen}");
    let held = |from: &str, path: &str| curl_held(&["--interface", from, "-x", &proxy, &format!("http://a.test:{port}/{path}")]);
    let alpha = held("127.0.0.2", "alpha-1");
    let first = a.question("a.test", 1);
    let mut beta = held("127.0.0.3", "never-beta-1");
    let second = a.question("a.test", 2);
    assert_ne!(first, second, "beta's request is a question of its own, not alpha's");
    assert_eq!((a.shown(first)["route"].as_str(), a.shown(second)["route"].as_str()), (Some(format!("alpha@{listen}").as_str()), Some(format!("beta@{listen}").as_str())));
    a.answer(first, "session");
    let (code, body, err) = finished(alpha);
    assert_eq!((code, body.as_str()), (0, "origin /alpha-1\n"), "{err}");
    still_held(&mut beta, "beta, after alpha's answer");
    let (code, body, err) = finished(held("127.0.0.2", "alpha-2"));
    assert_eq!((code, body.as_str()), (0, "origin /alpha-2\n"), "alpha's session grant: {err}");
    a.answer(second, "deny");
    let (_, body, _) = finished(beta);
    assert!(body.contains("refused for client beta (rule ask-denied)"), "{body}");
    // beta asks again: a new question, the session grant still alpha's.
    let mut beta = held("127.0.0.3", "never-beta-2");
    let third = a.question("a.test", 3);
    still_held(&mut beta, "beta's second request");
    a.answer(third, "deny");
    let _ = finished(beta);
    // A reload that puts another client's route first while alpha waits
    // for an answer: alpha's held request stays alpha's (a waiting client
    // keeps its route, not its place among the address's routes).
    let alpha = curl_held(&["--interface", "127.0.0.2", "-x", &proxy, &format!("http://b.test:{port}/alpha-3")]);
    let fourth = a.question("b.test", 1);
    let gamma = format!("{listen}=forward;client=gamma;from=127.0.0.4;to=c.test;to-net=127.0.0.0/8;ports={port}");
    std::fs::write(a.dir.path().join("routes"), [gamma, lines[0].clone(), lines[1].clone()].join("\n") + "\n").unwrap();
    let reload = record(&a.p.wait_for_log("the reload", |l| l.contains(" reload ") && l.contains("gamma@")));
    assert!(reload["added"].contains(&format!("gamma@{listen}")), "{reload:?}");
    a.answer(fourth, "once");
    let (code, body, err) = finished(alpha);
    assert_eq!((code, body.as_str()), (0, "origin /alpha-3\n"), "alpha's request, answered after the reload: {err}");
    origin_saw_no_refused_request(&seen);
}

/// A raw HTTP request over the Unix socket at `path`, as uid/gid `as_uid`
/// when given (python3 in a child that drops to it): what came back.
fn over_unix(path: &Path, request: &str, as_uid: Option<u32>) -> String {
    // A peer that closes at once ends it too (a broken pipe, a reset).
    let script = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nout = b''\ntry:\n    s.sendall(sys.argv[2].encode())\n    while True:\n        b = s.recv(65536)\n        if not b: break\n        out += b\nexcept OSError:\n    pass\nsys.stdout.write(out.decode('latin-1'))";
    // Another uid may not reach root's python3 (a pyenv shim under /root,
    // first on PATH): the system's, which every user can run.
    let python = match as_uid {
        Some(_) if Path::new("/usr/bin/python3").exists() => "/usr/bin/python3",
        _ => "python3",
    };
    let mut cmd = Command::new(python);
    cmd.args(["-c", script, path.to_str().unwrap(), request]);
    if let Some(uid) = as_uid {
        cmd.uid(uid).gid(uid); // std clears the supplementary groups when root drops them
    }
    let out = cmd.output().expect("python3");
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn unix_peers_get_the_policy_of_their_uid(rt: Runtime) {
    if rt != Runtime::Native {
        println!("SKIPPED: {rt:?}: no Unix sockets in WASI");
        return;
    }
    let (web, seen) = seeing_origin();
    let port = web.addr.port();
    let dns = three_names();
    let dir = TempDir::new("identity-unix");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("proxy.sock");
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    let other = if me == 65534 { 65533 } else { 65534 };
    let listen = format!("unix:{}", sock.display());
    let common = format!("to-net=127.0.0.0/8;ports={port};budget=c.test:1req/1h;mode=0666");
    let mut p = sharing(rt, &listen, &[&format!("client=me;uid={me};to=a.test,c.test"), &format!("client=other;uid={other};to=b.test,c.test")], &common, &dns.addr(), &[]);
    let start = record(&p.wait_for_log("the start line", |l| l.contains(" start listen=")));
    assert_eq!(start["clients"], format!("me<uid={me}> other<uid={other}>"), "{start:?}");
    let request = |host: &str, path: &str| format!("GET http://{host}:{port}/{path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    let ours = over_unix(&sock, &request("a.test", "me"), None);
    assert!(ours.starts_with("HTTP/1.1 200") && ours.ends_with("origin /me\n"), "{ours}");
    let ours = over_unix(&sock, &request("b.test", "never-me"), None);
    assert!(ours.contains(&format!("b.test:{port} refused for client me (rule not-listed)")), "{ours}");
    let close = record(&p.wait_for_log("our close", |l| l.contains(" close ") && l.contains("reason=forbidden")));
    assert_eq!(close["route"], format!("me@{listen}"));
    assert!(over_unix(&sock, &request("c.test", "me-budget"), None).ends_with("origin /me-budget\n"));
    assert!(over_unix(&sock, &request("c.test", "never-me-budget"), None).starts_with("HTTP/1.1 429"), "our one request for c.test is spent");
    if me != 0 {
        println!("SKIPPED: {rt:?}: not root, so no client as uid {other} (its policy is unchecked)");
        origin_saw_no_refused_request(&seen);
        return;
    }
    // Another uid on the same socket: the other policy, its budget its own
    // (every Unix peer has one address: the route keeps them apart).
    let theirs = over_unix(&sock, &request("b.test", "other"), Some(other));
    assert!(theirs.starts_with("HTTP/1.1 200") && theirs.ends_with("origin /other\n"), "{theirs}");
    let theirs = over_unix(&sock, &request("a.test", "never-other"), Some(other));
    assert!(theirs.contains(&format!("a.test:{port} refused for client other (rule not-listed)")), "{theirs}");
    let theirs = over_unix(&sock, &request("c.test", "other-budget"), Some(other));
    assert!(theirs.ends_with("origin /other-budget\n"), "our use of c.test spent none of theirs: {theirs}");
    // A third uid with no policy and no default: closed, nothing said.
    let nobody = over_unix(&sock, &request("a.test", "never-third"), Some(other - 1));
    assert!(nobody.is_empty(), "{nobody}");
    p.wait_for_log("the third uid's close", |l| l.contains(" close ") && l.contains("reason=denied"));
    origin_saw_no_refused_request(&seen);
}

pub fn sharing_an_address_wrongly_is_one_line_and_a_failed_start(rt: Runtime) {
    let at = "127.0.0.1:3128=forward";
    let cases: [(&[String], &str); 6] = [
        (&[format!("{at};to=a.test"), format!("{at};to=b.test")], "give each its own client=NAME"),
        (&[format!("{at};client=a;to=a.test"), format!("{at};client=b;to=b.test")], "only one may be the default"),
        (&[format!("{at};client=a;uid=1000;to=a.test")], "uid= picks clients of a Unix listener"),
        (&[format!("{at};client=a;from=10.0.0.2;accept-proxy;to=a.test")], "use it without accept-proxy"),
        (&[format!("{at};client=a b;to=a.test")], "bad client name \"a b\""),
        (&[format!("{at};client=a;uid=root;to=a.test")], "bad uid \"root\""),
    ];
    for (routes, want) in cases {
        let mut all = vec!["--check"];
        all.extend(routes.iter().flat_map(|r| ["--route", r.as_str()]));
        let (status, _, err) = rt.run(&[], &all);
        assert!(!status.success(), "{routes:?} is refused");
        assert!(err.contains(want) && err.trim_end().lines().count() == 1, "{routes:?}: one line saying {want:?}, got: {err}");
    }
    let (a, b) = (format!("{at};client=alpha;from=127.0.0.2;to=a.test"), format!("{at};client=beta;from=127.0.0.3;to=b.test"));
    let (status, out, err) = rt.run(&[], &["--check", "--route", &a, "--route", &b]);
    assert!(status.success() && out.contains("configuration ok: 2 route(s) on 1 listen address(es)"), "{out}{err}");
}

/// `client=NAME;auth=USER:PASS` without from= or uid=: a client is told
/// apart by its login, over HTTP and SOCKS5; a wrong login gets 407, a
/// client its address claims keeps that policy whatever login it sends,
/// and the login never shows in a log line.
pub fn a_login_chooses_the_policy_where_no_address_does(rt: Runtime) {
    let (web, seen) = seeing_origin();
    let port = web.addr.port();
    let dns = three_names();
    let listen = format!("127.0.0.1:{}", free_port());
    let common = format!("to-net=127.0.0.0/8;ports={port}");
    let policies = ["client=alpha;auth=alpha:pw-alpha;to=a.test", "client=beta;auth=beta:pw-beta;to=b.test", "client=gamma;from=127.0.0.5;to=c.test"];
    let p = sharing(rt, &listen, &policies, &common, &dns.addr(), &[]);
    let http = |login: &str, host: &str, path: &str| curl(&["-x", &format!("http://{login}@{listen}"), &format!("http://{host}:{port}/{path}")]);
    let socks = |login: &str, host: &str, path: &str| curl(&["--socks5-hostname", &format!("{login}@{listen}"), &format!("http://{host}:{port}/{path}")]);
    for (login, mine, theirs) in [("alpha:pw-alpha", "a.test", "b.test"), ("beta:pw-beta", "b.test", "a.test")] {
        let name = login.split(':').next().unwrap();
        let (code, body, err) = http(login, mine, &format!("{name}-http"));
        assert_eq!((code, body.as_str()), (0, format!("origin /{name}-http\n").as_str()), "{login}: {err}");
        let (_, body, _) = http(login, theirs, "never-http");
        assert!(body.contains(&format!("refused for client {name} (rule not-listed)")), "{login} to {theirs}: {body}");
        let (code, body, err) = socks(login, mine, &format!("{name}-socks"));
        assert_eq!((code, body.as_str()), (0, format!("origin /{name}-socks\n").as_str()), "{login} over SOCKS5: {err}");
        let (code, _, _) = socks(login, theirs, "never-socks");
        assert_ne!(code, 0, "{login} over SOCKS5 to {theirs}");
    }
    // A wrong password, or none: 407, nothing reaches the origin.
    let out = |args: &[&str]| curl(&[&["-s", "-o", "/dev/null", "-w", "%{http_code}"], args].concat()).1;
    assert_eq!(out(&["-x", &format!("http://alpha:pw-beta@{listen}"), &format!("http://a.test:{port}/never-wrong")]), "407");
    assert_eq!(out(&["-x", &format!("http://{listen}"), &format!("http://a.test:{port}/never-none")]), "407");
    let (code, _, _) = socks("alpha:wrong", "a.test", "never-socks-wrong");
    assert_ne!(code, 0, "a wrong SOCKS5 login");
    // gamma's address claims it: alpha's login changes nothing.
    assert_eq!(out(&["--interface", "127.0.0.5", "-x", &format!("http://alpha:pw-alpha@{listen}"), &format!("http://a.test:{port}/never-gamma")]), "403");
    let (code, body, err) = curl(&["--interface", "127.0.0.5", "-x", &format!("http://alpha:pw-alpha@{listen}"), &format!("http://c.test:{port}/gamma")]);
    assert_eq!((code, body.as_str()), (0, "origin /gamma\n"), "{err}");
    origin_saw_no_refused_request(&seen);
    // Each decision on the route of the login that made it; no password in the log.
    eventually("the decisions", || p.log().iter().filter(|l| l.contains(" decision ")).count() >= 9);
    let log = p.log();
    for l in log.iter().filter(|l| l.contains(" decision ")) {
        let d = record(l);
        let own = match d["route"].strip_suffix(&format!("@{listen}")) {
            Some("alpha") => "a.test:",
            Some("beta") => "b.test:",
            Some("gamma") => "c.test:",
            _ => panic!("a decision not labelled by its client: {d:?}"),
        };
        assert_eq!(d["decision"] == "allow", d["host"].starts_with(own), "{d:?}");
    }
    assert!(!log.iter().any(|l| l.contains("pw-alpha") || l.contains("pw-beta")), "a password in the log");
}
