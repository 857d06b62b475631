//! What a client of a forward proxy asks for: `CONNECT host:port HTTP/1.1`
//! (a tunnel: TLS passes through untouched), or a plain HTTP request in
//! absolute form (`GET http://host/path HTTP/1.1`), which goes on toward
//! `host` in origin form (`GET /path HTTP/1.1`).
//!
//! A plain request goes on with `Host` set from its URL (whatever the
//! client's own `Host` said), without the hop-by-hop headers, and is refused
//! when its framing could be read two ways (both Content-Length and
//! Transfer-Encoding, and the like).
//!
//! The client's connection carries its next request once the answer is
//! through, and that request is read and checked here afresh
//! (`crate::http1::Exchange`), whatever host it names; the destination's
//! connection may be kept for the next request to the same host
//! (`proxy::parked`).

use super::http_head::{read_head, MAX_HEADERS};
use crate::http1::{closes, connection_options, declared, Body, Declared};
use super::failure::Failure;
use crate::names::destination_host;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// A tunnel: answer 200, then relay.
    Connect,
    /// A plain HTTP request: relay `head` (rewritten), then its body as
    /// `body` delimits it; `to_head`: a HEAD request (no body in the
    /// answer); `close`: the client asked to close after the answer.
    Http { head: Vec<u8>, body: Body, to_head: bool, close: bool },
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
    if auth_part.contains('@') {
        return Err(bad(format!("{target:?} carries userinfo (user@host): the host after it could be read two ways")));
    }
    let (host, port) = authority(auth_part, Some(80)).ok_or_else(|| bad(format!("a bad host in {target:?}")))?;
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let body = check_framing(req.headers, buf.get(..head_len).unwrap_or_default())?;
    let options = connection_options(req.headers);
    let close = closes(&options, minor);
    let to_head = method.eq_ignore_ascii_case("HEAD");
    // The head again, in origin form: Host is the target's authority
    // (RFC 9112 section 3.2.2: a client's own Host, naming another site,
    // would pick that site on a shared origin), and the hop-by-hop headers
    // (RFC 9110 section 7.6.1) are ours, not the origin's: dropped.
    let hop = hop_by_hop(&options);
    let mut head = format!("{method} {path} HTTP/1.{minor}\r\nHost: {}\r\n", host_header(&host, port)).into_bytes();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") || hop.iter().any(|name| h.name.eq_ignore_ascii_case(name)) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    // An upgrade the client asks for (a websocket) is asked of the
    // destination too: if it answers 101, the connection becomes a tunnel
    // to that destination alone (`conn::forwarding`).
    let upgrade = header(req.headers, "upgrade").filter(|u| options.iter().any(|o| o == "upgrade") && !u.is_empty() && u.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b','));
    // Otherwise no Connection header: HTTP/1.1's default keeps the
    // destination's connection open for the next request to it
    // (`proxy::parked`); an HTTP/1.0 request line closes it.
    match upgrade {
        Some(protocol) => head.extend_from_slice(format!("Upgrade: {protocol}\r\nConnection: upgrade\r\n\r\n").as_bytes()),
        None => head.extend_from_slice(b"\r\n"),
    }
    Ok(Some(Request { method: Method::Http { head, body, to_head, close }, host, port, auth, head_len }))
}

/// A transparent listener's request (`super::transparent`): a client that
/// thinks it talks to the server sends `GET /path` with `Host`. `Ok(Some)`:
/// the same bytes with the request line in absolute form,
/// `GET http://HOST:PORT/path` (the name from `Host`, the port the listener
/// stands for), for `parse` to read as any proxy request; `Ok(None)`: the
/// head is not complete yet. A request already in absolute form, a
/// CONNECT, and a `Host` that is missing, doubled or no host name are
/// refused: a client of a transparent listener sends none of them.
pub fn absolute_from_host(buf: &[u8], port: u16) -> Result<Option<Vec<u8>>, Failure> {
    let bad = |why: String| Failure::BadRequest(why);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if read_head(&mut req, buf)?.is_none() {
        return Ok(None);
    }
    let (method, target, minor) = (req.method.unwrap_or_default(), req.path.unwrap_or_default(), req.version.unwrap_or(1));
    if !target.starts_with('/') {
        return Err(bad(format!("{method} {target:?}: a transparent listener takes requests as a server does (GET /path, with Host)")));
    }
    let mut hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(bad("a request without one Host header: a transparent listener learns the destination from it".into()));
    };
    let named = std::str::from_utf8(host.value).ok().map(str::trim).unwrap_or_default();
    let name = destination_host(super::http_head::without_port(named)).ok_or_else(|| bad(format!("Host {named:?} names no host")))?;
    // The request line ends at its first LF (with the CR before it, if
    // any): what follows, line ends and all, stays as sent, so that `parse`
    // refuses a bare LF here as it does from a proxy client.
    let lf = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line_end = if lf > 0 && buf.get(lf - 1) == Some(&b'\r') { lf - 1 } else { lf };
    let line = format!("{method} http://{}{target} HTTP/1.{minor}", host_header(&name, port));
    Ok(Some([line.as_bytes(), buf.get(line_end..).unwrap_or_default()].concat()))
}

/// The headers a proxy consumes (RFC 9110 section 7.6.1): the fixed ones,
/// and every header the client's `Connection` names (`options`). `Upgrade`
/// goes too (put back, when the client asks for one, by `parse`).
fn hop_by_hop(options: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"].map(String::from).into();
    names.extend(options.iter().filter(|n| *n != "host").cloned());
    names
}

/// Where the request's body ends (RFC 9112 section 6.3), refusing a request
/// whose body two readers could read two ways: the origin and this proxy
/// must agree on where the next request starts. Also what RFC 9112 lets a
/// server refuse: obs-fold, a bare LF.
fn check_framing(headers: &[httparse::Header<'_>], head: &[u8]) -> Result<Body, Failure> {
    let bad = |why: &str| Err(Failure::BadRequest(why.to_string()));
    if head.windows(2).any(|w| matches!(w, [a, b'\n'] if *a != b'\r')) || head.first() == Some(&b'\n') {
        return bad("a bare LF in the request head (lines end in CRLF)");
    }
    if head.windows(3).any(|w| matches!(w, [b'\n', b' ' | b'\t', c] if *c != b'\r')) {
        return bad("a folded header line (obs-fold)");
    }
    match declared(headers).map_err(Failure::BadRequest)? {
        Declared::Nothing => Ok(Body::Empty),
        Declared::Length(n) => Ok(Body::Length(n)),
        Declared::Chunked => Ok(Body::Chunked),
        Declared::OtherCoding => bad("a Transfer-Encoding that does not end in chunked"),
    }
}

/// The Host header for a target: `name`, `name:port`, `[v6]:port` (the
/// port only when it is not 80).
fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    if port == 80 { host } else { format!("{host}:{port}") }
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
    Some((destination_host(host)?, port))
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
    fn a_plain_request_goes_on_in_origin_form() {
        let r = parse(b"GET http://Example.Test:8080/a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.test", 8080));
        let Method::Http { head, .. } = r.method else { panic!("a plain request") };
        assert_eq!(String::from_utf8(head).unwrap(), "GET /a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\n\r\n");
        let v6 = parse(b"GET http://[::1]:81/ HTTP/1.1\r\n\r\n").unwrap().unwrap();
        let Method::Http { head, .. } = v6.method else { panic!() };
        assert!(head.starts_with(b"GET / HTTP/1.1\r\nHost: [::1]:81\r\n"), "{}", String::from_utf8_lossy(&head));
        let bare = parse(b"GET http://example.test HTTP/1.0\r\n\r\n").unwrap().unwrap();
        let Method::Http { head, .. } = bare.method else { panic!() };
        assert_eq!((bare.port, String::from_utf8(head).unwrap().as_str()), (80, "GET / HTTP/1.0\r\nHost: example.test\r\n\r\n"));
    }

    #[test]
    fn host_is_the_targets_and_hop_by_hop_headers_stay_here() {
        // A Host naming another site (virtual hosting on a shared origin
        // would serve that one) is replaced, wherever it stands.
        let r = parse(b"GET http://allowed.test/x HTTP/1.1\r\nAccept: */*\r\nHost: other.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nUpgrade: websocket\r\nKeep-Alive: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        let Method::Http { head, .. } = r.method else { panic!("a plain request") };
        assert_eq!(String::from_utf8(head).unwrap(), "GET /x HTTP/1.1\r\nHost: allowed.test\r\nAccept: */*\r\n\r\n");
        // An upgrade asked for is asked of the destination.
        let ws = parse(b"GET http://ws.test/chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap().unwrap();
        let Method::Http { head, .. } = ws.method else { panic!("a plain request") };
        assert_eq!(String::from_utf8(head).unwrap(), "GET /chat HTTP/1.1\r\nHost: ws.test\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    }

    #[test]
    fn framing_that_reads_two_ways_is_refused() {
        for (req, want) in [
            (&b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..], "both Content-Length and Transfer-Encoding"),
            (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "differ"),
            (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", "differ"),
            (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "not a number"),
            (b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "does not end in chunked"),
            (b"GET http://a.test/ HTTP/1.1\nHost: a.test\r\n\r\n", "bare LF"),
            (b"GET http://a@b.test/ HTTP/1.1\r\n\r\n", "userinfo"),
            (b"GET http://b.test@a.test/ HTTP/1.1\r\n\r\n", "userinfo"),
        ] {
            match parse(req) {
                Err(Failure::BadRequest(why)) => assert!(why.contains(want), "{}: {why}", String::from_utf8_lossy(req)),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(req)),
            }
        }
        // The same length twice is one length; chunked alone is fine.
        assert!(parse(b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap().is_some());
        assert!(parse(b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn a_transparent_request_is_read_as_a_proxy_request_to_its_host() {
        let plain = b"GET /simple/?q=1 HTTP/1.1\r\nHost: PyPI.org.:8080\r\nAccept: */*\r\n\r\nrest";
        let abs = absolute_from_host(plain, 80).unwrap().unwrap();
        assert_eq!(abs, b"GET http://pypi.org/simple/?q=1 HTTP/1.1\r\nHost: PyPI.org.:8080\r\nAccept: */*\r\n\r\nrest", "the listener's port, not Host's");
        let req = parse(&abs).unwrap().unwrap();
        assert_eq!((req.host.as_str(), req.port), ("pypi.org", 80));
        assert_eq!(absolute_from_host(b"GET / HTTP/1.1\r\nHost: a.test\r\n", 80), Ok(None), "not complete");
        // A head with bare LFs keeps them, and is refused as from any client.
        let bare = absolute_from_host(b"GET / HTTP/1.1\nHost: a.test\n\n", 80).unwrap().unwrap();
        assert_eq!(bare, b"GET http://a.test/ HTTP/1.1\nHost: a.test\n\n");
        assert!(matches!(parse(&bare), Err(Failure::BadRequest(_))), "{:?}", parse(&bare));
        assert_eq!(absolute_from_host(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 8080).unwrap().unwrap(), b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
        for (bad, why) in [
            (&b"GET http://evil.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"[..], "as a server does"),
            (b"CONNECT evil.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", "as a server does"),
            (b"GET / HTTP/1.1\r\n\r\n", "without one Host"),
            (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\n", "without one Host"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "names no host"),
            (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "names no host"),
        ] {
            match absolute_from_host(bad, 80) {
                Err(Failure::BadRequest(w)) => assert!(w.contains(why), "{w}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
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
