//! Ask a person: how far each answer reaches (once, session, forever,
//! deny, deny-forever), across a second request, a reload and a restart;
//! forever written into the routes file as a reviewable line.

use super::*;

pub fn each_answer_reaches_as_far_as_its_scope(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let names = ["once.test", "session.test", "forever.test", "deny.test", "never.test"];
    let dns = DnsServer::start(&names.map(|n| (n, "127.0.0.1")), &[], &[]);
    let fwd = free_port();
    let route = format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask");
    let lines = ["# the sandbox's way out".to_string(), route.clone(), "# the end".to_string()];
    let mut a = Asked::start(rt, &lines, 1, &dns.addr(), &[]);
    let proxy = format!("http://127.0.0.1:{fwd}");
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    let get = |host: &str, path: &str| curl_held(&["-x", &proxy, &url(host, path)]);
    let served = |c: std::process::Child, path: &str| {
        let (code, body, err) = finished(c);
        assert_eq!((code, body.trim_end()), (0, format!("origin {path}").as_str()), "{err}");
    };
    let refused = |c: std::process::Child, rule: &str| {
        let (_, body, _) = finished(c);
        assert!(body.starts_with("wasiter: ") && body.contains(&format!("refused (rule {rule})")), "rule {rule}: {body}");
    };

    // once: this request; the next is asked again.
    let c = get("once.test", "/1");
    let first = a.question("once.test", 1);
    a.answer(first, "once");
    served(c, "/1");
    let mut c = get("once.test", "/2");
    let second = a.question("once.test", 2);
    assert_ne!(first, second, "a new question");
    still_held(&mut c, "the request after once");
    // deny: refused with its own rule, as the decision line says.
    a.answer(second, "deny");
    refused(c, "ask-denied");
    a.p.wait_for_log("the ask-denied decision", |l| l.contains(" decision ") && l.contains("host=once.test:") && l.contains("rule=ask-denied"));
    let c = get("deny.test", "/d");
    let id = a.question("deny.test", 1);
    a.answer(id, "deny");
    refused(c, "ask-denied");
    let mut c = get("deny.test", "/d2");
    a.question("deny.test", 2); // a deny covers that request alone
    c.kill().unwrap();
    let _ = c.wait();

    // session: the name and port, until the proxy stops.
    let c = get("session.test", "/1");
    let id = a.question("session.test", 1);
    a.answer(id, "session");
    served(c, "/1");
    served(get("session.test", "/2"), "/2");
    assert_eq!(a.asked("session.test").len(), 1, "not asked again in this run");

    // forever: a line in the routes file, with a comment, then reloaded.
    let c = get("forever.test", "/1");
    let id = a.question("forever.test", 1);
    a.answer(id, "forever");
    served(c, "/1");
    let file = a.routes_file();
    let want = format!("127.0.0.1:{fwd}=forward;to=listed.test,forever.test;to-net=127.0.0.0/8;ports={port};ask");
    let got: Vec<&str> = file.lines().collect();
    assert_eq!(got.len(), 4, "one comment and the route's line changed, nothing else:\n{file}");
    assert_eq!((got[0], got[2], got[3]), ("# the sandbox's way out", want.as_str(), "# the end"), "{file}");
    let note = got[1];
    assert!(note.starts_with("# wasiter ask: forever.test allowed forever at 20"), "{note}");
    assert!(note.ends_with(&format!(", asked by 127.0.0.1 (http forever.test:{port})")), "{note}");
    a.p.wait_for_log("the reload after forever", |l| l.contains(" reload ") && l.contains("changed="));
    served(get("forever.test", "/2"), "/2");

    // deny-forever: a not-to= line; after the reload, refused by it at once.
    let c = get("never.test", "/1");
    let id = a.question("never.test", 1);
    a.answer(id, "deny-forever");
    refused(c, "ask-denied");
    let file = a.routes_file();
    assert!(file.contains(&format!("{want};not-to=never.test\n")), "{file}");
    assert!(file.contains("# wasiter ask: never.test refused forever at "), "{file}");
    eventually_refused_by_not_to(&a, &proxy, &url("never.test", "/2"));
    assert_eq!(a.asked("never.test").len(), 1);
    assert_eq!(a.asked("forever.test").len(), 1);

    // A restart: the file's answers stay, the session's are gone.
    a.restart();
    let (code, body, err) = curl(&["-x", &proxy, &url("forever.test", "/3")]);
    assert_eq!((code, body.as_str()), (0, "origin /3\n"), "forever outlives the process: {err}");
    eventually_refused_by_not_to(&a, &proxy, &url("never.test", "/3"));
    let mut c = get("session.test", "/3");
    let id = a.question("session.test", 1);
    still_held(&mut c, "session.test after a restart");
    a.answer(id, "deny");
    refused(c, "ask-denied");
    assert!(a.asked("forever.test").is_empty(), "forever.test was not asked after the restart");
}

/// `url` through the proxy is refused at once by not-to= (no question):
/// until the reload lands, the board's own refusal (ask-denied) answers.
fn eventually_refused_by_not_to(a: &Asked, proxy: &str, url: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body, _) = curl(&["-x", proxy, "--max-time", "5", url]);
        if body.contains("refused (rule not-to)") {
            return;
        }
        assert!(Instant::now() < deadline, "{url} is not refused by not-to=: {body}\n{}", a.p.log().join("\n"));
        thread::sleep(Duration::from_millis(200));
    }
}
