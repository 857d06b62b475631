//! The allowlist DNS server: `LISTEN=dns;to=NAME,...` answers the names a
//! forward policy allows, over UDP and TCP on one address, and refuses
//! every other name without asking anyone (so that no query name carries
//! data out of a locked container).
//!
//! How a question travels: the UDP socket (here) or a TCP connection (its
//! door's listener hands it over: `adopt`, then `tcp.rs`) brings the
//! bytes; `answer.rs` reads them and the policy decides; a refusal or an
//! answer that needs no lookup goes back at once; an allowed A/AAAA waits
//! for the loop's resolver (its cache shared with the forward proxy), in a
//! bounded table, and is answered from `resolved`. Nothing here blocks.
//!
//! The UDP side is a door of its own kind: a bound `sys::Datagram`, read
//! in batches when the poller says it is readable, each datagram answered
//! to its sender. The UDP relay (issue 28) takes the same shape.
//!
//! The loop drives it like the resolver: `watch` (its sockets and their
//! interest, keyed by `Sub`), `on_ready`, `resolved`, `expire`; and reads
//! `take_asked` (names the policy judged, for the route's ledger).

pub mod answer;
mod tcp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use simple_dns::RCODE;
use slab::Slab;

use crate::dns::{Addrs, Lookup, LookupId, Resolver};
use crate::forward::{Decision, Forward, Rule};
use crate::log::{Level, Record};
use crate::relay::would_block;
use crate::route::Acl;
use crate::sys::{Datagram, Handle, Stream};
use answer::{Plan, Question, Read, Reply};

/// Datagrams read per wake-up: a flood must not starve the other sockets.
const UDP_BATCH: usize = 64;
/// Questions waiting for the resolver at once (over all clients); past it,
/// SERVFAIL at once. With `MAX_TCP` clients (each bounded in `tcp.rs`),
/// this bounds the memory: a UDP client holds nothing between datagrams
/// but its waiting questions (a reply the socket cannot take is dropped).
const MAX_WAITING: usize = 1024;
/// TCP clients at once; more are closed as they come.
const MAX_TCP: usize = 64;
/// How long a TCP client may stay quiet, and how long a question may wait
/// for the resolver (which gives up before that: its timeouts and retries).
const TCP_IDLE: Duration = Duration::from_secs(10);
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Which of its sockets an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Udp,
    Tcp(usize),
}

impl Sub {
    pub fn index(self) -> usize {
        match self {
            Sub::Udp => 0,
            Sub::Tcp(key) => key + 1,
        }
    }

    pub fn from_index(i: usize) -> Sub {
        match i {
            0 => Sub::Udp,
            k => Sub::Tcp(k - 1),
        }
    }
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Udp(SocketAddr),
    /// A TCP client: its key, and its serial (the key may be reused).
    Tcp(usize, u64),
}

struct Waiting {
    to: To,
    from: SocketAddr,
    question: Question,
    family: crate::dns::Family,
    lookup: LookupId,
    deadline: Instant,
}

/// Answers given, by code: `wasiter_dns_answers_total`.
pub const RCODES: [&str; 6] = ["NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", "FORMERR", "NOTIMP"];

/// What one call needs from the loop: its route's name, policy and
/// allow/deny lists, the resolver.
pub struct Cx<'a> {
    pub route: &'a str,
    pub policy: &'a Forward,
    pub acl: &'a Acl,
    pub resolver: &'a mut Resolver,
    /// A secret's placeholder in a name asked is an attempted leak.
    pub secrets: &'a crate::secrets::Secrets,
    /// Ask mode: the answers a person gave (`crate::ask`).
    pub asks: &'a crate::ask::Board,
    pub now: Instant,
}

pub struct DnsServer {
    udp: Datagram,
    tcp: Slab<(tcp::Client, u64)>,
    waiting: Slab<Waiting>,
    serial: u64,
    /// Answers by `RCODES`, and questions dropped (busy, denied, unreadable).
    pub answers: [u64; 6],
    pub dropped: u64,
    /// Names the policy judged since the last `take_asked`.
    asked: Vec<(String, Decision, Rule)>,
    /// Ask mode: questions withheld for a person since the last
    /// `take_asking` (the loop files them: `crate::ask`).
    asking: Vec<crate::ask::Asking>,
    buf: Vec<u8>,
}

impl DnsServer {
    /// Serve UDP on `udp` (bound where the door's TCP listener is).
    pub fn new(udp: Datagram) -> DnsServer {
        DnsServer { udp, tcp: Slab::new(), waiting: Slab::new(), serial: 0, answers: [0; 6], dropped: 0, asked: Vec::new(), asking: Vec::new(), buf: vec![0; 4096] }
    }

    /// Every socket with its interest; and the nearest deadline.
    pub fn watch(&self, mut add: impl FnMut(Sub, Handle, bool, bool)) -> Option<Instant> {
        add(Sub::Udp, self.udp.handle(), true, false);
        for (key, (c, _)) in &self.tcp {
            let (r, w) = c.interest();
            add(Sub::Tcp(key), c.stream.handle(), r, w);
        }
        let tcp = self.tcp.iter().map(|(_, (c, _))| c.deadline);
        tcp.chain(self.waiting.iter().map(|(_, w)| w.deadline)).min()
    }

    /// A TCP client its door accepted.
    pub fn adopt(&mut self, stream: Stream, peer: SocketAddr, cx: &Cx<'_>) {
        if self.tcp.len() >= MAX_TCP || !cx.acl.permits(peer.ip()) {
            self.dropped += 1;
            return; // dropping it closes it
        }
        self.serial += 1;
        self.tcp.insert((tcp::Client::new(stream, peer, cx.now + TCP_IDLE), self.serial));
    }

    pub fn on_ready(&mut self, sub: Sub, cx: &mut Cx<'_>) {
        match sub {
            Sub::Udp => self.on_udp(cx),
            Sub::Tcp(key) => self.on_tcp(key, cx),
        }
    }

    fn on_udp(&mut self, cx: &mut Cx<'_>) {
        for _ in 0..UDP_BATCH {
            let mut buf = std::mem::take(&mut self.buf);
            let got = self.udp.recv_from(&mut buf);
            let (n, from) = match got {
                Ok(pair) => pair,
                // A refused earlier send (ICMP) shows up here on some systems: not ours to mind.
                Err(e) if would_block(&e) => {
                    self.buf = buf;
                    return;
                }
                Err(_) => {
                    self.buf = buf;
                    continue;
                }
            };
            if cx.acl.permits(from.ip()) {
                self.question(buf.get(..n).unwrap_or_default(), To::Udp(from), from, cx);
            } else {
                self.dropped += 1;
            }
            self.buf = buf;
        }
    }

    fn on_tcp(&mut self, key: usize, cx: &mut Cx<'_>) {
        let Some((client, _)) = self.tcp.get_mut(key) else { return };
        client.deadline = cx.now + TCP_IDLE;
        let failed = client.flush().is_err() || (client.interest().0 && client.on_readable().is_err());
        if failed {
            self.tcp.try_remove(key);
            return;
        }
        self.pump(key, cx);
    }

    /// Answer the queries TCP client `key` has sent, as far as its bounds
    /// allow (`tcp.rs`); close it once it is done. Called when it was
    /// ready, and when one of its questions was answered later (room made).
    fn pump(&mut self, key: usize, cx: &mut Cx<'_>) {
        loop {
            let Some((client, serial)) = self.tcp.get_mut(key) else { return };
            let (serial, peer) = (*serial, client.peer);
            match client.take() {
                Ok(Some(query)) => self.question(&query, To::Tcp(key, serial), peer, cx),
                Ok(None) if !client.done() => return,
                Ok(None) | Err(()) => {
                    self.tcp.try_remove(key);
                    return;
                }
            }
        }
    }

    /// After replies to waiting questions: their TCP clients may take more.
    fn pump_all(&mut self, answered: Vec<To>, cx: &mut Cx<'_>) {
        for to in answered {
            if let To::Tcp(key, serial) = to {
                if self.tcp.get(key).is_some_and(|(_, s)| *s == serial) {
                    self.pump(key, cx);
                }
            }
        }
    }

    /// One query from `from`: answer it now, or wait for the resolver.
    fn question(&mut self, bytes: &[u8], to: To, from: SocketAddr, cx: &mut Cx<'_>) {
        let q = match answer::read(bytes) {
            Read::Query(q) => q,
            Read::Reply(reply, rcode) => return self.send(to, &reply, rcode),
            Read::Drop => {
                self.dropped += 1;
                return self.unanswered(to);
            }
        };
        let (decision, plan) = match cx.secrets.scan(q.name.as_bytes(), "in a DNS question") {
            // A name carrying a placeholder out (`ghp_x.evil.test`): refused
            // whatever the list says, as an attempted leak.
            Err(leak) => {
                let why = format!("{:?} refused (rule {}): {}", q.name.escape_debug().to_string(), Rule::PlaceholderLeak.id(), leak.why);
                (Some((Decision::Deny, Rule::PlaceholderLeak)), Plan::Reply(answer::Reply::refused(why)))
            }
            Ok(()) => answer::decide(&q, cx.policy, cx.resolver.hosts()),
        };
        let (decision, plan) = match decision {
            // Not listed, in ask mode: answered as a person said, or
            // withheld (the client retries) while one is asked. Nothing
            // goes to the resolver before an allow.
            Some((Decision::Ask, _)) => match cx.asks.dns_granted(cx.route, &q.name, from.ip(), cx.now) {
                Some(crate::ask::Granted::Allow(_)) => (Some((Decision::Allow, Rule::Asked)), plan),
                Some(crate::ask::Granted::Deny(scope)) => {
                    let why = format!("{:?} refused (rule {}): not in to=, and a person refused it ({})", q.name, Rule::AskDenied.id(), scope.name());
                    (Some((Decision::Deny, Rule::AskDenied)), Plan::Reply(answer::Reply::refused(why)))
                }
                None => {
                    self.asking.push(crate::ask::Asking { route: cx.route.to_string(), host: q.name.clone(), port: 0, client: from.ip(), way: crate::ask::Way::Dns, method: None, path: None });
                    return self.unanswered(to);
                }
            },
            other => (other, plan),
        };
        if let Some((decision, rule)) = decision {
            self.asked.push((q.name.clone(), decision, rule));
        }
        let family = match plan {
            Plan::Reply(reply) => return self.reply(to, from, &q, &reply, decision.map(|d| d.1), cx),
            Plan::Resolve(family) => family,
        };
        // Absolute: the client's own search list already made the name.
        let absolute = format!("{}.", q.name);
        match cx.resolver.lookup(&absolute, cx.now) {
            Lookup::Ready(result) => {
                let ttl = cx.resolver.ttl_left(&absolute, cx.now);
                self.found(to, from, &q, family, &result, ttl, cx)
            }
            Lookup::Pending(lookup) if self.waiting.len() < MAX_WAITING => {
                self.waiting.insert(Waiting { to, from, question: q, family, lookup, deadline: cx.now + WAIT_MAX });
            }
            Lookup::Pending(_) => {
                self.reply(to, from, &q, &answer::servfail(Some("too many questions waiting")), None, cx);
            }
        }
    }

    /// Lookups the resolver finished: the questions waiting for them.
    pub fn resolved(&mut self, id: LookupId, result: &Addrs, cx: &mut Cx<'_>) {
        let due: Vec<usize> = self.waiting.iter().filter(|(_, w)| w.lookup == id).map(|(k, _)| k).collect();
        let mut answered = Vec::new();
        for key in due {
            if let Some(w) = self.waiting.try_remove(key) {
                let ttl = cx.resolver.ttl_left(&format!("{}.", w.question.name), cx.now);
                self.found(w.to, w.from, &w.question, w.family, result, ttl, cx);
                answered.push(w.to);
            }
        }
        self.pump_all(answered, cx);
    }

    /// The resolver's `result` for `q` (cached for `ttl` more): reply.
    #[allow(clippy::too_many_arguments)]
    fn found(&mut self, to: To, from: SocketAddr, q: &Question, family: crate::dns::Family, result: &Addrs, ttl: Option<Duration>, cx: &mut Cx<'_>) {
        let ttl = ttl.map(|d| d.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
        let (reply, refused) = answer::resolved(q, family, result, ttl, cx.policy);
        let rule = refused.or(Some(Rule::Listed));
        self.reply(to, from, q, &reply, rule, cx);
    }

    /// Questions waiting too long (SERVFAIL), TCP clients quiet too long.
    pub fn expire(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let due: Vec<usize> = self.waiting.iter().filter(|(_, w)| w.deadline <= now).map(|(k, _)| k).collect();
        let mut answered = Vec::new();
        for key in due {
            if let Some(w) = self.waiting.try_remove(key) {
                self.reply(w.to, w.from, &w.question, &answer::servfail(None), None, cx);
                answered.push(w.to);
            }
        }
        self.tcp.retain(|_, (c, _)| c.deadline > now);
        self.pump_all(answered, cx);
    }

    /// Questions withheld for a person since the last call.
    pub fn take_asking(&mut self) -> Vec<crate::ask::Asking> {
        std::mem::take(&mut self.asking)
    }

    /// Names judged since the last call: (name, decision, rule).
    pub fn take_asked(&mut self) -> Vec<(String, Decision, Rule)> {
        std::mem::take(&mut self.asked)
    }

    /// Write `reply` to `q`, log it, count it.
    fn reply(&mut self, to: To, from: SocketAddr, q: &Question, reply: &Reply, rule: Option<Rule>, cx: &Cx<'_>) {
        let (over, limit) = match to {
            To::Udp(_) => ("udp", q.udp_limit()),
            To::Tcp(..) => ("tcp", usize::from(u16::MAX)),
        };
        let bytes = answer::write(q, reply, limit);
        self.send(to, &bytes, reply.rcode);
        // Info, refusals too: a program retrying a lookup makes many, and
        // one line each is what an operator reads back, not a warning.
        if !crate::log::enabled(Level::Info) {
            return;
        }
        let mut line = Record::new(Level::Info, "dns")
            .str("route", cx.route)
            .str("client", from)
            .str("over", over)
            .str("name", &q.name)
            .str("type", q.type_name())
            .str("answer", rcode_name(reply.rcode))
            .num("addresses", reply.addrs.len() as u64);
        if let Some(rule) = rule {
            line = line.str("rule", rule.id());
        }
        if let Some((_, why)) = &reply.why {
            line = line.str("why", why);
        }
        line.emit();
    }

    fn send(&mut self, to: To, bytes: &[u8], rcode: RCODE) {
        if let Some(slot) = self.answers.get_mut(rcode_slot(rcode)) {
            *slot += 1;
        }
        match to {
            // A full send buffer drops the reply, as the network may: the client asks again.
            To::Udp(addr) => {
                if self.udp.send_to(bytes, addr).is_err() {
                    self.dropped += 1;
                }
            }
            To::Tcp(key, serial) => {
                let Some((client, _)) = self.tcp.get_mut(key).filter(|(_, s)| *s == serial) else { return };
                if client.answer(bytes).is_err() || client.done() {
                    self.tcp.try_remove(key);
                }
            }
        }
    }

    /// A TCP query that gets no reply still counts as answered for the
    /// connection's bookkeeping.
    fn unanswered(&mut self, to: To) {
        if let To::Tcp(key, serial) = to {
            if let Some((client, _)) = self.tcp.get_mut(key).filter(|(_, s)| *s == serial) {
                client.in_flight = client.in_flight.saturating_sub(1);
            }
        }
    }
}

/// An answer's place in `RCODES` (what the server never sends counts as SERVFAIL).
fn rcode_slot(rcode: RCODE) -> usize {
    match rcode {
        RCODE::NoError => 0,
        RCODE::NameError => 1,
        RCODE::Refused => 2,
        RCODE::FormatError => 4,
        RCODE::NotImplemented => 5,
        _ => 3,
    }
}

fn rcode_name(rcode: RCODE) -> &'static str {
    RCODES.get(rcode_slot(rcode)).copied().unwrap_or("SERVFAIL")
}
