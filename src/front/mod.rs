//! The front: what a new client passes before it is a connection (`conn`).
//!
//! ```text
//! accepted ─▶ ProxyHeader ─▶ allow/deny ─┬▶ Peek ─▶ a route picked ─────────────▶ conn::Conn
//!             (accept-proxy               │  (a port routed by name only)
//!              routes only)               └▶ Request ─▶ Resolve ─▶ a destination ▶ conn::Conn
//!                                            (a forward route: CONNECT or an absolute URL;
//!                                             the name checked, looked up in the loop's
//!                                             resolver, its addresses checked)
//! ```
//! Each phase reads only from the client and never blocks: `advance` goes as
//! far as the bytes already read allow and says what is next (`Step`). A
//! plain route with no PROXY header passes every phase in the first call,
//! without waiting for a byte (server-speaks-first protocols work). Every
//! byte read past the PROXY header is kept and goes to the upstream first,
//! unchanged: a routed TLS connection stays end to end.
//!
//! Beside it: `client_hello.rs` and `http_head.rs` (what the peek reads),
//! `proxy_request.rs` (what a forward proxy's client asks), `egress.rs` (a
//! forward proxy's client: its request checked, its name looked up, the
//! decision kept, a refusal answered), `crate::names`
//! (how the name picks a route), `crate::forward` (where a forward route's
//! clients may go) and `crate::dns` (the resolver).

// Below the front, taking nothing from it: the readers of first bytes,
// SOCKS5's wire format, the answers in a client's protocol, and the types
// it keeps. Above it, adding its methods for a forward route's clients:
// egress.rs, socks_client.rs, transparent.rs (the front takes nothing
// from them).
pub mod client_hello;
mod failure;
pub mod http_head;
pub mod proxy_request;
pub mod socks;
mod reading;
mod speaks;
mod target;

mod egress;
mod held;
mod opened;
mod socks_client;
mod transparent;

pub use failure::Failure;
pub use speaks::{http_answer, http_answer_with, tell, tell_through, Speaks};
pub use reading::{no_line_end_since, read_up_to};
pub use target::Target;
use reading::{read_header, read_into, SCRATCH};

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::close::{Reason, Side};
use crate::dns::{LookupId, Resolver};
use crate::forward::{Decision, Forward, Rule};
use crate::names::{normalize, Asked, Table};
use crate::proxy_header::{self, Received};
use crate::relay::Endpoint;
use crate::route::Acl;
use crate::secrets::Secrets;
use crate::sys::Stream;
use crate::tls;

/// The most bytes held while peeking: a ClientHello or request head of at
/// most 16 KiB, plus room for record headers when a client splits it into
/// many small records. Memory per peeking client is bounded by this.
pub const PEEK_LIMIT: usize = 2 * client_hello::MAX_HELLO;

/// What a port asks of its clients, from its routes.
pub struct Rules<'a> {
    pub acl: &'a Acl,
    pub accept_proxy: bool,
    pub table: &'a Table,
    /// A forward route: its index, and where its clients may go (the
    /// policy this client was given, `crate::forward::identity`)...
    pub forward: Option<(usize, &'a Forward)>,
    /// ...or a forward port with no policy for this client: refused. A
    /// client not claimed by its address may log in to one of `logins`.
    pub unclaimed: bool,
    pub logins: &'a [crate::forward::identity::LoginPolicy],
    pub header_timeout: Duration,
    pub peek_timeout: Duration,
    /// `--ca`: what opens TLS for a forward route's `open=` names.
    pub opener: Option<&'a tls::Opener>,
    /// `--secrets`: the placeholders every request is checked for.
    pub secrets: &'a Secrets,
    /// Ask mode: the answers already given (`crate::ask`), and the name
    /// of the route (its policy's label, `NAME@LISTEN` with `client=`)
    /// that they are filed under.
    pub asks: &'a crate::ask::Board,
    pub route: &'a str,
}

pub(super) enum Phase {
    /// Nothing done yet.
    Accepted,
    /// accept-proxy: the PROXY header is still arriving.
    ProxyHeader(proxy_header::Reader),
    /// Reading the first bytes (ClientHello or request head) for the name.
    Peek,
    /// A forward route's new client: nothing read yet to tell HTTP from
    /// SOCKS5 (the first byte does).
    Mixed,
    /// A forward route: the proxy request is still arriving.
    Request,
    /// A tunnel the route opens (`open=`): its ClientHello is arriving
    /// (`opened.rs`).
    Hello,
    /// A forward route: a SOCKS5 client on its way to a request.
    Socks(socks::Stage),
    /// A forward route: waiting for the destination's addresses.
    Resolve(LookupId),
    /// A forward route's client whose last request was answered: its next
    /// one (past any PROXY header, which came once).
    Next,
}

/// What to do with a front after `advance`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait for the client to send more (or for `deadline`).
    Wait,
    /// Connect to this route's upstream, replaying `take_read()` first.
    Relay(usize),
    /// Close the client (any answer it is owed is already written).
    Close,
}

/// A client on its way to a route.
pub struct Front {
    pub id: u64,
    /// Its port (an index into the proxy's doors)...
    pub door: usize,
    /// ...and there, on a forward route's port, the policy it was given by
    /// who it is (`crate::forward::identity`), as its route's index (which
    /// a reload keeps): chosen at accept (or by a login), with its
    /// `client=` name, which every refusal it reads names.
    pub policy: usize,
    pub client_name: Option<String>,
    pub client: Stream,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client as its PROXY header told it (else the peer), and the
    /// address it connected to, when told.
    pub from: SocketAddr,
    pub to: Option<SocketAddr>,
    /// What it asked for, once peeked.
    pub asked: Option<Asked>,
    /// A forward route's destination, once asked for.
    pub target: Option<Target>,
    /// Why it is to be closed, with `Step::Close`.
    pub reason: Option<Reason>,
    /// A forward route: what the policy decided, and by which rule (an
    /// allowed name may still be refused for its addresses).
    pub decision: Option<(Decision, Rule)>,
    /// A forward route: the protocol its client speaks, to answer in.
    pub speaks: Speaks,
    /// A forward route's client inside a tunnel that carries plain HTTP
    /// (`crate::conn::bind`): the tunnel's destination, which each of its
    /// requests must name (`proxy_request::in_tunnel`).
    pub pinned: Option<(String, u16)>,
    /// Inside a tunnel the proxy opened (`open=`): the client's TLS, which
    /// every byte read from it and every answer to it goes through.
    pub tls: Option<Box<tls::Session>>,
    /// Ask mode: what this client asks, for the loop to file as a question
    /// (set when it is held, taken by the loop)...
    pub asking: Option<crate::ask::Asking>,
    /// ...the question it is held on, once filed: it is not read from
    /// until answered...
    pub held: Option<u64>,
    /// ...and the answer, which the next `advance` acts on.
    pub answer: Option<crate::ask::Scope>,
    /// How a person allowed it (for report mode's draft).
    pub asked_how: Option<crate::ask::Scope>,
    /// A plain request's method and target, for the question.
    request_line: Option<(String, String)>,
    /// A transparent listener's plain request, already rewritten into
    /// absolute form (read again after an answer: not rewritten twice).
    absolute: bool,
    /// A forward route: the names still to ask for its destination (from
    /// the search list, each checked by the policy), the next one last.
    candidates: Vec<String>,
    phase: Phase,
    /// Bytes read past any PROXY header: the start of the client's stream.
    read: Vec<u8>,
    /// When the current phase gives up.
    pub deadline: Instant,
    pub opened: Instant,
    /// Back for its next request (`next_request`) with nothing read past
    /// the last (and no TLS session holding bytes unseen): nothing of the
    /// next can be waiting that the poller would not report, so its first
    /// read is left to the poller's word, not tried at once to hear "would
    /// block".
    wait_first: bool,
}

impl Front {
    pub fn new(id: u64, door: usize, client: Stream, peer: SocketAddr, now: Instant) -> Front {
        Front { id, door, policy: 0, client_name: None, client, peer, from: peer, to: None, asked: None, target: None, reason: None, decision: None, speaks: Speaks::Http, pinned: None, tls: None, asking: None, held: None, answer: None, asked_how: None, request_line: None, absolute: false, candidates: Vec::new(), phase: Phase::Accepted, read: Vec::new(), deadline: now, opened: now, wait_first: false }
    }

    /// A forward client back for its next request, with what it already
    /// sent of it (`read`): checked like a new client, PROXY header aside;
    /// inside a tunnel (`pinned`), toward its destination alone, through
    /// the client's TLS if the tunnel was opened.
    pub fn next_request(id: u64, (door, policy, client_name): (usize, usize, Option<String>), (client, from): (Stream, SocketAddr), read: Vec<u8>, (pinned, tls): (Option<(String, u16)>, Option<Box<tls::Session>>), now: Instant) -> Front {
        let wait_first = read.is_empty() && tls.is_none();
        Front { phase: Phase::Next, policy, client_name, read, pinned, tls, wait_first, ..Front::new(id, door, client, from, now) }
    }

    /// Go as far as what the client has sent allows: called once at
    /// accept, then whenever the client is readable.
    pub fn advance(&mut self, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        match &mut self.phase {
            Phase::Accepted if rules.accept_proxy => {
                self.phase = Phase::ProxyHeader(proxy_header::Reader::default());
                self.deadline = now + rules.header_timeout;
                Step::Wait // nothing can have arrived this early
            }
            Phase::Accepted | Phase::Next => self.check(rules, resolver, now),
            Phase::ProxyHeader(reader) => match read_header(&mut self.client, reader) {
                Ok(None) => Step::Wait,
                Ok(Some(Received { addrs, rest })) => {
                    if let Some((from, to)) = addrs {
                        (self.from, self.to) = (from, Some(to));
                    }
                    self.read = rest;
                    self.check(rules, resolver, now)
                }
                Err(why) => self.close(Reason::BadProxyHeader(why)),
            },
            Phase::Peek => self.peek(rules),
            Phase::Mixed => self.first_bytes(rules, resolver, now),
            Phase::Request => self.request(rules, resolver, now),
            Phase::Hello => self.hello(rules),
            Phase::Socks(_) => self.socks(rules, resolver, now),
            Phase::Resolve(_) => Step::Wait, // nothing to read until the answer
        }
    }

    /// The lookup this front waits for, if any.
    pub fn waits_for(&self) -> Option<LookupId> {
        match self.phase {
            Phase::Resolve(id) => Some(id),
            _ => None,
        }
    }

    /// The deadline passed: why it is closed.
    pub fn expired(&mut self) -> Reason {
        if self.held.is_some() || self.asking.is_some() {
            return self.unanswered(crate::forward::Rule::AskTimeout);
        }
        match self.phase {
            Phase::Peek | Phase::Mixed | Phase::Request | Phase::Hello | Phase::Socks(_) => Reason::PeekTimeout(self.read.len()),
            Phase::Resolve(_) => {
                let host = self.target.as_ref().map(|t| t.host.clone()).unwrap_or_default();
                let why = Reason::DnsTimeout(host);
                self.tell(&self.speaks.refusal(&why));
                why
            }
            _ => Reason::BadProxyHeader("no PROXY header in time".into()),
        }
    }

    /// The bytes to send upstream before anything else the client sends.
    pub fn take_read(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.read)
    }

    /// Past any PROXY header: the allow/deny lists, then the peek if the
    /// port routes by name.
    fn check(&mut self, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        if !rules.acl.permits(self.from.ip()) || rules.unclaimed {
            return self.close(Reason::Denied);
        }
        if rules.forward.is_some() {
            // A new client may speak HTTP or SOCKS5; one back for its next
            // request speaks HTTP, as it did; a transparent listener's
            // client speaks to the server it thinks it reaches.
            let fresh = !matches!(self.phase, Phase::Next) && rules.forward.is_some_and(|(_, f)| f.transparent.is_none());
            self.phase = if fresh { Phase::Mixed } else { Phase::Request };
            self.deadline = now + rules.peek_timeout;
            return self.advance(rules, resolver, now);
        }
        if !rules.table.peeks() {
            return match rules.table.default_route() {
                Some(route) => Step::Relay(route),
                None => self.close(Reason::NoRoute), // a port always has a route; kept total
            };
        }
        self.phase = Phase::Peek;
        self.deadline = now + rules.peek_timeout;
        self.peek(rules)
    }

    /// Read what the client has sent (up to `PEEK_LIMIT`), and route it
    /// once the ClientHello or request head is complete.
    fn peek(&mut self, rules: &Rules<'_>) -> Step {
        let before = self.read.len();
        let ended = match self.read_more() {
            Ok(ended) => ended,
            Err(e) => return self.close(Reason::Error(Side::Client, e)),
        };
        if !ended && no_line_end_since(&self.read, before) {
            return Step::Wait;
        }
        let asked = match self.parse(rules) {
            Ok(Some(asked)) => asked,
            Ok(None) if self.read.len() > PEEK_LIMIT => {
                return self.close(Reason::PeekTooLarge(format!("no end in the first {PEEK_LIMIT} bytes")));
            }
            Ok(None) if ended && self.read.is_empty() => return self.close(Reason::Closed(Side::Client)),
            Ok(None) if ended => {
                let why = format!("the client closed after {} bytes, before saying a name", self.read.len());
                let tls = self.read.first().is_some_and(|&b| client_hello::looks_like_tls(b));
                return self.close(if tls { Reason::BadClientHello(why) } else { Reason::BadRequest(why) });
            }
            Ok(None) => return Step::Wait,
            Err(Failure::BadClientHello(why)) => {
                // A fatal alert (decode_error), as a server would send.
                if self.read.first().is_some_and(|&b| client_hello::looks_like_tls(b)) {
                    tell(&self.client, &client_hello::fatal_alert(&self.read, client_hello::DECODE_ERROR));
                }
                return self.close(Reason::BadClientHello(why));
            }
            Err(Failure::BadRequest(why)) => return self.close(Reason::BadRequest(why)),
            Err(Failure::TooLarge(why)) => return self.close(Reason::PeekTooLarge(why)),
            Err(failure @ Failure::Framing(..)) => return self.close(Reason::BadRequest(failure.why())),
        };
        let picked = rules.table.pick(&asked);
        self.asked = Some(asked);
        match picked {
            Some(route) => Step::Relay(route),
            None => {
                self.refuse();
                self.close(Reason::NoRoute)
            }
        }
    }

    /// Read what the client has sent, up to `PEEK_LIMIT` (one byte more, to
    /// see that it is over). `Ok(true)`: the client has closed.
    pub(super) fn read_more(&mut self) -> io::Result<bool> {
        match self.tls.as_deref_mut() {
            Some(tls) => {
                // Decrypted, answering what the handshake asks on the way.
                let mut end = tls::TlsEnd { stream: &self.client, tls };
                let ended = SCRATCH.with_borrow_mut(|chunk| read_into(|buf| end.read(buf), &mut self.read, PEEK_LIMIT, chunk, false))?;
                tls::flush(&self.client, end.tls)?;
                Ok(ended)
            }
            None => read_up_to(&self.client, &mut self.read, PEEK_LIMIT),
        }
    }

    /// Answer the client (then close it), through its TLS if it has one.
    pub(super) fn tell(&mut self, answer: &[u8]) {
        tell_through(&self.client, self.tls.as_deref_mut(), answer);
    }

    /// What the bytes so far ask for: TLS if they start a handshake record
    /// and the port takes TLS, else an HTTP request if it takes those.
    fn parse(&self, rules: &Rules<'_>) -> Result<Option<Asked>, Failure> {
        let Some(&first) = self.read.first() else { return Ok(None) };
        let tls = rules.table.takes_tls();
        if tls && (client_hello::looks_like_tls(first) || !rules.table.takes_http()) {
            if !client_hello::looks_like_tls(first) {
                return Err(Failure::BadClientHello(format!("not TLS: the first byte is {:?}", first.escape_ascii().to_string())));
            }
            let Some(hello) = client_hello::parse(&self.read)? else { return Ok(None) };
            let name = hello.server_name.as_deref().map(normalize);
            // The name check of every front (`_` allowed: sni= patterns take it).
            if let Some(Err(why)) = name.as_deref().map(|n| crate::names::check(n, true)) {
                return Err(Failure::BadClientHello(format!("the server name {:?} is not a host name: {why}", name.unwrap_or_default())));
            }
            Ok(Some(Asked::Tls { name, alpn: hello.alpn }))
        } else {
            let head = http_head::parse(&self.read)?;
            Ok(head.map(|h| Asked::Http { host: h.host.as_deref().map(|host| normalize(http_head::without_port(host))) }))
        }
    }

    /// No route for the name: say so in the client's protocol, best effort
    /// (a few bytes into an empty socket buffer).
    fn refuse(&mut self) {
        let answer = match &self.asked {
            Some(Asked::Tls { .. }) => client_hello::fatal_alert(&self.read, client_hello::UNRECOGNIZED_NAME),
            Some(Asked::Http { host }) => {
                let body = match host {
                    Some(h) => format!("wasiter: no route for host {h:?}\n"),
                    None => "wasiter: no route for a request without a Host header\n".to_string(),
                };
                http_answer(421, "Misdirected Request", &body)
            }
            None => return,
        };
        tell(&self.client, &answer);
    }

    pub(super) fn close(&mut self, reason: Reason) -> Step {
        self.reason = Some(reason);
        Step::Close
    }
}

