//! What a client of a forward proxy asks for: `CONNECT host:port HTTP/1.1`
//! (a tunnel: TLS passes through untouched), or a plain HTTP request in
//! absolute form (`GET http://host/path HTTP/1.1`), which goes on toward
//! `host` in origin form (`GET /path HTTP/1.1`).
//!
//! A plain request is sent with `Connection: close`: the destination
//! closes after its answer, and the client's next request, to this host or
//! another, comes on a new connection that is checked afresh. (Relaying later
//! requests of a kept-alive connection would send them to the first
//! request's host whatever they name.)

use super::http_head::{read_head, MAX_HEADERS};
use super::Failure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// A tunnel: answer 200, then relay.
    Connect,
    /// A plain HTTP request: relay `head` (rewritten), then the rest.
    Http { head: Vec<u8> },
}

/// A complete proxy request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The destination: a name (lower case) or an IP literal (no brackets).
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` header, if any.
    pub auth: Option<String>,
    /// Bytes of the head in what was read; what follows is the client's stream.
    pub head_len: usize,
}

/// `Ok(None)`: the head is not complete yet. `Err`: a bad request (400).
pub fn parse(buf: &[u8]) -> Result<Option<Request>, Failure> {
    let bad = |why: String| Failure::BadRequest(why);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Some(head_len) = read_head(&mut req, buf)? else { return Ok(None) };
    let (method, target, minor) = (req.method.unwrap_or_default(), req.path.unwrap_or_default(), req.version.unwrap_or(1));
    let auth = header(req.headers, "proxy-authorization").map(str::to_string);
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = authority(target, None).ok_or_else(|| bad(format!("CONNECT to {target:?}: expected HOST:PORT")))?;
        return Ok(Some(Request { method: Method::Connect, host, port, auth, head_len }));
    }
    let Some(rest) = strip_prefix_ignore_case(target, "http://") else {
        return Err(bad(format!("{method} {target:?}: a proxy request names an absolute http:// URL (or use CONNECT)")));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth_part, path) = rest.split_at(end);
    let (host, port) = authority(auth_part, Some(80)).ok_or_else(|| bad(format!("a bad host in {target:?}")))?;
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    // The head again, in origin form, without the hop-by-hop headers meant
    // for us, and with Connection: close (see above).
    let mut head = format!("{method} {path} HTTP/1.{minor}\r\n").into_bytes();
    let mut has_host = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(name.as_str(), "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive") {
            continue;
        }
        has_host |= name == "host";
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    if !has_host {
        head.extend_from_slice(format!("Host: {auth_part}\r\n").as_bytes());
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some(Request { method: Method::Http { head }, host, port, auth, head_len }))
}

fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok()).map(str::trim)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| s.get(prefix.len()..)).flatten()
}

/// `host:port`, `[v6]:port`, or (with a default port) `host`. The host is
/// a DNS name (letters, digits, `-`, `_`, `.`) or an IP literal.
fn authority(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (addr, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port?,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let ok = !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_names_its_destination() {
        let bytes = b"CONNECT Pypi.Org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n\x16\x03\x01";
        let r = parse(bytes).unwrap().unwrap();
        assert_eq!((r.method, r.host.as_str(), r.port, r.auth.as_deref()), (Method::Connect, "pypi.org", 443, Some("Basic dTpw")));
        assert_eq!(r.head_len, bytes.len() - 3, "the TLS bytes after the head are the client's");
        let v6 = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(parse(b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: x"), Ok(None), "not complete yet");
    }

    #[test]
    fn a_plain_request_goes_on_in_origin_form_with_connection_close() {
        let r = parse(b"GET http://Example.Test:8080/a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.test", 8080));
        let Method::Http { head } = r.method else { panic!("a plain request") };
        assert_eq!(String::from_utf8(head).unwrap(), "GET /a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        let bare = parse(b"GET http://example.test HTTP/1.0\r\n\r\n").unwrap().unwrap();
        let Method::Http { head } = bare.method else { panic!() };
        assert_eq!((bare.port, String::from_utf8(head).unwrap().as_str()), (80, "GET / HTTP/1.0\r\nHost: example.test\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn bad_requests_say_why() {
        for (req, want) in [
            (&b"CONNECT pypi.org HTTP/1.1\r\n\r\n"[..], "expected HOST:PORT"),
            (b"CONNECT pypi.org:0 HTTP/1.1\r\n\r\n", "expected HOST:PORT"),
            (b"CONNECT bad host:443 HTTP/1.1\r\n\r\n", "not an HTTP/1.x request"),
            (b"CONNECT a/b:443 HTTP/1.1\r\n\r\n", "expected HOST:PORT"),
            (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "absolute http:// URL"),
            (b"GET https://x.test/ HTTP/1.1\r\n\r\n", "absolute http:// URL"),
            (b"GET http://x.test:99999/ HTTP/1.1\r\n\r\n", "a bad host"),
            (b"\x16\x03\x01\x00\x05hello", "not an HTTP/1.x request"),
        ] {
            match parse(req) {
                Err(Failure::BadRequest(why)) => assert!(why.contains(want), "{req:?}: {why}"),
                other => panic!("{req:?}: {other:?}"),
            }
        }
        let mut big = b"CONNECT a.test:443 HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 64 * 1024));
        assert!(matches!(parse(&big), Err(Failure::TooLarge(_))));
    }
}
