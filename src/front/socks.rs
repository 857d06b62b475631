//! SOCKS5 (RFC 1928) as a forward route's clients speak it, on the same
//! port as the HTTP proxy (told apart by the first byte: 5). What goes
//! over the wire, and nothing else: the front (`socks_client.rs`) walks a
//! client through it and checks what it asks with the same policy as an
//! HTTP client's.
//!
//! ```text
//! client                                      proxy
//!   05 n m1..mn          (greeting) ──▶
//!                                    ◀──  05 m   (the method chosen, or FF)
//!   01 ul user pl pass   (RFC 1929)  ──▶      (only when m = 02)
//!                                    ◀──  01 00  (or 01 01, then close)
//!   05 01 00 atyp addr port          ──▶      (CONNECT; atyp 1 IPv4, 3 name, 4 IPv6)
//!                                    ◀──  05 rep 00 01 bnd.addr bnd.port
//! ```
//! Every message is bounded (a name of at most 255 bytes), so a client
//! holds at most a few hundred bytes here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::names::destination_host;

/// The first byte of every SOCKS5 message from a client.
pub const VERSION: u8 = 5;
/// The first byte of a SOCKS4 or 4a request: refused with its own reply.
pub const SOCKS4: u8 = 4;
/// SOCKS4's "request rejected or failed" (VN 0, CD 91), for SOCKS4 clients.
pub const SOCKS4_REJECTED: [u8; 8] = [0, 91, 0, 0, 0, 0, 0, 0];

/// Authentication methods (RFC 1928 §3).
pub const NO_AUTH: u8 = 0;
pub const LOGIN: u8 = 2;
pub const NO_ACCEPTABLE: u8 = 0xFF;

/// A reply's code (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// The methods a client offers, of those this proxy knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offers {
    pub no_auth: bool,
    pub login: bool,
}

impl Offers {
    /// The method to answer with: a login when the route asks for one,
    /// else none (a client that offers only a login may log in with
    /// anything: nothing is checked).
    pub fn choose(self, login_asked: bool) -> u8 {
        match (login_asked, self.no_auth, self.login) {
            (true, _, true) | (false, false, true) => LOGIN,
            (false, true, _) => NO_AUTH,
            _ => NO_ACCEPTABLE,
        }
    }
}

/// A CONNECT request: where to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// A name (lower case, as `destination_host` takes it) or an IP literal.
    pub host: String,
    pub port: u16,
}

/// A request that cannot be served: the reply it gets, and why.
pub type Refused = (Rep, String);

/// The greeting: `Ok(None)` until it is complete; `Ok(Some)`: what it
/// offers and how many bytes it took.
pub fn greeting(buf: &[u8]) -> Result<Option<(Offers, usize)>, String> {
    let Some(&[version, n]) = buf.get(..2) else { return Ok(None) };
    if version != VERSION {
        return Err(format!("not a SOCKS5 greeting (version {version})"));
    }
    if n == 0 {
        return Err("a SOCKS5 greeting that offers no method".into());
    }
    let Some(methods) = buf.get(2..2 + usize::from(n)) else { return Ok(None) };
    let offers = Offers { no_auth: methods.contains(&NO_AUTH), login: methods.contains(&LOGIN) };
    Ok(Some((offers, 2 + usize::from(n))))
}

/// A login's username and password, as sent (RFC 1929: any bytes).
pub type Login<'a> = (&'a [u8], &'a [u8]);

/// A username/password sub-negotiation (RFC 1929): `(user, pass)` and how
/// many bytes it took.
pub fn login(buf: &[u8]) -> Result<Option<(Login<'_>, usize)>, String> {
    let Some(&[version, ulen]) = buf.get(..2) else { return Ok(None) };
    if version != 1 {
        return Err(format!("not a SOCKS5 username/password login (version {version})"));
    }
    let at = 2 + usize::from(ulen);
    let (Some(user), Some(&plen)) = (buf.get(2..at), buf.get(at)) else { return Ok(None) };
    let end = at + 1 + usize::from(plen);
    let Some(pass) = buf.get(at + 1..end) else { return Ok(None) };
    Ok(Some(((user, pass), end)))
}

/// A request: `Ok(None)` until it is complete; a CONNECT and how many bytes
/// it took; or what it gets instead (BIND and UDP ASSOCIATE are not served).
pub fn request(buf: &[u8]) -> Result<Option<(Request, usize)>, Refused> {
    let Some(&[version, command, _reserved, atyp]) = buf.get(..4) else { return Ok(None) };
    if version != VERSION {
        return Err((Rep::GeneralFailure, format!("not a SOCKS5 request (version {version})")));
    }
    let (host, at) = match atyp {
        1 => match buf.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(a) => (Ipv4Addr::from(a).to_string(), 8),
            None => return Ok(None),
        },
        4 => match buf.get(4..20).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
            Some(a) => (IpAddr::V6(Ipv6Addr::from(a)).to_canonical().to_string(), 20),
            None => return Ok(None),
        },
        3 => {
            let Some(&len) = buf.get(4) else { return Ok(None) };
            let Some(name) = buf.get(5..5 + usize::from(len)) else { return Ok(None) };
            let shown = || String::from_utf8_lossy(name).escape_debug().to_string();
            // A name, or an address written out. Odd bytes go on (as U+FFFD
            // when not UTF-8) to the policy's name check, which refuses
            // them with its reason (`rule=bad-name`) as on every front.
            match destination_host(&String::from_utf8_lossy(name)) {
                Some(h) => (h, 5 + usize::from(len)),
                None => return Err((Rep::HostUnreachable, format!("a SOCKS5 request for {:?}, which is no host name or address", shown()))),
            }
        }
        other => return Err((Rep::AddressTypeNotSupported, format!("a SOCKS5 request with address type {other} (1, 3 and 4 are)"))),
    };
    let Some(&[hi, lo]) = buf.get(at..at + 2) else { return Ok(None) };
    let port = u16::from_be_bytes([hi, lo]);
    match command {
        1 if port != 0 => Ok(Some((Request { host, port }, at + 2))),
        1 => Err((Rep::GeneralFailure, format!("a SOCKS5 CONNECT to {host} port 0"))),
        2 => Err((Rep::CommandNotSupported, "SOCKS5 BIND is not served (CONNECT is)".into())),
        3 => Err((Rep::CommandNotSupported, "SOCKS5 UDP ASSOCIATE is not served (CONNECT is)".into())),
        other => Err((Rep::CommandNotSupported, format!("a SOCKS5 request with command {other} (CONNECT, 1, is served)"))),
    }
}

/// A reply: its code and the address the proxy connected from (the
/// RFC's BND.ADDR; `0.0.0.0:0` when there is none).
pub fn reply(rep: Rep, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = vec![VERSION, rep as u8, 0];
    match bound.ip().to_canonical() {
        IpAddr::V4(a) => {
            out.push(1);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_offers_methods_and_the_route_picks_one() {
        assert_eq!(greeting(&[5]), Ok(None));
        assert_eq!(greeting(&[5, 2, 0]), Ok(None), "one method of two so far");
        assert_eq!(greeting(&[5, 2, 0, 2, 9]), Ok(Some((Offers { no_auth: true, login: true }, 4))), "what follows is not the greeting's");
        assert!(greeting(&[5, 0]).unwrap_err().contains("no method"));
        assert!(greeting(&[4, 1, 0]).unwrap_err().contains("version 4"));
        let (none, login, both) = (Offers { no_auth: true, login: false }, Offers { no_auth: false, login: true }, Offers { no_auth: true, login: true });
        assert_eq!((none.choose(false), both.choose(false), login.choose(false)), (NO_AUTH, NO_AUTH, LOGIN));
        assert_eq!((none.choose(true), both.choose(true), login.choose(true)), (NO_ACCEPTABLE, LOGIN, LOGIN));
        assert_eq!(Offers::default().choose(false), NO_ACCEPTABLE, "only GSSAPI or unknown methods");
    }

    #[test]
    fn a_login_is_read_whole_or_not_at_all() {
        let msg = [&[1u8, 4][..], b"user", &[4], b"pass", b"rest"].concat();
        for cut in 0..11 {
            assert_eq!(login(&msg[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(login(&msg), Ok(Some(((&b"user"[..], &b"pass"[..]), 11))));
        assert_eq!(login(&[1, 0, 0]), Ok(Some(((&b""[..], &b""[..]), 3))), "empty fields are a wrong login, not a bad message");
        assert!(login(&[5, 1, b'u', 1, b'p']).unwrap_err().contains("version 5"));
    }

    #[test]
    fn a_request_names_a_host_or_an_address() {
        let name = [&[5u8, 1, 0, 3, 11][..], b"Example.COM", &[1, 187]].concat();
        assert_eq!(request(&name), Ok(Some((Request { host: "example.com".into(), port: 443 }, 18))));
        for cut in 0..name.len() {
            assert_eq!(request(&name[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(request(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]), Ok(Some((Request { host: "127.0.0.1".into(), port: 80 }, 10))));
        let v6_name = [&[5u8, 1, 0, 3, 3][..], b"::1", &[0, 22]].concat();
        assert_eq!(request(&v6_name).unwrap().unwrap().0.host, "::1", "an address written as a name is that address");
        let v6 = [&[5u8, 1, 0, 4][..], &"::1".parse::<Ipv6Addr>().unwrap().octets(), &[0x1f, 0x90]].concat();
        assert_eq!(request(&v6), Ok(Some((Request { host: "::1".into(), port: 8080 }, 22))));
        let mapped = [&[5u8, 1, 0, 4][..], &"::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets(), &[1, 187]].concat();
        assert_eq!(request(&mapped).unwrap().unwrap().0.host, "10.1.2.3", "an IPv4-mapped address is its IPv4 address, for the policy");
    }

    #[test]
    fn requests_that_are_not_served_get_their_own_code() {
        let code = |buf: &[u8]| request(buf).unwrap_err().0;
        assert_eq!(code(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 80]), Rep::CommandNotSupported, "BIND");
        assert_eq!(code(&[5, 3, 0, 1, 1, 2, 3, 4, 0, 80]), Rep::CommandNotSupported, "UDP ASSOCIATE");
        assert_eq!(code(&[5, 9, 0, 1, 1, 2, 3, 4, 0, 80]), Rep::CommandNotSupported);
        assert_eq!(code(&[5, 1, 0, 7, 1, 2, 3, 4, 0, 80]), Rep::AddressTypeNotSupported);
        assert_eq!(code(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 0]), Rep::GeneralFailure, "port 0");
        assert_eq!(code(&[4, 1, 0, 1, 1, 2, 3, 4, 0, 80]), Rep::GeneralFailure);
        let msg = |name: &[u8]| [&[5u8, 1, 0, 3, name.len() as u8][..], name, &[1, 187]].concat();
        for bad in [&b"a b"[..], b"x/y", b"", b"evil.test\0.allowed.test", b"[::1]"] {
            assert_eq!(code(&msg(bad)), Rep::HostUnreachable, "{:?}", String::from_utf8_lossy(bad));
        }
        // Odd but not structural: on to the policy's name check (rule bad-name), as written.
        for (odd, host) in [(&b"pypi.org:443"[..], "pypi.org:443"), (&[0xc3, 0xa9], "\u{e9}"), (&[0xff, b'.', b'a'], "\u{fffd}.a"), (b"Blocked..Wild.Test.", "blocked..wild.test")] {
            assert_eq!(request(&msg(odd)).unwrap().unwrap().0.host, host);
        }
    }

    #[test]
    fn a_reply_carries_the_bound_address() {
        assert_eq!(reply(Rep::NotAllowed, None), [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply(Rep::Succeeded, Some("10.0.0.2:4321".parse().unwrap())), [5, 0, 0, 1, 10, 0, 0, 2, 0x10, 0xe1]);
        let v6 = reply(Rep::Succeeded, Some("[::1]:1".parse().unwrap()));
        assert_eq!((v6.len(), v6[3], v6[19], v6[21]), (22, 4, 1, 1));
    }
}

/// Where a SOCKS5 client is in its negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Login,
    Request,
}
