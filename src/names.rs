//! Routing by name: what a route on a shared port matches (`sni=`, `alpn=`,
//! `host=`), and how a port picks one of its routes for what a client asked.
//!
//! Names compare without case, without a trailing dot, and (for `Host`)
//! without a port. A pattern is an exact name, `*.suffix` (one label or
//! more before the suffix, as in nginx: `*.app.test` matches `a.app.test`
//! and `a.b.app.test`, not `app.test`), or `*` (any name the client gave).
//!
//! The pick, among the routes that match:
//! 1. the most specific name: exact, then the longest suffix, then `*`,
//!    then routes that say nothing of the name (ALPN only);
//! 2. then ALPN: the client's most preferred protocol that a route lists,
//!    then routes that list none;
//! 3. then the order the routes were given in.
//!
//! Nothing matching goes to the port's default route (the one with no
//! `sni=`, `alpn=` or `host=`), if it has one.

use std::fmt;

/// A name as a route gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// `*.app.test`, kept as `.app.test`.
    Suffix(String),
    Any,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let bad = || format!("bad name {s:?} (a name like app.test, *.app.test for its subdomains, or * for any)");
        let plain = |n: &str| {
            !n.is_empty() && n.split('.').all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        };
        let name = normalize(s);
        if name == "*" {
            Ok(Pattern::Any)
        } else if let Some(suffix) = name.strip_prefix("*.") {
            if plain(suffix) {
                Ok(Pattern::Suffix(format!(".{suffix}")))
            } else {
                Err(bad())
            }
        } else if plain(&name) || name.parse::<std::net::IpAddr>().is_ok() {
            Ok(Pattern::Exact(name))
        } else {
            Err(bad())
        }
    }

    /// Does `name` (normalized) match?
    pub fn matches(&self, name: &str) -> bool {
        self.score(name).is_some()
    }

    /// How well `name` (normalized) matches: higher is more specific.
    fn score(&self, name: &str) -> Option<usize> {
        match self {
            Pattern::Exact(n) => (n == name).then_some(usize::MAX),
            Pattern::Suffix(s) => (name.len() > s.len() && name.ends_with(s.as_str())).then_some(2 + s.len()),
            Pattern::Any => Some(1),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Suffix(s) => write!(f, "*{s}"),
            Pattern::Any => f.write_str("*"),
        }
    }
}

/// Lower case, no trailing dot: how names compare. One trailing dot (an
/// absolute name) goes; two stay, as the empty label they are, so that
/// normalizing again (a name that passes through two fronts, as a
/// transparent listener's Host does) changes nothing.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').filter(|n| !n.ends_with('.')).unwrap_or(name).to_ascii_lowercase()
}

/// A destination's host as every front takes it, normalized (`normalize`):
/// a name or an IP literal (no brackets). `None` only for what cannot be a
/// host in any syntax (empty, spaces, control bytes, a URL's delimiters);
/// anything else, however odd, goes on to the policy, whose name check
/// (`check`) refuses it with a reason of its own (`rule=bad-name`).
pub fn destination_host(host: &str) -> Option<String> {
    let host = normalize(host);
    let ok = !host.is_empty() && host.len() <= 4 * MAX_NAME && !host.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@' | '[' | ']' | '\\'));
    ok.then_some(host)
}

/// The longest name (253 octets written out, 255 on the wire) and label.
pub const MAX_NAME: usize = 253;
pub const MAX_LABEL: usize = 63;

/// The one name check every front's destination meets (absolute form,
/// CONNECT, `Host`, SNI, SOCKS5, transparent listeners, the allowlist DNS
/// route's questions, and the resolver's own queries), on the name as
/// `normalize` leaves it (lower case, one trailing dot gone: a second one
/// is an empty label). A host name of dot-separated labels, each 1 to 63
/// octets of letters, digits and `-` (not first or last), `_` too where
/// `underscore` says so, 253 octets at most. `Err`: what is wrong, in words.
///
/// Internationalized names: a U-label (non-ASCII) is refused, its A-label
/// (`xn--...`) is an ASCII name like any other and compares as ASCII
/// (no IDNA mapping is done, so no two spellings reach one name).
pub fn check(name: &str, underscore: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty name".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("a name of {} octets (at most {MAX_NAME})", name.len()));
    }
    for (i, label) in name.split('.').enumerate() {
        if label.is_empty() {
            let at = if i == 0 { "at its start".to_string() } else { format!("after {:?}", name.split('.').take(i).collect::<Vec<_>>().join(".")) };
            return Err(format!("an empty label {at} (two dots in a row, or a dot first or last)"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!("a label of {} octets (at most {MAX_LABEL}): {:?}", label.len(), label.get(..20).unwrap_or(label)));
        }
        if let Some(c) = label.chars().find(|c| !c.is_ascii()) {
            return Err(format!("a non-ASCII character {c:?} (an internationalized name is asked for by its xn-- form)"));
        }
        if let Some(b) = label.bytes().find(|&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_')) {
            return Err(format!("the character {:?} in label {label:?} (letters, digits and '-' only)", char::from(b)));
        }
        if !underscore && label.contains('_') {
            return Err(format!("'_' in label {label:?}, which this route does not allow (its option underscore does)"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// What a route on a shared port serves. All empty: the port's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// TLS server names (SNI).
    pub sni: Vec<Pattern>,
    /// TLS ALPN protocols, exact (`h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// Plain HTTP `Host` names.
    pub host: Vec<Pattern>,
}

impl Match {
    pub fn is_default(&self) -> bool {
        self.sni.is_empty() && self.alpn.is_empty() && self.host.is_empty()
    }

    pub fn wants_tls(&self) -> bool {
        !self.sni.is_empty() || !self.alpn.is_empty()
    }

    /// As a route would say it: `sni=a.test,*.b.test;alpn=h2`, or `default`.
    /// The `backend` of logs and metrics.
    pub fn label(&self) -> String {
        let list = |items: Vec<String>| items.join(",");
        let mut parts = Vec::new();
        if !self.sni.is_empty() {
            parts.push(format!("sni={}", list(self.sni.iter().map(|p| p.to_string()).collect())));
        }
        if !self.alpn.is_empty() {
            parts.push(format!("alpn={}", self.alpn.join(",")));
        }
        if !self.host.is_empty() {
            parts.push(format!("host={}", list(self.host.iter().map(|p| p.to_string()).collect())));
        }
        if parts.is_empty() {
            "default".to_string()
        } else {
            parts.join(";")
        }
    }
}

/// What a client asked for, read from its first bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// A TLS ClientHello: its server name (normalized) and ALPN list.
    Tls { name: Option<String>, alpn: Vec<String> },
    /// A plain HTTP request: its Host (normalized, no port).
    Http { host: Option<String> },
}

impl Asked {
    /// The fields of log lines: `sni=`/`alpn=` or `host=`, `-` for none.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let or_dash = |n: &Option<String>| n.clone().unwrap_or_else(|| "-".into());
        match self {
            Asked::Tls { name, alpn } if alpn.is_empty() => vec![("sni", or_dash(name))],
            Asked::Tls { name, alpn } => vec![("sni", or_dash(name)), ("alpn", alpn.join(","))],
            Asked::Http { host } => vec![("host", or_dash(host))],
        }
    }

    /// The name asked for, for messages (`-` for none).
    pub fn name(&self) -> &str {
        match self {
            Asked::Tls { name, .. } => name.as_deref().unwrap_or("-"),
            Asked::Http { host } => host.as_deref().unwrap_or("-"),
        }
    }
}

/// The routes of one port, and how to pick among them.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Each named route's match, with its route index.
    named: Vec<(Match, usize)>,
    default: Option<usize>,
}

impl Table {
    /// `routes`: each route of the port, with its index.
    pub fn new(routes: impl IntoIterator<Item = (Match, usize)>) -> Table {
        let mut table = Table::default();
        for (m, index) in routes {
            if m.is_default() {
                table.default = table.default.or(Some(index));
            } else {
                table.named.push((m, index));
            }
        }
        table
    }

    /// A port with no named route relays at once, without peeking.
    pub fn peeks(&self) -> bool {
        !self.named.is_empty()
    }

    /// This port reads TLS ClientHellos (some route names SNI or ALPN).
    pub fn takes_tls(&self) -> bool {
        self.named.iter().any(|(m, _)| m.wants_tls())
    }

    /// This port reads plain HTTP requests (some route names a Host).
    pub fn takes_http(&self) -> bool {
        self.named.iter().any(|(m, _)| !m.host.is_empty())
    }

    /// The default route: what a port without peeking always picks.
    pub fn default_route(&self) -> Option<usize> {
        self.default
    }

    /// The route for what the client asked; `None`: no route (and no default).
    pub fn pick(&self, asked: &Asked) -> Option<usize> {
        // (name score, ALPN rank: lower is better, route index)
        let mut best: Option<(usize, usize, usize)> = None;
        for (m, index) in &self.named {
            let ranked = match asked {
                Asked::Tls { name, alpn } if m.wants_tls() => rank_tls(m, name.as_deref(), alpn),
                Asked::Http { host } if !m.host.is_empty() => host.as_deref().and_then(|h| best_score(&m.host, h)).map(|s| (s, 0)),
                _ => None,
            };
            if let Some((score, rank)) = ranked {
                let better = match best {
                    None => true,
                    Some((s, r, _)) => score > s || (score == s && rank < r),
                };
                if better {
                    best = Some((score, rank, *index));
                }
            }
        }
        best.map(|(_, _, index)| index).or(self.default)
    }
}

/// A TLS route's (name score, ALPN rank) for this ClientHello, if it matches.
fn rank_tls(m: &Match, name: Option<&str>, offered: &[String]) -> Option<(usize, usize)> {
    let score = if m.sni.is_empty() { 0 } else { best_score(&m.sni, name?)? };
    let rank = if m.alpn.is_empty() { offered.len() } else { offered.iter().position(|p| m.alpn.contains(p))? };
    Some((score, rank))
}

fn best_score(patterns: &[Pattern], name: &str) -> Option<usize> {
    patterns.iter().filter_map(|p| p.score(name)).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sni: &[&str], alpn: &[&str], host: &[&str]) -> Match {
        let pats = |l: &[&str]| l.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        Match { sni: pats(sni), alpn: alpn.iter().map(|s| s.to_string()).collect(), host: pats(host) }
    }

    fn tls(name: Option<&str>, alpn: &[&str]) -> Asked {
        Asked::Tls { name: name.map(normalize), alpn: alpn.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn patterns_parse_and_say_what_is_wrong() {
        assert_eq!(Pattern::parse("App.Test.").unwrap(), Pattern::Exact("app.test".into()));
        assert_eq!(Pattern::parse("*.app.test").unwrap(), Pattern::Suffix(".app.test".into()));
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Any);
        assert_eq!(Pattern::parse("127.0.0.1").unwrap(), Pattern::Exact("127.0.0.1".into()));
        assert_eq!(Pattern::parse("*.").unwrap(), Pattern::Any, "a trailing dot never counts");
        for bad in ["", "a*.test", "a..test", "*.*.test", "a test", ".test", "app.test:443"] {
            assert!(Pattern::parse(bad).unwrap_err().starts_with("bad name"), "{bad:?}");
        }
    }

    #[test]
    fn one_name_check_says_what_is_wrong() {
        let bad = |name: &str| check(&normalize(name), false).unwrap_err();
        for ok in ["a.test", "Pypi.Org.", "1password.com", "xn--bcher-kva.example", "a-b.c-d.test", "localhost", "a.b.c.d.e.f.g"] {
            assert_eq!(check(&normalize(ok), false), Ok(()), "{ok}");
        }
        assert!(bad("blocked..wild.test").contains("empty label after \"blocked\""));
        assert!(bad("a.test..").contains("empty label"), "one trailing dot is normalized away, not two");
        assert!(bad(".a.test").contains("empty label at its start"));
        assert!(bad("").contains("empty name"));
        assert!(bad(&format!("{}.test", "a".repeat(64))).contains("label of 64 octets"));
        assert_eq!(check(&format!("{}.test", "a".repeat(63)), false), Ok(()));
        let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert_eq!((long.len(), check(&long, false)), (253, Ok(())));
        assert!(bad(&format!("{long}e")).contains("254 octets"));
        assert!(bad("bücher.example").contains("non-ASCII"), "a U-label: ask for its xn-- form");
        assert!(bad("a%2eb.test").contains("'%'"));
        assert!(bad("a:b.test").contains("':'"));
        assert!(bad("a*b.test").contains("'*'"));
        assert!(bad("-a.test").contains("starts or ends with '-'") && bad("a-.test").contains("'-'"));
        assert!(bad("_acme.a.test").contains("does not allow") && check("_acme.a.test", true).is_ok(), "'_' only where the route says");
    }

    #[test]
    fn destination_hosts_leave_odd_names_to_the_check() {
        assert_eq!(destination_host("Blocked..Wild.Test."), Some("blocked..wild.test".into()));
        assert_eq!(destination_host("a.test.."), Some("a.test..".into()), "two dots stay: an empty label");
        for name in ["A.test.", "a.test..", "a..", "."] {
            assert_eq!(normalize(&normalize(name)), normalize(name), "once or twice, the same: {name:?}");
        }
        assert_eq!(destination_host("a%2eb"), Some("a%2eb".into()));
        for none in ["", "a b", "a/b", "a@b", "a\tb", "a\u{0}b", "[::1]", "a\\b", "a?b", "a#b"] {
            assert_eq!(destination_host(none), None, "{none:?}");
        }
        assert_eq!(destination_host(&"a".repeat(2000)), None, "no name is that long");
    }

    #[test]
    fn exact_beats_the_longest_suffix_beats_any_beats_the_default() {
        let t = Table::new([
            (m(&["*"], &[], &[]), 0),
            (m(&["*.test"], &[], &[]), 1),
            (m(&["*.app.test"], &[], &[]), 2),
            (m(&["app.test"], &[], &[]), 3),
            (Match::default(), 4),
        ]);
        assert_eq!(t.pick(&tls(Some("APP.test."), &[])), Some(3));
        assert_eq!(t.pick(&tls(Some("www.app.test"), &[])), Some(2));
        assert_eq!(t.pick(&tls(Some("a.b.app.test"), &[])), Some(2), "one label or more");
        assert_eq!(t.pick(&tls(Some("api.test"), &[])), Some(1));
        assert_eq!(t.pick(&tls(Some("example.org"), &[])), Some(0));
        assert_eq!(t.pick(&tls(None, &[])), Some(4), "no name: only the default");
        assert_eq!(t.pick(&Asked::Http { host: Some("app.test".into()) }), Some(4), "TLS routes take no HTTP");
        assert!(t.takes_tls() && !t.takes_http() && t.peeks());
    }

    #[test]
    fn alpn_follows_the_clients_preference() {
        let t = Table::new([(m(&["app.test"], &["http/1.1"], &[]), 0), (m(&["app.test"], &["h2"], &[]), 1), (m(&["app.test"], &[], &[]), 2)]);
        assert_eq!(t.pick(&tls(Some("app.test"), &["h2", "http/1.1"])), Some(1));
        assert_eq!(t.pick(&tls(Some("app.test"), &["http/1.1", "h2"])), Some(0));
        assert_eq!(t.pick(&tls(Some("app.test"), &["h3"])), Some(2), "no listed protocol: the route without ALPN");
        assert_eq!(t.pick(&tls(Some("app.test"), &[])), Some(2));
        assert_eq!(t.pick(&tls(Some("other.test"), &["h2"])), None, "no name match, no default");
        // ALPN alone: any name.
        let t = Table::new([(m(&[], &["h2"], &[]), 0), (Match::default(), 1)]);
        assert_eq!((t.pick(&tls(None, &["h2"])), t.pick(&tls(Some("x.test"), &["http/1.1"]))), (Some(0), Some(1)));
    }

    #[test]
    fn hosts_route_http_and_the_order_breaks_ties() {
        let t = Table::new([(m(&[], &[], &["api.test", "api2.test"]), 0), (m(&[], &[], &["*.test"]), 1), (m(&[], &[], &["*.test"]), 2)]);
        let http = |h: &str| Asked::Http { host: Some(normalize(h)) };
        assert_eq!(t.pick(&http("Api2.Test")), Some(0));
        assert_eq!(t.pick(&http("docs.test")), Some(1), "the first given wins a tie");
        assert_eq!(t.pick(&Asked::Http { host: None }), None);
        assert_eq!(t.pick(&tls(Some("api.test"), &[])), None, "host routes take no TLS");
        assert!(t.takes_http() && !t.takes_tls());
        assert!(!Table::new([(Match::default(), 0)]).peeks());
    }

    #[test]
    fn labels_read_like_the_route() {
        assert_eq!(m(&["a.test", "*.b.test"], &["h2"], &[]).label(), "sni=a.test,*.b.test;alpn=h2");
        assert_eq!(m(&[], &[], &["*"]).label(), "host=*");
        assert_eq!(Match::default().label(), "default");
    }
}
