//! A forward proxy's destination policy: which names, ports and (once
//! resolved) addresses a client may reach. Checked before any connection
//! is made, and again on the addresses the name resolved to, so that an
//! allowed name cannot lead to loopback or to a cloud metadata address
//! unless a rule says so.
//!
//! ```text
//! LISTEN=forward;to=NAME,...[;not-to=NAME,...][;to-net=CIDR,...][;ports=PORT,...][;auth=USER:PASS][;report]
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

/// Where a forward route's clients may go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    /// Names allowed (`*` for any); empty: none.
    pub to: Vec<Pattern>,
    /// Names refused even when `to` allows them.
    pub not_to: Vec<Pattern>,
    /// Addresses a name may resolve to; empty: any but the guarded ranges.
    pub nets: Vec<IpNet>,
    /// Ports allowed; empty: 443 for CONNECT, 80 for plain HTTP (as squid).
    pub ports: Vec<u16>,
    /// `auth=USER:PASS`: the `Proxy-Authorization` a client must send
    /// (`Basic` and the pair in base64), or `None` for no proxy login.
    pub auth: Option<String>,
    /// `report`: names not in `to=` pass, as `would-deny` (drafting a list).
    pub report: bool,
}

/// What the policy decided for one request or tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Report mode: let through, but the list as written would refuse it.
    WouldDeny,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Deny, Decision::WouldDeny];

    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would-deny",
        }
    }
}

/// The rule behind a decision: its `rule=` id in logs, metrics and refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The name is in `to=` (or the address in `to=`/`to-net=`), its port
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
}

impl Rule {
    pub const ALL: [Rule; 8] = [Rule::Listed, Rule::NotListed, Rule::NotTo, Rule::Port, Rule::Address, Rule::IpLiteral, Rule::SniMismatch, Rule::NotTls];

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
    fn new(rule: Rule, host: &str, port: u16, why: String, fix: String) -> Refusal {
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        Refusal { rule, text: format!("{host}:{port} refused (rule {}): {why}; to allow it, {fix}", rule.id()) }
    }
}

/// Ranges a name may not lead to unless `to-net=` names them: this host
/// (loopback), link-local (cloud metadata at 169.254.169.254), the private
/// networks around the container (RFC 1918, CGNAT, ULA, site-local, the
/// benchmark range), and addresses that are no host at all.
const GUARDED: [&str; 17] = [
    "127.0.0.0/8", "::1/128", // loopback
    "169.254.0.0/16", "fe80::/10", // link-local
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // private (RFC 1918)
    "100.64.0.0/10", // shared address space (CGNAT, RFC 6598)
    "fc00::/7", "fec0::/10", // unique local, site-local
    "198.18.0.0/15", "192.0.0.0/24", // benchmarking, IETF protocol assignments
    "0.0.0.0/8", "::/128", // this network, unspecified
    "224.0.0.0/3", "ff00::/8", // multicast, reserved, broadcast
    "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): its IPv4 part can sit anywhere
];

impl Forward {
    /// Require `user:pass` (HTTP Basic, as curl -x http://user:pass@... sends it).
    pub fn set_auth(&mut self, pair: &str) -> Result<(), String> {
        match pair.split_once(':') {
            Some((user, _)) if !user.is_empty() && pair.bytes().all(|b| b.is_ascii_graphic()) => {
                self.auth = Some(format!("Basic {}", base64(pair.as_bytes())));
                Ok(())
            }
            _ => Err("bad auth (USER:PASS, no spaces)".to_string()),
        }
    }

    /// Did the client log in, if this route asks it to? Compared in
    /// constant time, so that timing tells nothing of the password.
    pub fn check_auth(&self, given: Option<&str>) -> Result<(), String> {
        let Some(want) = &self.auth else { return Ok(()) };
        let given = given.unwrap_or_default().trim();
        if given.is_empty() {
            return Err("this proxy asks for a login (Proxy-Authorization: Basic)".into());
        }
        // The scheme compares without case; the credentials exactly.
        let token = |s: &str| s.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).and(s.get(6..)).map(str::to_string);
        let (Some(g), Some(w)) = (token(given), token(want)) else { return Err("a wrong proxy login".into()) };
        let same = g.len() == w.len() && g.bytes().zip(w.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err("a wrong proxy login".into())
        }
    }

    /// May a client ask for `host:port`? `Ok`: allowed (or, in report mode,
    /// let through as `would-deny`) for this rule; `Err`: refused.
    pub fn check_name(&self, host: &str, port: u16, connect: bool) -> Result<(Decision, Rule), Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            // An address skips every name rule, so it passes only where a
            // rule names it: itself in to=, or a network of to-net= (and
            // then the address rules below apply as to any name's).
            let named = self.to.iter().any(|p| *p == Pattern::Exact(host.to_string())) || self.nets.iter().any(|n| n.contains(&ip.to_canonical()));
            if !named || self.not_to.iter().any(|p| *p == Pattern::Exact(host.to_string())) {
                let why = format!("{host} is an IP address, allowed only when to= or to-net= names it (to=*.x and * name no address)");
                return Err(Refusal::new(Rule::IpLiteral, host, port, why, format!("add it to to= or its network to to-net= (to-net={}/{})", ip, if ip.is_ipv4() { 32 } else { 128 })));
            }
            return self.check_port(host, port, connect).map(|()| (Decision::Allow, Rule::Listed));
        } else if looks_numeric(host) {
            let why = format!("{host} is an IP address in a form that is not dotted-quad (as 127.1 or 0x7f.1 read)");
            return Err(Refusal::new(Rule::IpLiteral, host, port, why, "ask for the address dotted-quad, and name it in to= or to-net=".into()));
        }
        let matches = |list: &[Pattern]| list.iter().find(|p| p.matches(host)).map(|p| p.to_string());
        if let Some(rule) = matches(&self.not_to) {
            return Err(Refusal::new(Rule::NotTo, host, port, format!("{host} is refused by not-to={rule}"), format!("take {rule} out of not-to=")));
        }
        let decision = if matches(&self.to).is_some() {
            (Decision::Allow, Rule::Listed)
        } else if self.report {
            (Decision::WouldDeny, Rule::NotListed)
        } else {
            let why = format!("{host} is not in to= (allowed: {})", list(&self.to));
            return Err(Refusal::new(Rule::NotListed, host, port, why, format!("add it to to= (to=...,{host}), or a pattern such as *.{}", parent(host))));
        };
        self.check_port(host, port, connect).map(|()| decision)
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

fn guarded(ip: IpAddr) -> bool {
    // Parsed once, not on every address of every request.
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| GUARDED.iter().filter_map(|g| g.parse().ok()).collect()).iter().any(|n| n.contains(&ip))
}

/// The IPv4 address inside an IPv6 address of a form that translates or
/// tunnels to it: NAT64's well-known prefix 64:ff9b::/96 (RFC 6052), 6to4
/// 2002::/16 (RFC 3056), Teredo 2001::/32 (RFC 4380: the client, inverted,
/// in the last 32 bits), and IPv4-compatible ::a.b.c.d. (IPv4-mapped
/// ::ffff:a.b.c.d is turned into IPv4 before any check.)
fn embedded_v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        [0x2001, 0, _, _, _, _, hi, lo] => Some(v4(!hi, !lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A host that a URL parser or `inet_aton` would read as an IPv4 address
/// although it is not dotted-quad: its last label all digits (127.1,
/// 2130706433, 0177.0.0.1) or hexadecimal with 0x (0x7f.1).
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) && last.get(2..).is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || hex
}

impl Forward {
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied().unwrap_or(0), chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            let c = ABC.get(((n >> shift) & 63) as usize).copied().unwrap_or(b'=');
            out.push(if i <= chunk.len() { c as char } else { '=' });
        }
    }
    out
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
mod tests {
    use super::*;

    fn fwd(to: &[&str], not_to: &[&str], nets: &[&str], ports: &[u16]) -> Forward {
        let pats = |l: &[&str]| l.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        Forward { to: pats(to), not_to: pats(not_to), nets: nets.iter().map(|n| n.parse().unwrap()).collect(), ports: ports.to_vec(), auth: None, report: false }
    }

    #[test]
    fn names_and_ports_are_checked_before_any_connection() {
        let f = fwd(&["pypi.org", "*.pythonhosted.org"], &["bad.pythonhosted.org"], &[], &[]);
        assert_eq!(f.check_name("pypi.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert_eq!(f.check_name("files.pythonhosted.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert!(f.check_name("bad.pythonhosted.org", 443, true).unwrap_err().text.contains("not-to=bad.pythonhosted.org"));
        assert!(f.check_name("evil.test", 443, true).unwrap_err().text.contains("not in to= (allowed: pypi.org,*.pythonhosted.org)"));
        assert!(f.check_name("pypi.org", 22, true).unwrap_err().text.contains("443 for CONNECT"));
        assert_eq!(f.check_name("pypi.org", 80, false), Ok((Decision::Allow, Rule::Listed)), "plain HTTP: port 80");
        assert!(f.check_name("pypi.org", 443, false).is_err());
        let any = fwd(&["*"], &[], &[], &[8443]);
        assert_eq!(any.check_name("x.test", 8443, true), Ok((Decision::Allow, Rule::Listed)));
        assert!(any.check_name("x.test", 443, true).unwrap_err().text.contains("ports: 8443"));
        assert!(Forward::default().check_name("x.test", 443, true).unwrap_err().text.contains("allowed: none"));
    }

    #[test]
    fn a_login_is_basic_base64_of_the_pair() {
        assert_eq!((base64(b"u:p"), base64(b"user:pass"), base64(b"ab"), base64(b"a")), ("dTpw".into(), "dXNlcjpwYXNz".into(), "YWI=".into(), "YQ==".into()));
        let mut f = fwd(&["*"], &[], &[], &[]);
        assert_eq!(f.check_auth(None), Ok(()), "no login asked");
        f.set_auth("user:pass").unwrap();
        assert_eq!(f.check_auth(Some("Basic dXNlcjpwYXNz")), Ok(()));
        assert_eq!(f.check_auth(Some("basic dXNlcjpwYXNz")), Ok(()), "the scheme is case-insensitive");
        assert!(f.check_auth(None).unwrap_err().contains("asks for a login"));
        assert!(f.check_auth(Some("Basic dXNlcjp3cm9uZw==")).unwrap_err().contains("wrong"));
        assert!(f.set_auth("nopass").is_err() && f.set_auth(":p").is_err() && f.set_auth("a b:c").is_err());
    }

    #[test]
    fn resolved_addresses_are_checked_too() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let f = fwd(&["*"], &[], &[], &[]);
        for guarded in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "239.1.1.1"] {
            assert!(f.check_addrs("x.test", 443, &[ip(guarded)]).is_err(), "{guarded}");
        }
        assert_eq!(f.check_addrs("x.test", 443, &[ip("127.0.0.1"), ip("93.184.215.14")]).unwrap(), vec![ip("93.184.215.14")], "the guarded ones are dropped");
        assert!(f.check_addrs("x.test", 443, &[ip("127.0.0.1")]).unwrap_err().text.contains("x.test resolves to 127.0.0.1"));
        let lo = fwd(&["*"], &[], &["127.0.0.0/8"], &[]);
        assert_eq!(lo.check_addrs("x.test", 443, &[ip("127.0.0.1")]).unwrap(), vec![ip("127.0.0.1")]);
        assert!(lo.check_addrs("x.test", 443, &[ip("10.1.2.3")]).unwrap_err().text.contains("to-net=127.0.0.0/8"), "to-net= is the whole list");
    }

    #[test]
    fn every_guarded_range_parses() {
        for g in GUARDED {
            assert!(g.parse::<IpNet>().is_ok(), "{g}: none may be dropped silently");
        }
    }

    #[test]
    fn private_networks_and_ipv4_hidden_in_ipv6_are_refused_by_default() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let f = fwd(&["*"], &[], &[], &[]);
        for refused in [
            "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "198.18.0.1", "192.0.0.8", "255.255.255.255", "240.0.0.1",
            "fd00::1", "fc12::1", "fec0::1",
            "64:ff9b::7f00:1",       // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",    // NAT64 of 169.254.169.254
            "64:ff9b:1::a00:1",      // local-use NAT64
            "2002:7f00:1::1",        // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::",      // 6to4 of 169.254.169.254
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1 (inverted)
            "::7f00:1", "::a00:1",   // IPv4-compatible
            "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
        ] {
            assert!(f.check_addrs("x.test", 443, &[ip(refused)]).is_err(), "{refused}");
        }
        for allowed in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "172.32.0.1", "100.128.0.1"] {
            assert!(f.check_addrs("x.test", 443, &[ip(allowed)]).is_ok(), "{allowed}");
        }
        // to-net= opens exactly what it names.
        let private = fwd(&["*"], &[], &["10.0.0.0/8"], &[]);
        assert!(private.check_addrs("x.test", 443, &[ip("10.1.2.3")]).is_ok());
        assert!(private.check_addrs("x.test", 443, &[ip("192.168.1.1")]).is_err());
    }

    #[test]
    fn an_ip_destination_passes_only_where_a_rule_names_it() {
        let any = fwd(&["*"], &[], &[], &[443]);
        for host in ["93.184.215.14", "10.1.2.3", "::1", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
            assert!(any.check_name(host, 443, true).unwrap_err().text.contains("is an IP address"), "to=* names no address: {host}");
        }
        for odd in ["127.1", "2130706433", "0177.0.0.1", "0x7f.1", "0X7F000001", "a.b.1"] {
            assert!(any.check_name(odd, 443, true).unwrap_err().text.contains("not dotted-quad"), "{odd}");
        }
        assert_eq!(any.check_name("1password.com", 443, true), Ok((Decision::Allow, Rule::Listed)), "a label may start with a digit");
        assert_eq!(fwd(&["93.184.215.14"], &[], &[], &[443]).check_name("93.184.215.14", 443, true), Ok((Decision::Allow, Rule::Listed)));
        let net = fwd(&["example.com"], &[], &["10.0.0.0/8"], &[443]);
        assert_eq!(net.check_name("10.1.2.3", 443, true), Ok((Decision::Allow, Rule::Listed)), "to-net= names it");
        assert!(net.check_name("10.1.2.3", 22, true).unwrap_err().text.contains("port 22"));
        assert!(net.check_name("11.1.2.3", 443, true).is_err());
        assert!(fwd(&["10.1.2.3"], &["10.1.2.3"], &[], &[443]).check_name("10.1.2.3", 443, true).is_err(), "not-to= wins");
    }
}

#[cfg(test)]
mod decisions {
    use super::*;

    fn fwd(to: &[&str], report: bool) -> Forward {
        Forward { to: to.iter().map(|p| Pattern::parse(p).unwrap()).collect(), report, ..Forward::default() }
    }

    #[test]
    fn a_refusal_names_the_destination_the_rule_and_the_fix_on_one_line() {
        let f = Forward { not_to: vec![Pattern::parse("bad.pypi.org").unwrap()], ports: vec![443], ..fwd(&["pypi.org", "*.pypi.org"], false) };
        for (host, port, rule, fix) in [
            ("example.com", 443, Rule::NotListed, "add it to to= (to=...,example.com)"),
            ("files.example.com", 443, Rule::NotListed, "*.example.com"),
            ("bad.pypi.org", 443, Rule::NotTo, "take bad.pypi.org out of not-to="),
            ("pypi.org", 22, Rule::Port, "add 22 to ports="),
            ("10.1.2.3", 443, Rule::IpLiteral, "to-net=10.1.2.3/32"),
        ] {
            let r = f.check_name(host, port, true).unwrap_err();
            assert_eq!(r.rule, rule, "{host}");
            assert!(r.text.starts_with(&format!("{host}:{port} refused (rule {})", rule.id())) && r.text.contains(fix) && !r.text.contains('\n'), "{}", r.text);
        }
        let a = f.check_addrs("pypi.org", 443, &["169.254.169.254".parse().unwrap()]).unwrap_err();
        assert_eq!(a.rule, Rule::Address);
        assert!(a.text.contains("resolves to 169.254.169.254") && a.text.contains("to-net=169.254.169.254/32"), "{}", a.text);
    }

    #[test]
    fn report_mode_lets_unlisted_names_through_as_would_deny_and_nothing_else() {
        let f = Forward { not_to: vec![Pattern::parse("bad.test").unwrap()], ..fwd(&["pypi.org"], true) };
        assert_eq!(f.check_name("pypi.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert_eq!(f.check_name("example.com", 443, true), Ok((Decision::WouldDeny, Rule::NotListed)));
        assert_eq!(f.check_name("bad.test", 443, true).unwrap_err().rule, Rule::NotTo, "not-to= still refuses");
        assert_eq!(f.check_name("example.com", 22, true).unwrap_err().rule, Rule::Port, "so do ports");
        assert_eq!(f.check_name("10.1.2.3", 443, true).unwrap_err().rule, Rule::IpLiteral, "and addresses");
        assert!(f.check_addrs("example.com", 443, &["10.1.2.3".parse().unwrap()]).is_err(), "and the address ranges");
    }
}
