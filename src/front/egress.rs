//! A forward route's client: its proxy request read and checked against
//! the route's policy (`crate::forward`), the name looked up in the loop's
//! resolver, and the decision (allow, deny, would-deny, with its rule) kept
//! for the log and the metrics. Refusals are HTTP answers with one line.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::proxy_request::{self, InTunnel, Method};
use super::failure::Failure;
use super::target::Target;
use super::{http_answer_with, Front, Phase, Rules, Speaks, Step, PEEK_LIMIT};
use crate::close::{Reason, Side};
use crate::dns::{self, Lookup, Resolver};
use crate::forward::{Decision, Refusal, Rule};
use crate::http1::Exchange;
use crate::names::Asked;
use crate::relay::Framing;

/// How long a forward client may wait for its destination's addresses, at
/// most (the resolver gives up sooner: timeout x attempts x servers).
const RESOLVE_LIMIT: Duration = Duration::from_secs(60);

impl Front {
    /// Its lookup finished: check the addresses, then relay or refuse; no
    /// such name: the next name the search list makes of it, if any.
    pub fn resolved(&mut self, result: dns::Addrs, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        if matches!(result, Err(dns::Error::NotFound)) {
            if let Some(next) = self.candidates.pop() {
                return self.ask(&next, rules, resolver, now);
            }
        }
        let (Some((route, forward)), Some(target)) = (rules.forward, self.target.as_mut()) else { return Step::Close };
        let host = target.host.clone();
        if let Some(parent) = &target.parent {
            // The parent's addresses: the route names it, so the address
            // rules (for where clients go) are not its to pass.
            return match result {
                Ok(ips) => {
                    target.addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, parent.port)).collect();
                    Step::Relay(route)
                }
                Err(e) => {
                    let name = parent.host.clone();
                    self.dns_failed(e, format!("the parent {name}"))
                }
            };
        }
        let ips = match result {
            Ok(ips) => ips,
            Err(e) => return self.dns_failed(e, host),
        };
        match forward.check_addrs(&host, target.port, &ips) {
            Ok(ips) => {
                target.addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, target.port)).collect();
                Step::Relay(route) // the decision that check_name made stands
            }
            Err(refusal) => self.refused(refusal),
        }
    }

    /// The destination's name could not be looked up: 502, or 504 when no
    /// answer came.
    fn dns_failed(&mut self, e: dns::Error, h: String) -> Step {
        match e {
            dns::Error::NotFound => self.answer(Reason::DnsFailed(format!("{h}: no such name"))),
            dns::Error::Timeout => self.answer(Reason::DnsTimeout(h)),
            e => self.answer(Reason::DnsFailed(format!("{h}: {e}"))),
        }
    }

    /// The policy refused: 403 with its one line, and the decision kept
    /// for the decision log line and the metrics.
    pub(super) fn refused(&mut self, refusal: Refusal) -> Step {
        self.decision = Some((Decision::Deny, refusal.rule));
        let text = self.naming_client(refusal.text);
        self.answer(Reason::Forbidden(text))
    }

    /// A client of a shared address that its address does not claim may
    /// log in to one of its login policies (`crate::forward::identity`):
    /// `true` when that moved it to another policy, whose rules the loop
    /// reads its request again under (`Proxy::advance`).
    pub(super) fn log_in_to(&mut self, rules: &Rules<'_>, opens: impl Fn(&crate::forward::Login) -> bool) -> bool {
        let Some((_, forward)) = rules.forward else { return false };
        if forward.identity.by_socket() {
            return false;
        }
        match crate::forward::identity::by_login(rules.logins, opens) {
            Some(l) if l.policy != self.policy => {
                self.policy = l.policy;
                self.client_name = l.name.clone();
                true
            }
            _ => false,
        }
    }

    /// A refusal's line, saying whose policy refused when the client has
    /// a name (`client=`): "pypi.org:443 refused for client app (rule ...".
    pub(super) fn naming_client(&self, text: String) -> String {
        match &self.client_name {
            Some(name) => text.replacen(" refused (rule ", &format!(" refused for client {name} (rule "), 1),
            None => text,
        }
    }

    /// Refused for its budget (`crate::forward::budget`): `429` (a SOCKS5
    /// "not allowed", a TLS alert), the decision kept.
    pub fn over_budget(&mut self, refusal: Refusal) {
        self.decision = Some((Decision::Deny, refusal.rule));
        let reason = Reason::OverBudget(self.naming_client(refusal.text));
        self.tell(&self.speaks.refusal(&reason));
        self.reason = Some(reason);
    }

    /// A forward route: read the proxy request; check what it names; look
    /// the name up (at once from the cache or /etc/hosts, else wait).
    pub(super) fn request(&mut self, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        if std::mem::take(&mut self.wait_first) {
            return Step::Wait; // read once the poller says there is something
        }
        let before = self.read.len();
        let ended = match self.read_more() {
            Ok(ended) => ended,
            Err(e) => return self.close(Reason::Error(Side::Client, e)),
        };
        if !ended && super::no_line_end_since(&self.read, before) {
            return Step::Wait;
        }
        if let Some((host, port)) = self.pinned.clone() {
            // Inside a tunnel that carries HTTP: each request toward the
            // tunnel's destination alone, then read as any proxy request.
            match proxy_request::in_tunnel(&self.read, &host, port) {
                Ok(Some(request)) => self.read = request,
                Ok(None) if ended && self.read.is_empty() => return self.close(Reason::Closed(Side::Client)),
                Ok(None) if ended || self.read.len() > PEEK_LIMIT => return self.refuse_in_tunnel(Rule::NotHttp, Reason::NotHttp(format!("no complete request head in {} bytes", self.read.len()))),
                Ok(None) => return Step::Wait,
                Err(InTunnel::OtherHost(why)) => return self.refuse_in_tunnel(Rule::SniMismatch, Reason::NameMismatch(why)),
                Err(InTunnel::Unreadable(Failure::TooLarge(why))) => return self.answer(Reason::PeekTooLarge(why)),
                Err(InTunnel::Unreadable(failure)) => return self.refuse_in_tunnel(Rule::NotHttp, Reason::NotHttp(failure.why())),
            }
        } else if let Some(port) = rules.forward.and_then(|(_, f)| f.transparent).filter(|_| !self.absolute) {
            // A transparent listener's client: TLS decided there; a plain
            // request goes on below, now in absolute form.
            if let super::transparent::First::Step(step) = self.transparent(port, ended, rules, resolver, now) {
                return step;
            }
        }
        let mut req = match proxy_request::parse(&self.read) {
            Ok(Some(req)) => req,
            Ok(None) if ended && self.read.is_empty() => return self.close(Reason::Closed(Side::Client)),
            Ok(None) if ended => return self.answer(Reason::BadRequest("the client closed before its request ended".into())),
            Ok(None) => return Step::Wait,
            Err(Failure::TooLarge(why)) => return self.answer(Reason::PeekTooLarge(why)),
            Err(Failure::Framing(asked, why)) => {
                // A smuggling attempt is a decision of its own (rule=framing).
                self.asked = Some(Asked::Http { host: Some(asked) });
                self.decision = Some((Decision::Deny, Rule::Framing));
                return self.answer(Reason::BadRequest(why));
            }
            Err(Failure::BadRequest(why) | Failure::BadClientHello(why)) => return self.answer(Reason::BadRequest(why)),
        };
        let Some((_, forward)) = rules.forward else { return Step::Close };
        // A login that opens another policy of this address: read again under it.
        if self.pinned.is_none() && self.log_in_to(rules, |l| l.check_basic(req.auth.as_deref()).is_ok()) {
            return Step::Wait;
        }
        // Inside a tunnel the client logged in with its CONNECT.
        let login = if self.pinned.is_some() { Ok(()) } else { forward.check_auth(req.auth.as_deref()) };
        if let Err(why) = login {
            // 407, with the challenge a client needs to log in (curl -x http://user:pass@...).
            let body = format!("wasiter: {why}\n");
            let head = "Proxy-Authenticate: Basic realm=\"wasiter\"\r\n";
            self.tell(&http_answer_with(407, "Proxy Authentication Required", head, &body));
            return self.close(Reason::ProxyAuth(why));
        }
        let tunnel = req.method == Method::Connect;
        self.request_line = (!tunnel).then(|| (req.verb.clone(), req.target.clone()));
        // A request inside a tunnel meets the ports its CONNECT met.
        if let Err(step) = self.decide(&req.host, req.port, tunnel || self.pinned.is_some(), rules, now) {
            return step;
        }
        let opened = self.tls.is_some();
        if tunnel {
            let asked = self.read.get(..req.head_len).unwrap_or_default().to_vec();
            if let Some(step) = self.tunnel_checks((&req.host, req.port), (&asked, "in the CONNECT request", req.head_len), rules) {
                return step;
            }
        } else if let Some(Err(refusal)) = std::iter::once(&req.verb).chain(&req.overrides).map(|verb| forward.check_request(&req.host, req.port, verb, &req.target)).find(Result::is_err) {
            return self.refused(refusal);
        }
        let parent = forward.parent_for(&req.host).cloned().filter(|_| !opened);
        // What goes to the destination first: for a plain request its head
        // in origin form and as much of its body as came with it (what came
        // after is its next request: the exchange keeps it); for a tunnel
        // what the client sent after the CONNECT (checked by conn's bind).
        let rest = self.read.get(req.head_len..).unwrap_or_default();
        let (early, exchange) = match &mut req.method {
            Method::Http { head, body, to_head, close, upgrade } => {
                let head = std::mem::take(head); // req's copy is not read again
                let mut exchange = Exchange::new(*body, *to_head, *close, *upgrade);
                exchange.pinned = self.pinned.clone();
                // Credentials: a placeholder swapped for its value where it
                // may go (over TLS we opened, to its names), refused where
                // it may not; the answer gets the placeholders back.
                let head = if opened { super::proxy_request::https_host(head, &req.host, req.port) } else { head };
                let mut shown = None;
                let head = match rules.secrets.inject_for(&head, &req.host, opened, self.client_name.as_deref()) {
                    Ok(None) => head,
                    Ok(Some(injected)) => {
                        exchange.response.redactor = Some(rules.secrets.redactor(injected.echoes));
                        shown = Some(head);
                        let head = if *upgrade {
                            // A websocket's frames after its 101 are not
                            // read: one opened with a value swapped in could
                            // echo it unseen. Asked without the upgrade.
                            exchange.response.reader = crate::http1::ResponseReader::new(*to_head);
                            without_upgrade(injected.head)
                        } else {
                            injected.head
                        };
                        // An echo in a body the client had compressed would hide.
                        crate::secrets::uncompressed(&head)
                    }
                    Err(leak) => return self.refused(crate::forward::Forward::leak(&req.host, req.port, leak.why)),
                };
                if exchange.response.redactor.is_none() && !rules.secrets.is_empty() {
                    exchange.response.redactor = Some(rules.secrets.redactor(Vec::new()));
                }
                let used = match exchange.request.feed(&mut rest.to_vec()) {
                    Ok(n) => n,
                    Err(why) => return self.answer(Reason::BadRequest(why)),
                };
                // Through a parent: the request line in absolute form, and its login.
                let head = match &parent {
                    Some(p) => p.absolute_head(&head, &req.host, req.port),
                    None => head,
                };
                exchange.shown = shown.map(|s| [&s, rest.get(..used).unwrap_or_default()].concat());
                let early = if used == 0 { head } else { [&head, rest.get(..used).unwrap_or_default()].concat() };
                (early, Some(Box::new(exchange)))
            }
            Method::Connect => (rest.to_vec(), None),
        };
        self.read = early;
        self.look_up(Target { host: req.host, port: req.port, tunnel, addrs: Vec::new(), exchange, parent, opened }, rules, resolver, now)
    }

    /// What every front's client asks, checked by the route's policy:
    /// `Err` with the step that refuses it. The decision is kept for the
    /// decision line and the metrics.
    pub(super) fn decide(&mut self, host: &str, port: u16, tunnel: bool, rules: &Rules<'_>, now: Instant) -> Result<(), Step> {
        let Some((_, forward)) = rules.forward else { return Err(Step::Close) };
        self.asked = Some(Asked::Http { host: Some(format!("{host}:{port}")) });
        let checked = forward.check_name(host, port, tunnel);
        if crate::log::tracing() {
            let verb = match (self.speaks, tunnel) {
                (Speaks::Socks5, _) => "SOCKS5 CONNECT",
                (Speaks::Tls, _) => "TLS (transparent)",
                (Speaks::Http, true) => "CONNECT",
                (Speaks::Http, false) => "GET/...",
            };
            let verdict = checked.as_ref().map_or_else(|r| format!("refused: {}", r.text), |(d, _)| format!("{}: looking it up", d.name()));
            crate::log::trace_line(format_args!("request(conn={}, {verb} {host}:{port})", self.id), format_args!("{verdict}"));
        }
        match checked {
            Ok((Decision::Ask, _)) => self.ask_person(host, port, tunnel, rules, now),
            Ok(decision) => {
                self.decision = Some(decision);
                Ok(())
            }
            Err(refusal) => Err(self.refused(refusal)),
        }
    }

    /// Look the destination's name up, or its parent's (at once from the
    /// cache or /etc/hosts, else wait for the answer). The resolver is
    /// asked only for names the policy saw: each name resolv.conf's search
    /// list makes of the destination's (`api` -> `api.corp.test`, as
    /// getaddrinfo would try them) is checked as the name itself was, the
    /// ones it refuses are never asked, and the rest are asked as absolute
    /// names (`name.`), one after the other while the answer is "no such name".
    pub(super) fn look_up(&mut self, target: Target, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        let name = match &target.parent {
            Some(parent) => parent.host.clone(),
            // An address, or a name /etc/hosts gives: answered as it is.
            None if target.host.parse::<std::net::IpAddr>().is_ok() || !resolver.hosts().lookup(&target.host).is_empty() => target.host.clone(),
            None => {
                let policy = rules.forward.map(|(_, f)| f);
                let checked = |c: &String| policy.is_some_and(|f| f.check_host(c, target.port).is_ok());
                self.candidates = resolver.conf().candidates(&target.host).into_iter().filter(checked).map(|c| format!("{c}.")).rev().collect();
                self.candidates.pop().unwrap_or_else(|| format!("{}.", target.host))
            }
        };
        self.target = Some(target);
        self.ask(&name, rules, resolver, now)
    }

    /// Ask the resolver for `name`: go on now, or wait for its answer.
    fn ask(&mut self, name: &str, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        match resolver.lookup(name, now) {
            Lookup::Ready(result) => self.resolved(result, rules, resolver, now),
            Lookup::Pending(id) => {
                self.phase = Phase::Resolve(id);
                self.deadline = now + RESOLVE_LIMIT;
                Step::Wait
            }
        }
    }

    /// A request inside a tunnel refused for `rule`: a decision of its own.
    fn refuse_in_tunnel(&mut self, rule: Rule, reason: Reason) -> Step {
        if let Some((host, port)) = &self.pinned {
            self.asked = Some(Asked::Http { host: Some(format!("{host}:{port}")) });
        }
        self.decision = Some((Decision::Deny, rule));
        self.answer(reason)
    }

    /// Answer a forward client in its protocol (`Speaks`: an HTTP status,
    /// a SOCKS5 reply code or a TLS alert, each from `reason`), then close it.
    pub(super) fn answer(&mut self, reason: Reason) -> Step {
        self.tell(&self.speaks.refusal(&reason));
        self.close(reason)
    }
}

/// A head as `proxy_request::parse` writes it for a websocket, without the
/// upgrade it asks for (the two lines it ends with).
fn without_upgrade(head: Vec<u8>) -> Vec<u8> {
    const ASK: &[u8] = b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    match head.strip_suffix(ASK) {
        Some(rest) => [rest, b"\r\n"].concat(),
        None => head,
    }
}
