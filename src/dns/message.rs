//! DNS messages, as a stub resolver needs them: one question out (A or
//! AAAA, recursion desired), and what an answer says back. `simple-dns`
//! reads and writes the wire format; this file decides what an answer means.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use simple_dns::rdata::RData;
use simple_dns::{Label, Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};

/// Which address family a query asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn qtype(self) -> TYPE {
        match self {
            Family::V4 => TYPE::A,
            Family::V6 => TYPE::AAAA,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
    }
}

/// The longest an answer is cached, whatever its TTL says, and how long a
/// "no such name" is remembered when the answer gives no SOA to say.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// What an answer to one question says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Addresses (possibly none: the name exists, without this family), and
    /// how long they may be kept.
    Addrs(Vec<IpAddr>, Duration),
    /// NXDOMAIN: the name does not exist (kept for the SOA's minimum).
    NoSuchName(Duration),
    /// The answer did not fit in UDP: ask again over TCP.
    Truncated,
    /// The server failed (SERVFAIL, REFUSED, ...): try the next one.
    Failed(String),
}

/// The query for `name` (as `ResolvConf::candidates` made it: no
/// trailing dot) and `family`, with this id. A name that is not a host
/// name (`crate::names::check`, `_` allowed; a trailing dot is an empty
/// label here) is refused, not mended: simple-dns would drop an empty
/// label and ask for another name than the one the policy checked.
pub fn query(id: u16, name: &str, family: Family) -> Result<Vec<u8>, String> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    crate::names::check(name, true).map_err(|why| format!("cannot ask for {name:?}: {why}"))?;
    // The labels as checked (simple-dns's own rules differ: no '_' last).
    let labels: Vec<Label<'_>> = name.split('.').map(|l| Label::new_unchecked(l.as_bytes())).collect();
    let qname = Name::new_with_labels(&labels);
    packet.questions.push(Question::new(qname, QTYPE::TYPE(family.qtype()), QCLASS::CLASS(CLASS::IN), false));
    packet.build_bytes_vec().map_err(|e| format!("cannot ask for {name:?}: {e}"))
}

/// What the answer `bytes` says to the query `id` for `family`. `Err`: not
/// an answer to that query (a stray or forged packet: ignore it).
pub fn parse(bytes: &[u8], id: u16, family: Family) -> Result<Answer, String> {
    let packet = Packet::parse(bytes).map_err(|e| format!("not a DNS message: {e}"))?;
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return Err(format!("not the answer to query {id}"));
    }
    if packet.has_flags(PacketFlag::TRUNCATION) {
        return Ok(Answer::Truncated);
    }
    let soa_ttl = || {
        packet.name_servers.iter().find_map(|rr| match &rr.rdata {
            RData::SOA(soa) => Some(Duration::from_secs(u64::from(soa.minimum.min(rr.ttl)))),
            _ => None,
        })
    };
    match packet.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Ok(Answer::NoSuchName(soa_ttl().unwrap_or(DEFAULT_NEGATIVE_TTL).min(MAX_TTL))),
        other => return Ok(Answer::Failed(format!("the server answered {other:?}"))),
    }
    // Every address record of the family: a recursive server answers
    // with the CNAME chain and the addresses at its end.
    let mut addrs = Vec::new();
    let mut ttl = MAX_TTL;
    for rr in &packet.answers {
        let addr = match (&rr.rdata, family) {
            (RData::A(a), Family::V4) => IpAddr::V4(Ipv4Addr::from(a.address)),
            (RData::AAAA(a), Family::V6) => IpAddr::V6(Ipv6Addr::from(a.address)),
            _ => continue,
        };
        ttl = ttl.min(Duration::from_secs(u64::from(rr.ttl)));
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        // The name exists but has no address of this family (NODATA).
        ttl = soa_ttl().unwrap_or(DEFAULT_NEGATIVE_TTL).min(MAX_TTL);
    }
    Ok(Answer::Addrs(addrs, ttl))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use simple_dns::rdata::{A, AAAA, CNAME, SOA};
    use simple_dns::ResourceRecord;

    /// An answer to `query`, as a server would write it.
    pub fn answer(query: &[u8], rcode: RCODE, records: Vec<ResourceRecord<'static>>, truncated: bool) -> Vec<u8> {
        answer_with(query, rcode, records, vec![], truncated)
    }

    pub fn answer_with(query: &[u8], rcode: RCODE, records: Vec<ResourceRecord<'static>>, authority: Vec<ResourceRecord<'static>>, truncated: bool) -> Vec<u8> {
        let q = Packet::parse(query).unwrap();
        let mut p = Packet::new_reply(q.id());
        *p.rcode_mut() = rcode;
        if truncated {
            p.set_flags(PacketFlag::TRUNCATION);
        }
        p.questions = q.questions.iter().map(|q| q.clone().into_owned()).collect();
        p.answers = records;
        p.name_servers = authority;
        p.build_bytes_vec().unwrap()
    }

    fn rr(name: &'static str, ttl: u32, rdata: RData<'static>) -> ResourceRecord<'static> {
        ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, ttl, rdata)
    }

    #[test]
    fn an_answer_gives_its_addresses_and_the_shortest_ttl() {
        let q = query(7, "www.app.test", Family::V4).unwrap();
        let records = vec![
            rr("www.app.test", 300, RData::CNAME(CNAME(Name::new_unchecked("app.test")))),
            rr("app.test", 60, RData::A(A { address: u32::from(Ipv4Addr::new(10, 0, 0, 1)) })),
            rr("app.test", 90, RData::A(A { address: u32::from(Ipv4Addr::new(10, 0, 0, 2)) })),
            rr("app.test", 90, RData::AAAA(AAAA { address: u128::from(Ipv6Addr::LOCALHOST) })),
        ];
        let a = parse(&answer(&q, RCODE::NoError, records, false), 7, Family::V4).unwrap();
        assert_eq!(a, Answer::Addrs(vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()], Duration::from_secs(60)));
    }

    #[test]
    fn a_query_asks_for_the_name_as_given_or_not_at_all() {
        for bad in ["blocked..wild.test", ".a.test", "a.test.", "a b.test", "b\u{fc}cher.test", "", "."] {
            assert!(query(1, bad, Family::V4).unwrap_err().starts_with("cannot ask for"), "{bad:?}: never mended into another name");
        }
        let q = Packet::parse(&query(1, "_svc.Db_.test", Family::V4).unwrap()).unwrap().questions[0].qname.to_string();
        assert_eq!(q, "_svc.Db_.test", "'_' (a service name) is fine, anywhere in a label");
        let conf = super::super::ResolvConf::default();
        let asked: Vec<bool> = ["a.test.", "a.test.."].iter().map(|n| conf.candidates(n).iter().all(|c| query(1, c, Family::V4).is_ok())).collect();
        assert_eq!(asked, [true, false], "an absolute name is asked; two trailing dots are an empty label to the end");
    }

    #[test]
    fn no_name_no_data_truncation_and_failure_are_told_apart() {
        let q = query(9, "nope.test", Family::V6).unwrap();
        assert_eq!(parse(&answer(&q, RCODE::NameError, vec![], false), 9, Family::V6).unwrap(), Answer::NoSuchName(DEFAULT_NEGATIVE_TTL));
        let soa = rr(
            "test",
            600,
            RData::SOA(SOA { mname: Name::new_unchecked("ns.test"), rname: Name::new_unchecked("h.test"), serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 10 }),
        );
        let with_soa = answer_with(&q, RCODE::NameError, vec![], vec![soa], false);
        assert_eq!(parse(&with_soa, 9, Family::V6).unwrap(), Answer::NoSuchName(Duration::from_secs(10)));
        assert_eq!(parse(&answer(&q, RCODE::NoError, vec![], false), 9, Family::V6).unwrap(), Answer::Addrs(vec![], DEFAULT_NEGATIVE_TTL));
        assert_eq!(parse(&answer(&q, RCODE::NoError, vec![], true), 9, Family::V6).unwrap(), Answer::Truncated);
        assert!(matches!(parse(&answer(&q, RCODE::ServerFailure, vec![], false), 9, Family::V6).unwrap(), Answer::Failed(_)));
        assert!(parse(&answer(&q, RCODE::NoError, vec![], false), 10, Family::V6).is_err(), "another query's id");
        assert!(parse(&q, 9, Family::V6).is_err(), "a query is not an answer");
        assert!(parse(b"\x00\x01garbage", 1, Family::V4).is_err());
    }
}
