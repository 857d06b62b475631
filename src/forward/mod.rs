//! A forward proxy's destination policy: which names, ports and (once
//! resolved) addresses a client may reach. Checked before any connection
//! is made, and again on the addresses the name resolved to, so that an
//! allowed name cannot lead to loopback or to a cloud metadata address
//! unless a rule says so.
//!
//! ```text
//! LISTEN=forward;to=NAME|ADDRESS|CIDR,...[;not-to=NAME,...][;to-net=CIDR,...][;ports=PORT,...][;opaque=PORT,...][;auth=USER:PASS][;report]
//!               [;parent=http://[USER:PASS@]HOST:PORT[;direct=NAME,...]][;transparent=PORT]
//! ```
//!
//! Every decision names its `Rule`, a stable id for the decision log line,
//! the metrics and the refusal a client reads, which also says what option
//! would allow it. In report mode (`report`) a name the list does not name
//! passes as `would-deny`, so that a team can draft its list from what its
//! tools really ask for; the address rules still refuse.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::names::Pattern;
use ranges::{embedded_v4, guarded, looks_numeric};
#[cfg(test)]
use ranges::GUARDED;

pub mod budget;
mod ranges;
pub mod http_rules;
pub mod identity;
mod login;
mod parent;

pub use login::Login;
pub use parent::Parent;
pub use http_rules::{HttpRule, HttpRules};

/// Where a forward route's clients may go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// Names allowed (`*` for any); empty: none. A preset (`to=@python`)
    /// is its names here (`crate::presets`)...
    pub to: Vec<Pattern>,
    /// ...and its name here, for the start line.
    pub presets: Vec<String>,
    /// Names refused even when `to` allows them.
    pub not_to: Vec<Pattern>,
    /// Addresses a name may resolve to; empty: any but the guarded ranges.
    pub nets: Vec<IpNet>,
    /// Networks written in `to=` (`to=10.1.2.0/24`): the IP-literal
    /// destinations allowed besides the addresses `to=` names one by one.
    /// `nets` never allows a literal: it says where names may lead.
    pub to_nets: Vec<IpNet>,
    /// Ports allowed; empty: 443 for CONNECT, 80 for plain HTTP (as squid).
    pub ports: Vec<u16>,
    /// `opaque=PORT,...`: tunnels to these ports may carry bytes that are
    /// neither TLS nor HTTP (ssh, a database), passed unread. On any other
    /// port a tunnel carries TLS bound to its name, or HTTP requests each
    /// read and checked (`crate::conn::bind`).
    pub opaque: Vec<u16>,
    /// `auth=USER:PASS`: the login a client must give (`login.rs`), or
    /// `None` for no proxy login.
    pub auth: Option<Login>,
    /// `report`: names not in `to=` pass, as `would-deny` (drafting a list).
    pub report: bool,
    /// `ask` (`ask-timeout=`): a name not in `to=` is held while a person
    /// decides (`crate::ask`), for at most this long.
    pub ask: Option<std::time::Duration>,
    /// `parent=`: the proxy every allowed request goes through...
    pub parent: Option<Parent>,
    /// ...except to the names of `direct=` (`parent.rs`).
    pub direct: Vec<Pattern>,
    /// `transparent=PORT`: clients do not know the proxy is there (the
    /// kernel redirected them); the destination is the TLS server name or
    /// HTTP `Host` they send, on this port (`crate::front::transparent`).
    pub transparent: Option<u16>,
    /// `LISTEN=dns;...`: not a proxy but the allowlist DNS server, which
    /// answers for the names this policy allows (`crate::dns_server`).
    pub dns: bool,
    /// `underscore`: names may hold `_` (service names such as
    /// `_acme-challenge`, or hosts named so); else a name with one is
    /// refused as a bad name (`crate::names::check`).
    pub underscore: bool,
    /// `open=NAME,...`: names whose TLS the proxy terminates on tunnels to
    /// port 443 (with a leaf from `--ca`), so that each request inside is
    /// read, checked (`http`) and given its credentials (`crate::secrets`).
    pub open: Vec<Pattern>,
    /// `allow-http=HOST/PATH:METHODS,...`: the requests the hosts they name
    /// may be asked (`http_rules.rs`).
    pub http: http_rules::HttpRules,
    /// `budget=NAMES:LIMITS/WINDOW` (repeated): what one client may ask of
    /// the names each covers, per window (`budget.rs`).
    pub budgets: Vec<budget::Budget>,
    /// `client=`, `from=`, `uid=`: which clients of its listen address get
    /// this policy, and its name (`identity.rs`).
    pub identity: identity::Identity,
}

/// What the policy decided for one request or tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Report mode: let through, but the list as written would refuse it.
    WouldDeny,
    /// Ask mode: not listed; held until a person answers (`crate::ask`).
    /// Never a final decision: the answer replaces it.
    Ask,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Deny, Decision::WouldDeny];

    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would-deny",
            Decision::Ask => "ask",
        }
    }
}

/// The rule behind a decision: its `rule=` id in logs, metrics and refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The name is in `to=` (or the address, or a network holding it), its port
    /// allowed and its addresses outside the refused ranges.
    Listed,
    /// The name is in no `to=` pattern.
    NotListed,
    /// A `not-to=` pattern names it.
    NotTo,
    /// The port is not in `ports=` (or the default 443/80).
    Port,
    /// The name resolved only into ranges it may not reach.
    Address,
    /// An IP address (or a number that reads as one) no rule names.
    IpLiteral,
    /// A tunnel's ClientHello (or request) named another host.
    SniMismatch,
    /// A tunnel to port 443 that did not carry TLS.
    NotTls,
    /// A tunnel to a port not in `opaque=` whose bytes are neither TLS nor
    /// a well-formed HTTP/1.x request.
    NotHttp,
    /// A request whose framing could be read two ways: a `Connection`
    /// header naming Content-Length, Transfer-Encoding or Host, both
    /// Content-Length and Transfer-Encoding, and the like.
    Framing,
    /// Not a host name: an empty label, a label or name too long, a
    /// character a host name never has (`crate::names::check`).
    BadName,
    /// A request an `allow-http=` rule of its host does not allow (its
    /// method or path), a path that cannot be matched safely, or a tunnel
    /// to such a host that the proxy does not open (it would skip them).
    HttpRule,
    /// A secret's placeholder on its way where its value may not go
    /// (`crate::secrets`): an attempted leak.
    PlaceholderLeak,
    /// Not listed, and a person answered: allowed (once, for the session,
    /// forever), or refused (`crate::ask`).
    Asked,
    AskDenied,
    /// Not listed, and nobody answered within `ask-timeout=`.
    AskTimeout,
    /// Not listed, and refused unasked to make room for newer questions.
    AskFull,
    /// Allowed, but the client used its `budget=` for the name.
    Budget,
}

impl Rule {
    pub const ALL: [Rule; 18] = [Rule::Listed, Rule::NotListed, Rule::NotTo, Rule::Port, Rule::Address, Rule::IpLiteral, Rule::SniMismatch, Rule::NotTls, Rule::NotHttp, Rule::Framing, Rule::BadName, Rule::HttpRule, Rule::PlaceholderLeak, Rule::Asked, Rule::AskDenied, Rule::AskTimeout, Rule::AskFull, Rule::Budget];

    pub fn id(self) -> &'static str {
        match self {
            Rule::Listed => "listed",
            Rule::NotListed => "not-listed",
            Rule::NotTo => "not-to",
            Rule::Port => "port",
            Rule::Address => "address",
            Rule::IpLiteral => "ip-literal",
            Rule::SniMismatch => "sni-mismatch",
            Rule::NotTls => "tunnel-not-tls",
            Rule::NotHttp => "tunnel-not-http",
            Rule::Framing => "framing",
            Rule::BadName => "bad-name",
            Rule::HttpRule => "http-rule",
            Rule::PlaceholderLeak => "placeholder-leak",
            Rule::Asked => "asked",
            Rule::AskDenied => "ask-denied",
            Rule::AskTimeout => "ask-timeout",
            Rule::AskFull => "ask-full",
            Rule::Budget => "budget",
        }
    }
}

/// A refusal: the rule, and one line that says what was refused, why, and
/// what option would allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub text: String,
}

impl Refusal {
    /// Port 0: a name asked for without a port (a DNS question).
    fn new(rule: Rule, host: &str, port: u16, why: String, fix: String) -> Refusal {
        let target = match port {
            0 => host.to_string(),
            _ if host.contains(':') => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        Refusal { rule, text: format!("{target} refused (rule {}): {why}; to allow it, {fix}", rule.id()) }
    }
}


impl Forward {
    /// Require `user:pass` (`login.rs`).
    pub fn set_auth(&mut self, pair: &str) -> Result<(), String> {
        self.auth = Some(Login::parse(pair)?);
        Ok(())
    }

    /// Did an HTTP client log in (its `Proxy-Authorization`), if this route asks it to?
    pub fn check_auth(&self, given: Option<&str>) -> Result<(), String> {
        self.auth.as_ref().map_or(Ok(()), |login| login.check_basic(given))
    }

    /// Does this route ask its clients to log in?
    pub fn asks_login(&self) -> bool {
        self.auth.is_some()
    }

    /// Did a SOCKS5 client log in (its username and password), if this route asks it to?
    pub fn check_login(&self, user: &[u8], pass: &[u8]) -> Result<(), String> {
        self.auth.as_ref().map_or(Ok(()), |login| login.check_pair(user, pass))
    }

    /// Does the proxy open the TLS of a tunnel to `host` (`open=`), on
    /// whichever port `ports=` lets it reach? Such a tunnel must carry TLS.
    pub fn opens(&self, host: &str, _port: u16) -> bool {
        self.open.iter().any(|p| p.matches(host))
    }

    /// A tunnel to `host:port` that the proxy will not open: refused when
    /// `allow-http=` rules name the host, which the tunnel would skip.
    pub fn check_tunnel(&self, host: &str, port: u16) -> Result<(), Refusal> {
        if !self.http.names(host) || self.opens(host, port) {
            return Ok(());
        }
        let why = format!("allow-http= rules name {host}, and a tunnel the proxy does not open would skip them");
        Err(Refusal::new(Rule::HttpRule, host, port, why, format!("list {host} in open= (and give --ca), or take it out of allow-http=")))
    }

    /// A request to `host:port` read whole (plain, in a tunnel that carries
    /// HTTP, or opened): what `allow-http=` says of its method and target.
    pub fn check_request(&self, host: &str, port: u16, method: &str, target: &str) -> Result<(), Refusal> {
        self.http.check(host, method, target).map_err(|why| Refusal::new(Rule::HttpRule, host, port, why, "add a rule to allow-http= for it".into()))
    }

    /// A held destination a person refused, or nobody answered for in time
    /// (`rule`: `AskDenied`, `AskTimeout`, `AskFull`).
    pub fn unanswered(rule: Rule, host: &str, port: u16, why: String) -> Refusal {
        let fix = match rule {
            Rule::AskDenied => "answer allow when it is asked again, or add it to to=".to_string(),
            _ => format!("answer on the admin page sooner (ask-timeout=), or add it to to= (to=...,{host})"),
        };
        Refusal::new(rule, host, port, why, fix)
    }

    /// The budget a request to `host` counts toward (the first that covers it).
    pub fn budget_for(&self, host: &str) -> Option<usize> {
        self.budgets.iter().position(|b| b.covers(host))
    }

    /// A request refused for its budget.
    pub fn over_budget(host: &str, port: u16, why: String) -> Refusal {
        Refusal::new(Rule::Budget, host, port, why, "wait for the window to end, or raise the route's budget=".into())
    }

    /// A secret's placeholder seen where its value may not go.
    pub fn leak(host: &str, port: u16, why: String) -> Refusal {
        Refusal::new(Rule::PlaceholderLeak, host, port, why, "send the placeholder only to the names its secret lists, over TLS the proxy opens".into())
    }

    /// The parent that a request for `host` goes through, if any: the
    /// route's parent, unless a `direct=` pattern names the host.
    pub fn parent_for(&self, host: &str) -> Option<&Parent> {
        let parent = self.parent.as_ref()?;
        (!self.direct.iter().any(|p| p.matches(host))).then_some(parent)
    }

    /// May a client ask for `host:port`? `Ok`: allowed (or, in report mode,
    /// let through as `would-deny`) for this rule; `Err`: refused.
    pub fn check_name(&self, host: &str, port: u16, connect: bool) -> Result<(Decision, Rule), Refusal> {
        let decision = self.check_host(host, port)?;
        self.check_port(host, port, connect).map(|()| decision)
    }

    /// The name rules alone, whatever the port (`port` only for the
    /// refusal's text; 0 for none): what a DNS question for `host` meets.
    pub fn check_host(&self, host: &str, port: u16) -> Result<(Decision, Rule), Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            // An address skips every name rule, so it passes only where
            // to= names it: itself, or a network written in to=. Not
            // to-net=, which says where names may lead: a network listed
            // there for one name's sake would open every address in it to
            // anyone who types one (a scan of the network).
            let ip = ip.to_canonical();
            let names = |p: &Pattern| matches!(p, Pattern::Exact(s) if s.parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == ip));
            let named = self.to.iter().any(names) || self.to_nets.iter().any(|n| n.contains(&ip));
            if !named || self.not_to.iter().any(names) {
                let why = format!("{host} is an IP address, allowed only when to= names it or a network holding it (to=*.x, * and to-net= name no address)");
                return Err(Refusal::new(Rule::IpLiteral, host, port, why, format!("add it to to= (to=...,{ip}) or its network (to=...,{ip}/{})", if ip.is_ipv4() { 32 } else { 128 })));
            }
            return Ok((Decision::Allow, Rule::Listed));
        } else if looks_numeric(host) {
            let why = format!("{host} is an IP address in a form that is not dotted-quad (as 127.1 or 0x7f.1 read)");
            return Err(Refusal::new(Rule::IpLiteral, host, port, why, "ask for the address dotted-quad, and name it in to=".into()));
        }
        // One check of what a name may be, before any pattern sees it: a
        // name no pattern was written for (an empty label) must not match one.
        if let Err(why) = crate::names::check(host, self.underscore) {
            let shown = host.escape_debug().to_string();
            return Err(Refusal::new(Rule::BadName, &shown, port, format!("{shown:?} is not a host name: {why}"), "ask for the name as DNS writes it (letters, digits, '-'; labels of 1 to 63 between single dots)".into()));
        }
        let matches = |list: &[Pattern]| list.iter().find(|p| p.matches(host)).map(|p| p.to_string());
        if let Some(rule) = matches(&self.not_to) {
            return Err(Refusal::new(Rule::NotTo, host, port, format!("{host} is refused by not-to={rule}"), format!("take {rule} out of not-to=")));
        }
        if matches(&self.to).is_some() {
            Ok((Decision::Allow, Rule::Listed))
        } else if self.report {
            Ok((Decision::WouldDeny, Rule::NotListed))
        } else if self.ask.is_some() {
            Ok((Decision::Ask, Rule::NotListed))
        } else {
            let why = format!("{host} is not in to= (allowed: {})", list(&self.to));
            Err(Refusal::new(Rule::NotListed, host, port, why, format!("add it to to= (to=...,{host}), or a pattern such as *.{}", parent(host))))
        }
    }

    fn check_port(&self, host: &str, port: u16, connect: bool) -> Result<(), Refusal> {
        let allowed = match (self.ports.is_empty(), connect) {
            (false, _) => self.ports.contains(&port),
            (true, true) => port == 443,
            (true, false) => port == 80,
        };
        if !allowed {
            let ports = if self.ports.is_empty() {
                if connect { "443 for CONNECT (the default; set ports=)".to_string() } else { "80 for plain HTTP (the default; set ports=)".to_string() }
            } else {
                self.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
            };
            let why = format!("port {port} is not allowed (ports: {ports})");
            return Err(Refusal::new(Rule::Port, host, port, why, format!("add {port} to ports=")));
        }
        Ok(())
    }

    /// The resolved addresses a client may reach; `Err` if none, naming why.
    pub fn check_addrs(&self, host: &str, port: u16, addrs: &[IpAddr]) -> Result<Vec<IpAddr>, Refusal> {
        if host.parse::<IpAddr>().is_ok() {
            // A literal that `check_host` let through: to= names it, which
            // is the most a rule can say of one address.
            return Ok(addrs.to_vec());
        }
        let ok: Vec<IpAddr> = addrs.iter().copied().filter(|ip| self.permits(*ip)).collect();
        if ok.is_empty() {
            let shown = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
            let rule = if self.nets.is_empty() {
                "loopback, link-local, private and non-host ranges are refused unless to-net= names them".to_string()
            } else {
                format!("to-net={}", self.nets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","))
            };
            let why = format!("{host} resolves to {shown}, outside what it may reach ({rule})");
            let first = addrs.first().map_or(String::new(), |a| a.to_string());
            return Err(Refusal::new(Rule::Address, host, port, why, format!("name its network in to-net= (to-net={first}/{}) if it is meant to be reached", if first.contains(':') { 128 } else { 32 })));
        }
        Ok(ok)
    }

    fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if !self.nets.is_empty() {
            return self.nets.iter().any(|n| n.contains(&ip));
        }
        // An IPv6 form that carries an IPv4 address (NAT64, 6to4, Teredo,
        // IPv4-compatible) leads where that address does: check both.
        !guarded(ip) && !embedded_v4(ip).is_some_and(|v4| guarded(IpAddr::V4(v4)))
    }
}

/// The name one label up (`files.pypi.org` -> `pypi.org`), for a `*.` hint.
fn parent(host: &str) -> &str {
    match host.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest,
        _ => host,
    }
}

fn list(patterns: &[Pattern]) -> String {
    if patterns.is_empty() {
        return "none".into();
    }
    patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests;
