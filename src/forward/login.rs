//! A forward route's login (`auth=USER:PASS`): what an HTTP proxy client
//! sends in `Proxy-Authorization: Basic`, and what a SOCKS5 client sends
//! in its username/password sub-negotiation (RFC 1929), checked against
//! the same stored pair, in constant time, and never logged. A parent
//! proxy's login (`parent.rs`) is the same pair, sent instead of checked.

/// A login: `Proxy-Authorization`'s value for it (`Basic` and the pair
/// in base64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    /// `user:pass` (HTTP Basic, as curl -x http://user:pass@... sends it).
    pub fn parse(pair: &str) -> Result<Login, String> {
        match pair.split_once(':') {
            Some((user, _)) if !user.is_empty() && pair.bytes().all(|b| b.is_ascii_graphic()) => Ok(Login(format!("Basic {}", base64(pair.as_bytes())))),
            _ => Err("bad auth (USER:PASS, no spaces)".to_string()),
        }
    }

    /// The `Proxy-Authorization` value that carries it.
    pub fn header(&self) -> &str {
        &self.0
    }

    /// Is `given` (a `Proxy-Authorization` value, if the client sent one)
    /// this login? Compared in constant time, so that timing tells nothing
    /// of the password.
    pub fn check_basic(&self, given: Option<&str>) -> Result<(), String> {
        let given = given.unwrap_or_default().trim();
        if given.is_empty() {
            return Err("this proxy asks for a login (Proxy-Authorization: Basic)".into());
        }
        // The scheme compares without case; the credentials exactly.
        let token = |s: &str| s.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).and(s.get(6..)).map(str::to_string);
        let (Some(g), Some(w)) = (token(given), token(&self.0)) else { return Err("a wrong proxy login".into()) };
        let same = g.len() == w.len() && g.bytes().zip(w.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err("a wrong proxy login".into())
        }
    }

    /// A SOCKS5 client's username and password (RFC 1929), checked as the
    /// same pair in the same constant-time comparison as HTTP's.
    pub fn check_pair(&self, user: &[u8], pass: &[u8]) -> Result<(), String> {
        let given = format!("Basic {}", base64(&[user, b":", pass].concat()));
        self.check_basic(Some(&given))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_basic_base64_of_the_pair() {
        assert_eq!((base64(b"u:p"), base64(b"user:pass"), base64(b"ab"), base64(b"a")), ("dTpw".into(), "dXNlcjpwYXNz".into(), "YWI=".into(), "YQ==".into()));
        let login = Login::parse("user:pass").unwrap();
        assert_eq!(login.header(), "Basic dXNlcjpwYXNz");
        assert_eq!(login.check_basic(Some("Basic dXNlcjpwYXNz")), Ok(()));
        assert_eq!(login.check_basic(Some("basic dXNlcjpwYXNz")), Ok(()), "the scheme is case-insensitive");
        assert!(login.check_basic(None).unwrap_err().contains("asks for a login"));
        assert!(login.check_basic(Some("Basic dXNlcjp3cm9uZw==")).unwrap_err().contains("wrong"));
        assert_eq!(login.check_pair(b"user", b"pass"), Ok(()), "SOCKS5's pair is the same login");
        assert!(login.check_pair(b"user", b"wrong").unwrap_err().contains("wrong"));
        assert!(login.check_pair(b"", b"").is_err() && login.check_pair(b"user:pass", b"").is_err());
        assert!(Login::parse("nopass").is_err() && Login::parse(":p").is_err() && Login::parse("a b:c").is_err());
    }
}
