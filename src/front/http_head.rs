//! The head of a plain HTTP/1.x request, as far as routing needs it: the
//! `Host` header. `httparse` reads it; it copies nothing and allocates
//! nothing.
//!
//! As in HAProxy's TCP mode, the first request decides where the whole
//! connection goes: later requests on a kept-alive connection follow it,
//! whatever their Host says.

use super::failure::Failure;

/// The largest request head taken (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers read per request; a request with more is refused.
pub(super) const MAX_HEADERS: usize = 100;

/// What a request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// The Host header as sent (with any port), if there is one.
    pub host: Option<String>,
}

/// `Ok(None)`: the head is not complete yet. `Ok(Some)`: it is.
/// `Err`: not an HTTP/1.x request, or a head over `MAX_HEAD`.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let bad = |why: String| Failure::BadRequest(why);
    match read_head(&mut request, buf)? {
        None => Ok(None),
        Some(_) => {
            let mut hosts = request.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
            let host = match (hosts.next(), hosts.next()) {
                (None, _) => None,
                (Some(_), Some(_)) => return Err(bad("two Host headers".into())),
                (Some(h), None) => {
                    let value = std::str::from_utf8(h.value).map_err(|_| bad("a Host header that is not text".into()))?.trim();
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(bad(format!("a bad Host header {value:?}")));
                    }
                    Some(value.to_string())
                }
            };
            Ok(Some(Head { host }))
        }
    }
}

/// Does `buf` start with a complete HTTP/1.x request head (`Ok(true)`),
/// may it still become one (`Ok(false)`), or can it not (`Err`)?
pub fn complete(buf: &[u8]) -> Result<bool, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    read_head(&mut request, buf).map(|len| len.is_some())
}

/// Parse the request head in `buf` into `request`, within `MAX_HEAD`: its
/// length once complete, `None` while it is not. What every reader of a
/// client's request head (this one, `proxy_request`) starts with.
pub(super) fn read_head<'b>(request: &mut httparse::Request<'_, 'b>, buf: &'b [u8]) -> Result<Option<usize>, Failure> {
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(too_large(len)),
        Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(too_large(buf.len())),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(Failure::BadRequest(format!("not an HTTP/1.x request ({e})"))),
    }
}

fn too_large(len: usize) -> Failure {
    Failure::TooLarge(format!("a request head of {len} bytes or more (at most {MAX_HEAD})"))
}

/// `Host` without its port: `app.test:8080` -> `app.test`, `[::1]:80` -> `::1`.
pub fn without_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(addr, _)| addr);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_once_the_head_is_complete() {
        let req = b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT: Api.Test:8080\r\n\r\nbody";
        for cut in 0..req.len() - 4 {
            assert_eq!(parse(&req[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(req).unwrap().unwrap().host.as_deref(), Some("Api.Test:8080"));
        let old = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(old.host, None, "HTTP/1.0 may send none");
    }

    #[test]
    fn bad_and_oversized_heads_fail() {
        for (req, want) in [
            (&b"\x00\x01binary"[..], "not an HTTP/1.x request"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host headers"),
            (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "a bad Host header"),
            (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x request"),
        ] {
            match parse(req) {
                Err(Failure::BadRequest(why)) => assert!(why.contains(want), "{req:?}: {why}"),
                other => panic!("{req:?}: {other:?}"),
            }
        }
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert!(matches!(parse(&big), Err(Failure::TooLarge(_))), "no end in sight");
    }

    #[test]
    fn ports_come_off_hosts() {
        assert_eq!(without_port("app.test:8080"), "app.test");
        assert_eq!(without_port("app.test"), "app.test");
        assert_eq!(without_port("[::1]:80"), "::1");
        assert_eq!(without_port("[::1]"), "::1");
    }
}
