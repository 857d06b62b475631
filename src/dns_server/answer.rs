//! One question to the allowlist DNS server: read it, decide it by the
//! forward policy, write the reply. Pure (no socket, no clock), so that
//! every rule here is tested without a network; `mod.rs` does the waiting.
//!
//! What each question gets:
//! - a name the policy refuses (not in `to=`, in `not-to=`, an address
//!   written as a name): `REFUSED` at once, never asked upstream, with an
//!   Extended DNS Error (RFC 8914, code 15 "Blocked") whose text is the
//!   refusal the proxy would give, when the client speaks EDNS;
//! - an allowed name, `A` or `AAAA`: the addresses the in-loop resolver
//!   finds, less those the policy would refuse to connect to (loopback,
//!   private, metadata...: `REFUSED` if none is left), as records of the
//!   name asked. The CNAME chain is followed but not shown: its names are
//!   not on the list, and a client that looked them up would be refused;
//! - an allowed name, any other type (`HTTPS`/`SVCB`, `TXT`, `MX`, `ANY`...):
//!   an empty answer (NOERROR, no records), so clients fall back to A/AAAA.
//!   Those records are not fetched: `HTTPS` carries address hints and ECH
//!   keys that would route around the address checks, `TXT` carries data;
//! - `PTR`: the name `/etc/hosts` gives the address (the container's own),
//!   else `REFUSED`; a reverse name is not on any list;
//! - no such name: `NXDOMAIN`; no answer upstream: `SERVFAIL`;
//! - not a query (a reply, another opcode, several questions): `FORMERR`
//!   or `NOTIMP`, or nothing at all for bytes that are not DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::{RData, A, AAAA, OPT, OPTCode, PTR};
use simple_dns::{Label, Name, Packet, PacketFlag, Question as Q, ResourceRecord, CLASS, OPCODE, QCLASS, QTYPE, RCODE, TYPE};

use crate::dns::{self, Family, Hosts};
use crate::forward::{Decision, Forward, Rule};

/// The largest reply over UDP to a client that gives no EDNS size, and the
/// most we send to one that gives more (the size DNS flag day 2020 chose:
/// no fragments).
const UDP_PLAIN: usize = 512;
const UDP_EDNS_MAX: usize = 1232;
/// How long an answer that came from no cache (a literal, `/etc/hosts`)
/// may be kept.
const LOCAL_TTL: u32 = 60;
/// The most addresses one reply gives (a name with more gets these): so
/// that a reply stays under 2 KiB, and a TCP client's queue bounded.
pub const MAX_ADDRS: usize = 32;
/// Extended DNS Error codes (RFC 8914).
const EDE_BLOCKED: u16 = 15;
const EDE_NETWORK: u16 = 23;

/// A query, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lower case, no trailing dot: what the policy reads.
    pub name: String,
    /// Its labels as asked, byte for byte (a client that randomizes the
    /// case checks it comes back; a refused odd name is echoed as sent).
    asked: Vec<Vec<u8>>,
    /// What its wire form says that the text cannot: a label that holds a
    /// dot (`name` would read it as two). Refused as a bad name.
    wire: Option<String>,
    pub qtype: u16,
    recursion: bool,
    /// The client's EDNS UDP size, if it sent an OPT record.
    edns: Option<u16>,
}

impl Question {
    /// Its type as written in logs (`A`, `AAAA`, `HTTPS`, or the number).
    pub fn type_name(&self) -> String {
        match TYPE::from(self.qtype) {
            TYPE::Unknown(n) => format!("TYPE{n}"),
            t => format!("{t:?}"),
        }
    }

    /// The most a reply over UDP may hold for this client.
    pub fn udp_limit(&self) -> usize {
        self.edns.map_or(UDP_PLAIN, |size| usize::from(size).clamp(UDP_PLAIN, UDP_EDNS_MAX))
    }
}

/// What the bytes of a query call for.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Query(Question),
    /// Reply at once with this (FORMERR, NOTIMP).
    Reply(Vec<u8>, RCODE),
    /// Not a question to answer: say nothing (garbage, or a reply: never
    /// answer those, or two servers could answer each other forever).
    Drop,
}

pub fn read(bytes: &[u8]) -> Read {
    let Ok(packet) = Packet::parse(bytes) else {
        // Unreadable; if at least the header is there, say so.
        return match bytes {
            [a, b, flags, ..] if flags & 0x80 == 0 => Read::Reply(bare(u16::from_be_bytes([*a, *b]), RCODE::FormatError), RCODE::FormatError),
            _ => Read::Drop,
        };
    };
    if packet.has_flags(PacketFlag::RESPONSE) {
        return Read::Drop;
    }
    if packet.opcode() != OPCODE::StandardQuery {
        return Read::Reply(bare(packet.id(), RCODE::NotImplemented), RCODE::NotImplemented);
    }
    let [question] = packet.questions.as_slice() else {
        return Read::Reply(bare(packet.id(), RCODE::FormatError), RCODE::FormatError);
    };
    let text = question.qname.to_string();
    let asked = question.qname.as_bytes().map(<[u8]>::to_vec).collect();
    let wire = question.qname.as_bytes().find(|l| l.contains(&b'.')).map(|l| format!("the label {:?} holds a dot (the name would read as other labels)", String::from_utf8_lossy(l)));
    let qtype = match question.qtype {
        QTYPE::TYPE(t) => u16::from(t),
        QTYPE::ANY => 255,
        other => u16::from(other),
    };
    Read::Query(Question {
        id: packet.id(),
        name: text.to_ascii_lowercase(),
        asked,
        wire,
        qtype,
        recursion: packet.has_flags(PacketFlag::RECURSION_DESIRED),
        edns: packet.opt().map(|o| o.udp_packet_size),
    })
}

/// What to do with a question the policy has seen.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Look the name up (for this family), then `resolved`.
    Resolve(Family),
    /// Reply now.
    Reply(Reply),
}

/// A reply, before it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub rcode: RCODE,
    pub addrs: Vec<IpAddr>,
    ttl: u32,
    /// A `PTR` answer.
    ptr: Option<String>,
    /// An Extended DNS Error: its code and text (a refusal's reason).
    pub why: Option<(u16, String)>,
}

impl Reply {
    fn empty(rcode: RCODE) -> Reply {
        Reply { rcode, addrs: Vec::new(), ttl: 0, ptr: None, why: None }
    }

    pub fn refused(why: String) -> Reply {
        Reply { why: Some((EDE_BLOCKED, why)), ..Reply::empty(RCODE::Refused) }
    }
}

/// SERVFAIL, with the reason if there is one (EDE 0, "other").
pub fn servfail(why: Option<&str>) -> Reply {
    Reply { why: why.map(|w| (0, w.to_string())), ..Reply::empty(RCODE::ServerFailure) }
}

/// The policy's decision on a question, and what comes next. The decision
/// is `None` for a question the policy did not judge (a `PTR`).
pub fn decide(q: &Question, policy: &Forward, hosts: &Hosts) -> (Option<(Decision, Rule)>, Plan) {
    if q.qtype == u16::from(TYPE::PTR) {
        let found = reverse(&q.name).and_then(|ip| hosts.name_of(ip)).map(str::to_string);
        let reply = match found {
            Some(name) => Reply { ptr: Some(name), ttl: LOCAL_TTL, ..Reply::empty(RCODE::NoError) },
            None => Reply::refused(format!("{}: reverse lookups are answered only for the addresses of /etc/hosts", q.name)),
        };
        return (None, Plan::Reply(reply));
    }
    if let Some(why) = &q.wire {
        let why = format!("{:?} refused (rule {}): {why}", q.name.escape_debug().to_string(), Rule::BadName.id());
        return (Some((Decision::Deny, Rule::BadName)), Plan::Reply(Reply::refused(why)));
    }
    let decision = match policy.check_host(&q.name, 0) {
        Ok(d) => d,
        Err(refusal) => return (Some((Decision::Deny, refusal.rule)), Plan::Reply(Reply::refused(refusal.text))),
    };
    let plan = match TYPE::from(q.qtype) {
        TYPE::A => Plan::Resolve(Family::V4),
        TYPE::AAAA => Plan::Resolve(Family::V6),
        // The name is allowed, but only its addresses are given out.
        _ => Plan::Reply(Reply::empty(RCODE::NoError)),
    };
    (Some(decision), plan)
}

/// The reply once the resolver has answered: the addresses of `family`
/// that the policy lets a client reach, kept for `ttl` (seconds).
pub fn resolved(q: &Question, family: Family, result: &dns::Addrs, ttl: Option<u32>, policy: &Forward) -> (Reply, Option<Rule>) {
    let addrs = match result {
        Ok(addrs) => addrs,
        Err(dns::Error::NotFound) => return (Reply::empty(RCODE::NameError), None),
        Err(e) => return (Reply { why: Some((EDE_NETWORK, e.to_string())), ..Reply::empty(RCODE::ServerFailure) }, None),
    };
    // The same check as before a connect: what the name leads to.
    let reachable = match policy.check_addrs(&q.name, 0, addrs) {
        Ok(ok) => ok,
        Err(refusal) => return (Reply::refused(refusal.text), Some(refusal.rule)),
    };
    let wanted = |ip: &IpAddr| matches!((ip, family), (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6));
    let addrs = reachable.into_iter().filter(wanted).take(MAX_ADDRS).collect();
    (Reply { addrs, ttl: ttl.unwrap_or(LOCAL_TTL), ..Reply::empty(RCODE::NoError) }, None)
}

/// The reply to `q`, in at most `limit` bytes: past it, the records are
/// left out and TC set (a client then asks again over TCP).
pub fn write(q: &Question, reply: &Reply, limit: usize) -> Vec<u8> {
    let full = build(q, reply, true);
    if full.len() <= limit {
        return full;
    }
    let cut = build(q, reply, false);
    if cut.len() <= limit {
        return cut;
    }
    // A long name and a long reason past a small EDNS size: the code alone.
    build(q, &Reply { why: None, ..reply.clone() }, false)
}

fn build(q: &Question, reply: &Reply, whole: bool) -> Vec<u8> {
    let mut p = Packet::new_reply(q.id);
    *p.rcode_mut() = reply.rcode;
    if q.recursion {
        p.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    p.set_flags(PacketFlag::RECURSION_AVAILABLE);
    let labels: Vec<Label<'_>> = q.asked.iter().map(|l| Label::new_unchecked(l.as_slice())).collect();
    let name = Name::new_with_labels(&labels);
    p.questions.push(Q::new(name.clone(), QTYPE::try_from(q.qtype).unwrap_or(QTYPE::ANY), QCLASS::CLASS(CLASS::IN), false));
    if !whole {
        p.set_flags(PacketFlag::TRUNCATION);
    } else {
        for ip in &reply.addrs {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A { address: u32::from(*v4) }),
                IpAddr::V6(v6) => RData::AAAA(AAAA { address: u128::from(*v6) }),
            };
            p.answers.push(ResourceRecord::new(name.clone(), CLASS::IN, reply.ttl, rdata));
        }
        if let Some(target) = reply.ptr.as_deref().and_then(|t| Name::new(t).ok()) {
            p.answers.push(ResourceRecord::new(name.clone(), CLASS::IN, reply.ttl, RData::PTR(PTR(target))));
        }
    }
    if q.edns.is_some() {
        let mut opt_codes = Vec::new();
        if let Some((code, text)) = &reply.why {
            // The info code, then the text (kept short enough for any UDP reply).
            let mut data = code.to_be_bytes().to_vec();
            data.extend(text.bytes().take(300));
            opt_codes.push(OPTCode { code: 15, data: data.into() });
        }
        *p.opt_mut() = Some(OPT { opt_codes, udp_packet_size: UDP_EDNS_MAX as u16, version: 0 });
    }
    p.build_bytes_vec().unwrap_or_else(|_| bare(q.id, RCODE::ServerFailure))
}

/// A reply of a header only: for what cannot be answered better.
fn bare(id: u16, rcode: RCODE) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x80, rcode as u8, 0, 0, 0, 0, 0, 0, 0, 0]);
    out
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa`, or 32
/// nibbles under `ip6.arpa`).
fn reverse(name: &str) -> Option<IpAddr> {
    if let Some(v4) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = v4.split('.').map(|o| o.parse().ok()).collect::<Option<_>>()?;
        let [d, c, b, a] = octets.as_slice() else { return None };
        return Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)));
    }
    let v6 = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = v6.split('.').map(|n| u8::from_str_radix(n, 16).ok().filter(|_| n.len() == 1)).collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let value = nibbles.iter().rev().fold(0u128, |acc, n| (acc << 4) | u128::from(*n));
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
