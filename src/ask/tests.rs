use super::*;

fn asking(host: &str, port: u16, client: &str, way: Way) -> Asking {
    Asking { route: "127.0.0.1:3128".into(), host: host.into(), port, client: client.parse().unwrap(), way, method: None, path: None }
}

#[test]
fn identical_questions_are_one_and_one_answer_releases_them() {
    let (mut b, now) = (Board::default(), Instant::now());
    let (a, _) = b.hold(asking("a.test", 443, "10.0.0.2", Way::Connect), true, now + DEFAULT_TIMEOUT, now);
    let (a2, _) = b.hold(asking("a.test", 443, "10.0.0.2", Way::Socks5), true, now + DEFAULT_TIMEOUT, now);
    let (other_client, _) = b.hold(asking("a.test", 443, "10.0.0.3", Way::Connect), true, now + DEFAULT_TIMEOUT, now);
    let (other_port, _) = b.hold(asking("a.test", 80, "10.0.0.2", Way::Http), true, now + DEFAULT_TIMEOUT, now);
    assert_eq!(a, a2);
    assert!(a != other_client && a != other_port && other_client != other_port);
    assert_eq!(b.question(a).map(|q| q.waiting), Some(2));
    let q = b.answer(a, Scope::Once, "cli", now).unwrap();
    assert_eq!(q.waiting, 2);
    assert!(b.question(a).is_none() && b.answer(a, Scope::Once, "cli", now).is_err(), "answered once");
    let client = "10.0.0.2".parse().unwrap();
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, client, now), None, "once: the next one is asked again");
    assert_eq!(b.recent().next().map(|r| (r.id, r.scope)), Some((a, Scope::Once)));
}

#[test]
fn session_covers_the_route_name_and_port_and_deny_forever_wins() {
    let (mut b, now) = (Board::default(), Instant::now());
    let client = "10.0.0.2".parse().unwrap();
    let (id, _) = b.hold(asking("a.test", 443, "10.0.0.2", Way::Connect), true, now + DEFAULT_TIMEOUT, now);
    b.answer(id, Scope::Session, "page", now).unwrap();
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, client, now), Some(Granted::Allow(Scope::Session)));
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, "10.9.9.9".parse().unwrap(), now), Some(Granted::Allow(Scope::Session)), "any client");
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 8443, client, now), None, "another port");
    assert_eq!(b.granted("127.0.0.1:9999", "a.test", 443, client, now), None, "another route");
    let (id, _) = b.hold(asking("a.test", 443, "10.0.0.2", Way::Connect), true, now + DEFAULT_TIMEOUT, now);
    b.answer(id, Scope::DenyForever, "page", now).unwrap();
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, client, now), Some(Granted::Deny(Scope::DenyForever)));
}

#[test]
fn once_to_a_dns_question_answers_its_retry_and_the_next_connection() {
    let (mut b, now) = (Board::default(), Instant::now());
    let client = "10.0.0.2".parse().unwrap();
    let (id, _) = b.hold(asking("a.test", 0, "10.0.0.2", Way::Dns), false, now + DEFAULT_TIMEOUT, now);
    assert_eq!(b.question(id).map(|q| q.waiting), Some(0), "a DNS question holds no client");
    b.answer(id, Scope::Once, "page", now).unwrap();
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, "10.0.0.9".parse().unwrap(), now), None, "another client");
    assert_eq!(b.dns_granted("127.0.0.1:3128", "a.test", client, now), Some(Granted::Allow(Scope::Once)));
    assert_eq!(b.dns_granted("127.0.0.1:3128", "a.test", client, now), None, "the retry used it");
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, client, now), Some(Granted::Allow(Scope::Once)));
    assert_eq!(b.granted("127.0.0.1:3128", "a.test", 443, client, now), None, "one connection");
    let (id, _) = b.hold(asking("b.test", 0, "10.0.0.2", Way::Dns), false, now + DEFAULT_TIMEOUT, now);
    b.answer(id, Scope::Once, "page", now).unwrap();
    assert_eq!(b.granted("r", "b.test", 443, client, now + ONCE_FOR), None, "expired");
    let (id, _) = b.hold(asking("c.test", 0, "10.0.0.2", Way::Dns), false, now + DEFAULT_TIMEOUT, now);
    b.answer(id, Scope::Session, "page", now).unwrap();
    assert_eq!(b.granted("127.0.0.1:8443", "c.test", 443, client, now), Some(Granted::Allow(Scope::Session)), "a DNS session answer: the name on every route");
}

#[test]
fn questions_are_bounded_and_time_out() {
    let (mut b, now) = (Board::default(), Instant::now());
    let mut first = None;
    for i in 0..MAX_QUESTIONS {
        let (id, evicted) = b.hold(asking(&format!("h{i}.test"), 443, "10.0.0.2", Way::Connect), true, now + Duration::from_secs(i as u64 + 1), now);
        assert!(evicted.is_none());
        first.get_or_insert(id);
    }
    let (_, evicted) = b.hold(asking("late.test", 443, "10.0.0.2", Way::Connect), true, now + DEFAULT_TIMEOUT, now);
    assert_eq!(evicted.map(|q| q.id), first, "the oldest makes room");
    assert_eq!(b.pending().len(), MAX_QUESTIONS);
    let due = b.expire(now + Duration::from_secs(3));
    assert_eq!(due.len(), 2, "h1 and h2 (h0 was evicted)");
    assert!(b.counts().iter().any(|(_, s, n)| *s == Scope::Timeout && *n == 2));
    assert!(b.counts().iter().any(|(_, s, n)| *s == Scope::Full && *n == 1));
    assert_eq!(Scope::parse("deny-forever"), Some(Scope::DenyForever));
    assert_eq!(Scope::parse("timeout"), None, "not a person's answer");
}
