//! Ask a person: what bounds a held client (the timeout, the bound on
//! questions, --max-conns), identical questions merged, and what is never
//! asked: what the address rules refuse without resolving anything, and
//! no name sent to DNS before a person allowed it.

use super::*;

/// A raw CONNECT from `from` (a loopback address) to the route at `to`.
fn connect_held(from: &str, to: SocketAddr, target: &str) -> TcpStream {
    let mut c = Proxy::connect_from(from, to);
    c.write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
    c
}

/// Everything the proxy says until it closes.
fn all_of(mut c: TcpStream) -> String {
    let mut got = String::new();
    let _ = c.read_to_string(&mut got);
    got
}

pub fn an_unanswered_question_times_out_with_its_own_rule(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("late.test", "127.0.0.1")], &[], &[]);
    let fwd = free_port();
    let lines = [format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask;ask-timeout=2s")];
    let mut a = Asked::start(rt, &lines, 1, &dns.addr(), &[]);
    let (code, body, err) = curl(&["-x", &format!("http://127.0.0.1:{fwd}"), "-w", "%{http_code}", &format!("http://late.test:{port}/")]);
    assert_eq!(code, 0, "{err}");
    assert!(body.starts_with("wasiter: late.test:") && body.contains("refused (rule ask-timeout)") && body.ends_with("403"), "{body}");
    let id = a.question("late.test", 1);
    let line = record(&a.p.wait_for_log("the timeout's line", |l| l.contains(" answered ") && l.contains("answer=timeout")));
    assert_eq!((line["question"].parse::<u64>().unwrap(), line["by"].as_str()), (id, "proxy"));
    a.p.wait_for_log("the decision", |l| l.contains(" decision ") && l.contains("rule=ask-timeout"));
    never_looked_up(&dns, "late.test");
    assert_eq!(web.accepted(), 0);
    // Too late to answer it.
    let (code, body) = a.api("POST", "/api/answer", Some(&format!(r#"{{"id":{id},"answer":"once"}}"#)), &[]);
    assert_eq!(code, 404, "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"].as_str().is_some_and(|e| e.contains(&format!("no question {id}"))), "{body}");
}

pub fn identical_questions_are_one_and_held_clients_are_bounded(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("merged.test", "127.0.0.1")], &[], &[]);
    let fwd = free_port();
    let lines = [format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask")];
    let mut a = Asked::start(rt, &lines, 1, &dns.addr(), &["--metrics", "127.0.0.1:0"]);
    let to: SocketAddr = format!("127.0.0.1:{fwd}").parse().unwrap();
    let target = format!("merged.test:{port}");
    // Two clients from one address, the same name and port: one question.
    let c1 = connect_held("127.0.0.1", to, &target);
    let id = a.question("merged.test", 1);
    let c2 = connect_held("127.0.0.1", to, &target);
    eventually("the second client waits on the same question", || a.shown(id)["clients"] == 2);
    // Another client address is another question.
    let other = connect_held("127.0.0.2", to, &target);
    let other_id = a.question("merged.test", 2);
    assert_ne!(other_id, id);
    assert_eq!(a.asked("merged.test").len(), 2);
    // One answer releases both, and only them.
    a.answer(id, "once");
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    for mut c in [c1, c2] {
        assert_eq!(read_exact_n(&mut c, ok.len()), ok);
    }
    let line = record(&a.p.wait_for_log("the answer", |l| l.contains(" answered ") && l.contains(&format!("question={id} "))));
    assert_eq!(line["clients"], "2");
    assert_eq!(a.shown(other_id)["clients"], 1, "still waiting");
    a.answer(other_id, "deny");
    assert!(all_of(other).contains("refused (rule ask-denied)"));

    // The bound: 64 questions wait at most; one more refuses the oldest.
    let first = connect_held("127.0.0.1", to, &format!("q0.test:{port}"));
    let first_id = a.question("q0.test", 1);
    let mut rest = Vec::new();
    for i in 1..=ask_max() {
        rest.push(connect_held("127.0.0.1", to, &format!("q{i}.test:{port}")));
    }
    a.question(&format!("q{}.test", ask_max()), 1);
    let refused = all_of(first);
    assert!(refused.starts_with("HTTP/1.1 403 ") && refused.contains("refused (rule ask-full)"), "{refused}");
    let line = record(&a.p.wait_for_log("the dropped question", |l| l.contains(" answered ") && l.contains("answer=full")));
    assert_eq!(line["question"].parse::<u64>().unwrap(), first_id);
    assert_eq!(a.questions()["questions"].as_array().unwrap().len(), ask_max());
    let m = scrape(a.p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_ask_pending", None), ask_max() as f64);
    assert_eq!(sample(&m, "wasiter_ask_answers_total", Some(("answer", "full"))), 1.0);
    drop(rest);
    a.p.assert_alive();
}

/// Questions held at once (`ask::MAX_QUESTIONS`).
fn ask_max() -> usize {
    64
}

pub fn held_clients_count_toward_max_conns(rt: Runtime) {
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("listed.test", "127.0.0.1")], &[], &[]);
    let fwd = free_port();
    let route = format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask;ask-timeout=3s");
    let (mut p, _) = Proxy::start_routes(rt, 1, &[], &["--route", &route, "--resolver", &dns.addr(), "--max-conns", "2"]);
    let to: SocketAddr = format!("127.0.0.1:{fwd}").parse().unwrap();
    let held = [connect_held("127.0.0.1", to, &format!("a.test:{port}")), connect_held("127.0.0.1", to, &format!("b.test:{port}"))];
    for host in ["a.test", "b.test"] {
        p.wait_for_log("the held client's question", |l| l.contains(" ask question=") && l.contains(&format!("host={host} ")));
    }
    // A listed name, but two clients are held: it waits in the backlog.
    let mut c = connect_held("127.0.0.1", to, &format!("listed.test:{port}"));
    c.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut one = [0u8; 1];
    match c.read(&mut one) {
        Err(e) if io_err_is_timeout(&e) => {}
        other => panic!("a third client was served while two were held under --max-conns 2: {other:?}"),
    }
    // Their timeout frees the slots: the third is served.
    for h in held {
        assert!(all_of(h).contains("refused (rule ask-timeout)"));
    }
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(read_exact_n(&mut c, ok.len()), ok);
}

pub fn what_the_rules_refuse_is_never_asked(rt: Runtime) {
    if !sealed(rt, "what_the_rules_refuse_is_never_asked") {
        return;
    }
    let dns = DnsServer::start(&[("listed.test", "127.0.0.1")], &[], &[]);
    let (fwd, d) = (free_port(), free_port());
    let routes = [format!("127.0.0.1:{fwd}=forward;to=listed.test;not-to=bad.test;to-net=127.0.0.0/8;ports=80;ask"), format!("127.0.0.1:{d}=dns;to=listed.test;not-to=bad.test;ask")];
    let (mut p, _) = Proxy::start_routes(rt, 2, &[], &["--route", &routes[0], "--route", &routes[1], "--resolver", &dns.addr()]);
    let to: SocketAddr = format!("127.0.0.1:{fwd}").parse().unwrap();
    // Each is refused at once (held, it would wait 60 s and the read time out).
    for (target, rule) in [
        ("10.1.2.3:80", "ip-literal"),
        ("169.254.169.254:80", "ip-literal"),
        ("[fd00::1]:80", "ip-literal"),
        ("a..b.test:80", "bad-name"),
        ("-x.test:80", "bad-name"),
        ("x\"<script>.test:80", "bad-name"), // a hostile name is never a question, so never on the page
        ("%3Cb%3E.test:80", "bad-name"),
        ("bad.test:80", "not-to"),
        ("new.test:8080", "port"),
    ] {
        let got = all_of(connect_held("127.0.0.1", to, target));
        assert!(got.starts_with("HTTP/1.1 403 ") && got.contains(&format!("refused (rule {rule})")), "{target}: {got}");
    }
    let got = all_of({
        let mut c = Proxy::connect_from("127.0.0.1", to);
        c.write_all(b"GET http://10.0.0.1/ HTTP/1.1\r\n\r\n").unwrap();
        c
    });
    assert!(got.contains("refused (rule ip-literal)"), "{got}");
    // The DNS route: not-to= and a malformed name are answered at once.
    let at: SocketAddr = format!("127.0.0.1:{d}").parse().unwrap();
    let out = dig_for(at, "bad.test", 10);
    assert_eq!(dig_status(&out), "REFUSED", "{out}");
    let out = dig_for(at, "a_b.test", 10);
    assert_ne!(dig_status(&out), "no answer", "a malformed name is not withheld: {out}");
    assert!(!p.log().iter().any(|l| l.contains(" ask question=")), "nothing was asked:\n{}", p.log().join("\n"));
    assert!(dns.queries().is_empty(), "nothing was looked up: {:?}", dns.queries());
    p.assert_alive();
}

pub fn an_unlisted_name_is_looked_up_only_after_an_allow(rt: Runtime) {
    if !sealed(rt, "an_unlisted_name_is_looked_up_only_after_an_allow") {
        return;
    }
    // Only loopback here: a failure below cannot reach out.
    assert!(std::net::TcpStream::connect_timeout(&"10.1.2.3:80".parse().unwrap(), Duration::from_secs(1)).is_err());
    let web = origin();
    let port = web.addr.port();
    let dns = DnsServer::start(&[("secret-name.test", "127.0.0.1"), ("inside.test", "10.1.2.3")], &[], &[]);
    let fwd = free_port();
    let lines = [format!("127.0.0.1:{fwd}=forward;to=listed.test;to-net=127.0.0.0/8;ports={port};ask")];
    let mut a = Asked::start(rt, &lines, 1, &dns.addr(), &[]);
    let proxy = format!("http://127.0.0.1:{fwd}");
    // Held, then denied: the name never went to DNS.
    let mut c = curl_held(&["-x", &proxy, &format!("http://secret-name.test:{port}/")]);
    let id = a.question("secret-name.test", 1);
    still_held(&mut c, "the client");
    a.answer(id, "deny");
    let (_, body, _) = finished(c);
    assert!(body.contains("refused (rule ask-denied)"), "{body}");
    never_looked_up(&dns, "secret-name.test");
    assert!(dns.queries().is_empty(), "{:?}", dns.queries());
    // Allowed, then looked up: its address is refused by the address rule.
    let c = curl_held(&["-x", &proxy, &format!("http://inside.test:{port}/")]);
    let id = a.question("inside.test", 1);
    never_looked_up(&dns, "inside.test");
    a.answer(id, "once");
    let (_, body, _) = finished(c);
    assert!(body.contains("refused (rule address)") && body.contains("resolves to 10.1.2.3"), "{body}");
    dns.queries_with(&["query inside.test A udp"]);
    a.p.wait_for_log("the address decision", |l| l.contains(" decision ") && l.contains("host=inside.test:") && l.contains("rule=address"));
}
