//! Arbitrary bytes as a query to the allowlist DNS server: read, decided
//! by a policy that allows one suffix, answered (for a lookup, with a
//! result that mixes allowed and refused addresses). Nothing may panic; a
//! question the policy refuses is never to be looked up; every reply fits
//! the limit it was written for and reads back as a reply to that query.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use wasiter::dns::message::{query, Family};
use wasiter::dns::Hosts;
use wasiter::dns_server::answer::{decide, read, resolved, write, Plan, Read};
use wasiter::forward::{Decision, Forward};
use wasiter::names::Pattern;

fuzz_target!(|data: &[u8]| {
    let policy = Forward { to: vec![Pattern::parse("*.allowed.test").unwrap()], dns: true, ..Forward::default() };
    let hosts = Hosts::parse("127.0.0.1 localhost\n172.17.0.2 box\n");
    let q = match read(data) {
        Read::Query(q) => q,
        Read::Reply(bytes, _) => return assert!(bytes.len() >= 12 && bytes[2] & 0x80 != 0, "a reply: {bytes:?}"),
        Read::Drop => return,
    };
    let (decision, plan) = decide(&q, &policy, &hosts);
    let reply = match plan {
        Plan::Reply(reply) => reply,
        Plan::Resolve(family) => {
            assert!(matches!(decision, Some((Decision::Allow, _))), "only allowed names are looked up: {:?} {decision:?}", q.name);
            assert!(q.name.ends_with(".allowed.test"), "{:?}", q.name);
            // One name check, and the resolver asks for the name it passed, label for label.
            assert_eq!(wasiter::names::check(&q.name, false), Ok(()), "{:?}", q.name);
            let asked = query(9, &q.name, Family::V4).expect("an allowed name can be asked for");
            let labels: Vec<String> = simple_dns::Packet::parse(&asked).unwrap().questions[0].qname.as_bytes().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
            assert_eq!(labels.join("."), q.name);
            let wire: Vec<Vec<u8>> = simple_dns::Packet::parse(data).unwrap().questions[0].qname.as_bytes().map(|l| l.to_ascii_lowercase()).collect();
            assert_eq!(wire, labels.iter().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>(), "the wire labels are the labels checked");
            let addrs: Vec<IpAddr> = ["93.184.216.34", "10.0.0.1", "2606:2800::1", "::1"].iter().map(|a| a.parse().unwrap()).collect();
            resolved(&q, family, &Ok(addrs), Some(60), &policy).0
        }
    };
    for limit in [q.udp_limit(), 65535] {
        let bytes = write(&q, &reply, limit);
        assert!(bytes.len() <= limit, "{} > {limit}", bytes.len());
        assert_eq!(&bytes[..2], &q.id.to_be_bytes(), "the reply carries the query's id");
        assert!(bytes[2] & 0x80 != 0, "QR set");
    }
});
