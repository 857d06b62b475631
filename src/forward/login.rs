//! A forward route's login (`auth=USER:PASS`): what an HTTP proxy client
//! sends in `Proxy-Authorization: Basic`, and what a SOCKS5 client sends
//! in its username/password sub-negotiation (RFC 1929), checked against
//! the same stored pair, in constant time, and never logged.

use super::Forward;

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

    /// Does this route ask its clients to log in?
    pub fn asks_login(&self) -> bool {
        self.auth.is_some()
    }

    /// A SOCKS5 client's username and password (RFC 1929), checked as the
    /// same pair in the same constant-time comparison as HTTP's.
    pub fn check_login(&self, user: &[u8], pass: &[u8]) -> Result<(), String> {
        let given = format!("Basic {}", base64(&[user, b":", pass].concat()));
        self.check_auth(Some(&given))
    }
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
pub(super) fn base64(bytes: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Pattern;

    fn fwd(to: &[&str]) -> Forward {
        Forward { to: to.iter().map(|p| Pattern::parse(p).unwrap()).collect(), ..Forward::default() }
    }

    #[test]
    fn a_login_is_basic_base64_of_the_pair() {
        assert_eq!((base64(b"u:p"), base64(b"user:pass"), base64(b"ab"), base64(b"a")), ("dTpw".into(), "dXNlcjpwYXNz".into(), "YWI=".into(), "YQ==".into()));
        let mut f = fwd(&["*"]);
        assert_eq!(f.check_auth(None), Ok(()), "no login asked");
        f.set_auth("user:pass").unwrap();
        assert_eq!(f.check_auth(Some("Basic dXNlcjpwYXNz")), Ok(()));
        assert_eq!(f.check_auth(Some("basic dXNlcjpwYXNz")), Ok(()), "the scheme is case-insensitive");
        assert!(f.check_auth(None).unwrap_err().contains("asks for a login"));
        assert!(f.check_auth(Some("Basic dXNlcjp3cm9uZw==")).unwrap_err().contains("wrong"));
        assert_eq!(f.check_login(b"user", b"pass"), Ok(()), "SOCKS5's pair is the same login");
        assert!(f.check_login(b"user", b"wrong").unwrap_err().contains("wrong"));
        assert!(f.check_login(b"", b"").is_err() && f.check_login(b"user:pass", b"").is_err());
        assert!(f.set_auth("nopass").is_err() && f.set_auth(":p").is_err() && f.set_auth("a b:c").is_err());
    }
}
