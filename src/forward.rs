//! A forward proxy's destination policy: which names, ports and (once
//! resolved) addresses a client may reach. Checked before any connection
//! is made, and again on the addresses the name resolved to, so that an
//! allowed name cannot lead to loopback or to a cloud metadata address
//! unless a rule says so.
//!
//! ```text
//! LISTEN=forward;to=NAME,...[;not-to=NAME,...][;to-net=CIDR,...][;ports=PORT,...][;auth=USER:PASS]
//! ```

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
}

/// Ranges a name may not lead to unless `to-net=` names them: this host
/// (loopback), link-local (cloud metadata at 169.254.169.254), and
/// addresses that are no host at all.
const GUARDED: [&str; 8] = ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128", "224.0.0.0/3", "ff00::/8"];

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

    /// May a client ask for `host:port`? `Err` names the rule that refuses.
    pub fn check_name(&self, host: &str, port: u16, connect: bool) -> Result<(), String> {
        let matches = |list: &[Pattern]| list.iter().find(|p| p.matches(host)).map(|p| p.to_string());
        if let Some(rule) = matches(&self.not_to) {
            return Err(format!("{host} is refused by not-to={rule}"));
        }
        if matches(&self.to).is_none() {
            return Err(format!("{host} is not in to= (allowed: {})", list(&self.to)));
        }
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
            return Err(format!("port {port} is not allowed (ports: {ports})"));
        }
        Ok(())
    }

    /// The resolved addresses a client may reach; `Err` if none, naming why.
    pub fn check_addrs(&self, host: &str, addrs: &[IpAddr]) -> Result<Vec<IpAddr>, String> {
        let ok: Vec<IpAddr> = addrs.iter().copied().filter(|ip| self.permits(*ip)).collect();
        if ok.is_empty() {
            let shown = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
            let rule = if self.nets.is_empty() {
                "loopback, link-local and non-host ranges are refused unless to-net= names them".to_string()
            } else {
                format!("to-net={}", self.nets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","))
            };
            return Err(format!("{host} resolves to {shown}, outside what it may reach ({rule})"));
        }
        Ok(ok)
    }

    fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if !self.nets.is_empty() {
            return self.nets.iter().any(|n| n.contains(&ip));
        }
        !GUARDED.iter().filter_map(|g| g.parse::<IpNet>().ok()).any(|n| n.contains(&ip))
    }
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
        Forward { to: pats(to), not_to: pats(not_to), nets: nets.iter().map(|n| n.parse().unwrap()).collect(), ports: ports.to_vec(), auth: None }
    }

    #[test]
    fn names_and_ports_are_checked_before_any_connection() {
        let f = fwd(&["pypi.org", "*.pythonhosted.org"], &["bad.pythonhosted.org"], &[], &[]);
        assert_eq!(f.check_name("pypi.org", 443, true), Ok(()));
        assert_eq!(f.check_name("files.pythonhosted.org", 443, true), Ok(()));
        assert!(f.check_name("bad.pythonhosted.org", 443, true).unwrap_err().contains("not-to=bad.pythonhosted.org"));
        assert!(f.check_name("evil.test", 443, true).unwrap_err().contains("not in to= (allowed: pypi.org,*.pythonhosted.org)"));
        assert!(f.check_name("pypi.org", 22, true).unwrap_err().contains("443 for CONNECT"));
        assert_eq!(f.check_name("pypi.org", 80, false), Ok(()), "plain HTTP: port 80");
        assert!(f.check_name("pypi.org", 443, false).is_err());
        let any = fwd(&["*"], &[], &[], &[8443]);
        assert_eq!(any.check_name("x.test", 8443, true), Ok(()));
        assert!(any.check_name("x.test", 443, true).unwrap_err().contains("ports: 8443"));
        assert!(Forward::default().check_name("x.test", 443, true).unwrap_err().contains("allowed: none"));
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
            assert!(f.check_addrs("x.test", &[ip(guarded)]).is_err(), "{guarded}");
        }
        assert_eq!(f.check_addrs("x.test", &[ip("127.0.0.1"), ip("10.1.2.3")]).unwrap(), vec![ip("10.1.2.3")], "the guarded ones are dropped");
        assert!(f.check_addrs("x.test", &[ip("127.0.0.1")]).unwrap_err().contains("x.test resolves to 127.0.0.1"));
        let lo = fwd(&["*"], &[], &["127.0.0.0/8"], &[]);
        assert_eq!(lo.check_addrs("x.test", &[ip("127.0.0.1")]).unwrap(), vec![ip("127.0.0.1")]);
        assert!(lo.check_addrs("x.test", &[ip("10.1.2.3")]).unwrap_err().contains("to-net=127.0.0.0/8"), "to-net= is the whole list");
    }
}
