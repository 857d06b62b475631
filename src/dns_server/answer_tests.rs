//! The allowlist DNS server's rules, without a network: what each kind of
//! question gets, and what the bytes of the reply say.

use super::*;
use crate::names::Pattern;

fn policy(to: &[&str]) -> Forward {
    Forward { to: to.iter().map(|p| Pattern::parse(p).unwrap()).collect(), dns: true, ..Forward::default() }
}

/// A query as a client writes it (with EDNS, as dig does, when `edns`).
fn query(name: &str, qtype: TYPE, edns: bool) -> Vec<u8> {
    let mut p = Packet::new_query(0x1234);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Q::new(Name::new_unchecked(name), QTYPE::TYPE(qtype), QCLASS::CLASS(CLASS::IN), false));
    if edns {
        *p.opt_mut() = Some(OPT { opt_codes: vec![], udp_packet_size: 4096, version: 0 });
    }
    p.build_bytes_vec().unwrap()
}

fn question(name: &str, qtype: TYPE) -> Question {
    match read(&query(name, qtype, true)) {
        Read::Query(q) => q,
        other => panic!("{other:?}"),
    }
}

fn hosts() -> Hosts {
    Hosts::parse("127.0.0.1 localhost\n172.17.0.2 box.local box\nfd00::2 box6\n")
}

#[test]
fn only_queries_are_read() {
    let q = question("Pypi.ORG", TYPE::A);
    assert_eq!((q.name.as_str(), q.qtype, q.udp_limit()), ("pypi.org", 1, 1232));
    assert_eq!(read(b"\x00"), Read::Drop, "too short to answer");
    let mut reply = query("pypi.org", TYPE::A, false);
    reply[2] |= 0x80;
    assert_eq!(read(&reply), Read::Drop, "a reply is never answered");
    let mut notify = query("pypi.org", TYPE::A, false);
    notify[2] |= 4 << 3;
    assert!(matches!(read(&notify), Read::Reply(_, RCODE::NotImplemented)));
    let mut garbage = query("pypi.org", TYPE::A, false);
    garbage.truncate(14);
    assert!(matches!(read(&garbage), Read::Reply(_, RCODE::FormatError)));
}

#[test]
fn an_unlisted_name_is_refused_at_once_with_the_reason() {
    let q = question("evil.example", TYPE::A);
    let (decision, plan) = decide(&q, &policy(&["pypi.org"]), &hosts());
    assert_eq!(decision, Some((Decision::Deny, Rule::NotListed)));
    let Plan::Reply(reply) = plan else { panic!("an unlisted name must not be looked up") };
    assert_eq!(reply.rcode, RCODE::Refused);
    let bytes = write(&q, &reply, 512);
    let packet = Packet::parse(&bytes).unwrap();
    assert_eq!(packet.rcode(), RCODE::Refused);
    let ede = &packet.opt().unwrap().opt_codes[0];
    assert_eq!(ede.code, 15);
    assert_eq!(&ede.data[..2], &EDE_BLOCKED.to_be_bytes());
    assert!(String::from_utf8_lossy(&ede.data[2..]).contains("not in to="));
}

#[test]
fn names_that_are_addresses_or_not_host_names_are_refused() {
    let p = policy(&["*.example.com"]);
    for name in ["10.0.0.1", "2130706433", "0x7f.1", "a\\.b.example.com", "x y.example.com"] {
        let q = Question { id: 1, name: name.into(), asked: name.split('.').map(|l| l.as_bytes().to_vec()).collect(), wire: None, qtype: 1, recursion: true, edns: None };
        let (decision, plan) = decide(&q, &p, &hosts());
        assert!(matches!(decision, Some((Decision::Deny, _))), "{name}");
        assert!(matches!(plan, Plan::Reply(Reply { rcode: RCODE::Refused, .. })), "{name}");
    }
}

#[test]
fn an_allowed_name_is_resolved_for_a_and_aaaa_and_empty_for_other_types() {
    let p = policy(&["*.github.com"]);
    assert_eq!(decide(&question("api.github.com", TYPE::A), &p, &hosts()).1, Plan::Resolve(Family::V4));
    assert_eq!(decide(&question("api.github.com", TYPE::AAAA), &p, &hosts()).1, Plan::Resolve(Family::V6));
    for other in [TYPE::TXT, TYPE::HTTPS, TYPE::SVCB, TYPE::MX, TYPE::CNAME] {
        let (decision, plan) = decide(&question("api.github.com", other), &p, &hosts());
        assert_eq!(decision, Some((Decision::Allow, Rule::Listed)));
        assert_eq!(plan, Plan::Reply(Reply::empty(RCODE::NoError)), "{other:?}: no records, none fetched");
    }
}

#[test]
fn report_mode_answers_unlisted_names_as_would_deny() {
    let p = Forward { report: true, ..policy(&["pypi.org"]) };
    let (decision, plan) = decide(&question("crates.io", TYPE::A), &p, &hosts());
    assert_eq!(decision, Some((Decision::WouldDeny, Rule::NotListed)));
    assert_eq!(plan, Plan::Resolve(Family::V4));
}

#[test]
fn addresses_the_policy_refuses_are_dropped_from_answers() {
    let p = policy(&["app.test"]);
    let q = question("app.test", TYPE::A);
    let mixed = Ok(vec!["10.1.2.3".parse().unwrap(), "93.184.216.34".parse().unwrap(), "2606:2800::1".parse().unwrap()]);
    let (reply, refused) = resolved(&q, Family::V4, &mixed, Some(30), &p);
    assert_eq!((reply.rcode, reply.addrs.clone(), refused), (RCODE::NoError, vec!["93.184.216.34".parse().unwrap()], None));
    let bytes = write(&q, &reply, 512);
    let packet = Packet::parse(&bytes).unwrap();
    assert_eq!(packet.answers.len(), 1);
    assert_eq!(packet.answers[0].ttl, 30);
    for inside in ["169.254.169.254", "127.0.0.1", "192.168.1.1"] {
        let (reply, refused) = resolved(&q, Family::V4, &Ok(vec![inside.parse().unwrap()]), None, &p);
        assert_eq!((reply.rcode, refused), (RCODE::Refused, Some(Rule::Address)), "{inside}");
    }
    // NAT64 and 6to4 forms of a private address, asked as AAAA.
    let q6 = question("app.test", TYPE::AAAA);
    for form in ["64:ff9b::a00:1", "2002:a00:1::1"] {
        let (reply, _) = resolved(&q6, Family::V6, &Ok(vec![form.parse().unwrap()]), None, &p);
        assert_eq!(reply.rcode, RCODE::Refused, "{form}");
    }
    let (reply, _) = resolved(&q6, Family::V6, &mixed, None, &p);
    assert_eq!(reply.addrs, vec!["2606:2800::1".parse::<IpAddr>().unwrap()]);
    let only_v6 = Ok(vec!["2606:2800::1".parse().unwrap()]);
    let (reply, _) = resolved(&q, Family::V4, &only_v6, None, &p);
    assert_eq!((reply.rcode, reply.addrs.len()), (RCODE::NoError, 0), "no address of this family: NODATA");
}

#[test]
fn lookups_that_fail_say_how() {
    let p = policy(&["app.test"]);
    let q = question("app.test", TYPE::A);
    assert_eq!(resolved(&q, Family::V4, &Err(dns::Error::NotFound), None, &p).0.rcode, RCODE::NameError);
    assert_eq!(resolved(&q, Family::V4, &Err(dns::Error::Timeout), None, &p).0.rcode, RCODE::ServerFailure);
}

#[test]
fn reverse_lookups_answer_only_this_hosts_own_addresses() {
    let p = policy(&["*"]);
    let (decision, plan) = decide(&question("2.0.17.172.in-addr.arpa", TYPE::PTR), &p, &hosts());
    assert_eq!(decision, None);
    let Plan::Reply(reply) = plan else { panic!() };
    let bytes = write(&question("2.0.17.172.in-addr.arpa", TYPE::PTR), &reply, 512);
    let packet = Packet::parse(&bytes).unwrap();
    assert!(matches!(&packet.answers[0].rdata, RData::PTR(PTR(n)) if n.to_string() == "box.local"));
    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
    assert!(matches!(decide(&question(v6, TYPE::PTR), &p, &hosts()).1, Plan::Reply(Reply { rcode: RCODE::NoError, .. })));
    for other in ["8.8.8.8.in-addr.arpa", "1.2.3.in-addr.arpa", "x.ip6.arpa"] {
        assert!(matches!(decide(&question(other, TYPE::PTR), &p, &hosts()).1, Plan::Reply(Reply { rcode: RCODE::Refused, .. })), "{other}");
    }
}

#[test]
fn a_reply_keeps_the_case_asked_and_is_truncated_to_fit() {
    let q = question("ApP.TeSt", TYPE::A);
    let many: Vec<IpAddr> = (1..=60).map(|i| IpAddr::V4(std::net::Ipv4Addr::new(93, 184, 0, i))).collect();
    let reply = Reply { addrs: many, ttl: 60, ..Reply::empty(RCODE::NoError) };
    let bytes = write(&q, &reply, 65535);
    let whole = Packet::parse(&bytes).unwrap();
    assert_eq!(whole.answers.len(), 60);
    assert_eq!(whole.questions[0].qname.to_string(), "ApP.TeSt", "0x20: the case comes back as asked");
    let udp = write(&q, &reply, q.udp_limit());
    assert!(udp.len() <= q.udp_limit());
    let cut = Packet::parse(&udp).unwrap();
    assert!(cut.has_flags(PacketFlag::TRUNCATION));
    assert!(cut.answers.is_empty());
    let plain = question("app.test", TYPE::A);
    let plain = Question { edns: None, ..plain };
    assert_eq!(plain.udp_limit(), 512);
}

/// A query whose name is these wire labels, as they are (dots and all).
fn wire_query(labels: &[&[u8]]) -> Vec<u8> {
    let mut bytes = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in labels {
        bytes.push(l.len() as u8);
        bytes.extend_from_slice(l);
    }
    bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
    bytes
}

#[test]
fn a_bad_name_is_refused_by_its_own_rule_and_never_looked_up() {
    let p = Forward { not_to: vec![Pattern::parse("blocked.wild.test").unwrap()], ..policy(&["*.wild.test"]) };
    let refused = |bytes: Vec<u8>| {
        let Read::Query(q) = read(&bytes) else { panic!("a query") };
        let (decision, plan) = decide(&q, &p, &hosts());
        let Plan::Reply(reply) = plan else { panic!("{:?} must not be looked up", q.name) };
        assert_eq!((decision, reply.rcode), (Some((Decision::Deny, Rule::BadName)), RCODE::Refused), "{:?}", q.name);
        reply.why.unwrap().1
    };
    // The label "blocked.wild" holds a dot: read as text it is blocked.wild.test's
    // labels, on the wire one label fewer. Neither reading may pass.
    assert!(refused(wire_query(&[b"x", b"blocked.wild", b"test"])).contains("holds a dot"));
    assert!(refused(wire_query(&[b"a", b"blocked.wild.test"])).contains("holds a dot"));
    assert!(refused(wire_query(&[b"a b", b"wild", b"test"])).contains("' '"));
    let Read::Query(q) = read(&wire_query(&[b"x", b"blocked.wild", b"test"])) else { panic!() };
    let Plan::Reply(reply) = decide(&q, &p, &hosts()).1 else { panic!() };
    let bytes = write(&q, &reply, 512);
    let echoed = Packet::parse(&bytes).unwrap();
    assert_eq!(echoed.rcode(), RCODE::Refused, "REFUSED, not a FORMERR for a name the reply could not write");
    assert_eq!(echoed.questions[0].qname.as_bytes().collect::<Vec<_>>(), [&b"x"[..], b"blocked.wild", b"test"], "the question as asked");
    assert!(refused(wire_query(&[b"a\0", b"wild", b"test"])).contains("is not a host name"));
    assert!(refused(wire_query(&[&[0xc3, 0xbc], b"wild", b"test"])).contains("non-ASCII"));
    assert!(refused(wire_query(&[b"_x", b"wild", b"test"])).contains("'_'"));
    assert!(refused(wire_query(&[])).contains("empty name"), "the root");
    let Read::Query(ok) = read(&wire_query(&[b"Ok", b"Wild", b"TEST"])) else { panic!() };
    assert_eq!(decide(&ok, &p, &hosts()).1, Plan::Resolve(Family::V4), "one normalisation: case");
}

#[test]
fn a_reply_gives_at_most_max_addrs_addresses() {
    let q = question("many.example", TYPE::A);
    let many: Vec<IpAddr> = (0..200u8).map(|i| IpAddr::V4(Ipv4Addr::new(93, 184, 1, i))).collect();
    let (reply, _) = resolved(&q, Family::V4, &Ok(many), Some(60), &policy(&["*"]));
    assert_eq!(reply.addrs.len(), MAX_ADDRS);
    assert!(write(&q, &reply, usize::from(u16::MAX)).len() < 2048, "under 2 KiB, as tcp.rs counts on");
}
