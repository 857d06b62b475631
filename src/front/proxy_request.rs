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

use std::borrow::Cow;

use super::http_head::{read_head, MAX_HEADERS};
use crate::http1::{closes, connection_options, declared, names_framing, unsafe_head, Body, Declared};
use super::failure::Failure;
use crate::names::destination_host;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// A tunnel: answer 200, then relay.
    Connect,
    /// A plain HTTP request: relay `head` (rewritten), then its body as
    /// `body` delimits it; `to_head`: a HEAD request (no body in the
    /// answer); `close`: the client asked to close after the answer;
    /// `upgrade`: it asked for a websocket (only then may the answer be 101).
    Http { head: Vec<u8>, body: Body, to_head: bool, close: bool, upgrade: bool },
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
    /// The method as sent, and the target in origin form (`/path?query`;
    /// a CONNECT's is its authority): what `allow-http=` rules match.
    pub verb: String,
    pub target: String,
    /// The methods its method-override headers name (`X-HTTP-Method-Override`
    /// and the like, which many frameworks obey on a POST): `allow-http=`
    /// rules must allow them too.
    pub overrides: Vec<String>,
    /// Bytes of the head in what was read; what follows is the client's stream.
    pub head_len: usize,
}

/// Headers that ask a server to take the request for another method
/// (Rails, Express, Google's APIs, ASP.NET read one or another).
const OVERRIDES: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

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
        return Ok(Some(Request { method: Method::Connect, host, port, auth, verb: method.to_string(), target: target.to_string(), overrides: Vec::new(), head_len }));
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
    let framing = |why: String| Failure::Framing(format!("{host}:{port}"), why);
    let body = check_framing(req.headers, buf.get(..head_len).unwrap_or_default(), minor).map_err(framing)?;
    let options = connection_options(req.headers);
    if let Some(named) = names_framing(&options) {
        // Dropped as hop-by-hop after the framing was read from it, the
        // origin would frame the request without it: a body read as a
        // second request (with a Host no check saw), or the next request
        // on a kept connection read as this one's body.
        return Err(framing(format!("a Connection header naming {named}: the request would be framed by a header that is then dropped")));
    }
    let close = closes(&options, minor);
    let to_head = method.eq_ignore_ascii_case("HEAD");
    // The head again, in origin form: Host is the target's authority
    // (RFC 9112 section 3.2.2: a client's own Host, naming another site,
    // would pick that site on a shared origin), and the hop-by-hop headers
    // (RFC 9110 section 7.6.1) are ours, not the origin's: dropped.
    let mut head = format!("{method} {path} HTTP/1.{minor}\r\nHost: {}\r\n", host_header(&host, port)).into_bytes();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") || hop_by_hop(h.name, &options) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    // A websocket the client asks for is asked of the destination too: if
    // it answers 101, the connection becomes a tunnel to that destination
    // alone (`conn::forwarding`). Any other upgrade (h2c above all, whose
    // requests carry an :authority of their own that no check would read)
    // is dropped with HTTP2-Settings: the origin answers in HTTP/1.1.
    let websocket = options.iter().any(|o| o == "upgrade") && header(req.headers, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    // Otherwise no Connection header: HTTP/1.1's default keeps the
    // destination's connection open for the next request to it
    // (`proxy::parked`); an HTTP/1.0 request line closes it.
    head.extend_from_slice(if websocket { b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n" } else { b"\r\n" });
    let overrides = req.headers.iter().filter(|h| OVERRIDES.iter().any(|o| h.name.eq_ignore_ascii_case(o))).map(|h| String::from_utf8_lossy(h.value).trim().to_string()).collect();
    Ok(Some(Request { method: Method::Http { head, body, to_head, close, upgrade: websocket }, host, port, auth, verb: method.to_string(), target: path, overrides, head_len }))
}

/// A head as `parse` writes it for an origin reached over TLS (an opened
/// tunnel's): `Host` without the port when it is 443, as an `https` URL
/// would have it.
pub fn https_host(head: Vec<u8>, host: &str, port: u16) -> Vec<u8> {
    if port != 443 {
        return head;
    }
    let with_port = format!("\r\nHost: {}\r\n", host_header(host, port));
    let Some(at) = head.windows(with_port.len()).position(|w| w == with_port.as_bytes()) else { return head };
    let without = format!("\r\nHost: {}\r\n", host_header(host, 80));
    [head.get(..at).unwrap_or_default(), without.as_bytes(), head.get(at + with_port.len()..).unwrap_or_default()].concat()
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
    let line = format!("{method} http://{}{target} HTTP/1.{minor}", host_header(&name, port));
    Ok(Some([line.as_bytes(), after_request_line(buf)].concat()))
}

/// Why a request inside a tunnel is refused (`in_tunnel`).
#[derive(Debug, PartialEq, Eq)]
pub enum InTunnel {
    /// It is not a request that can be read (`Failure` says why).
    Unreadable(Failure),
    /// It names another host than the tunnel's.
    OtherHost(String),
}

/// A request inside a tunnel opened to `host:port` whose bytes are not TLS
/// (`crate::conn::bind`): each one is read as a proxy request is, in
/// absolute form toward the tunnel's destination (`Ok(Some)`, as
/// `absolute_from_host` does), and must name that destination: one `Host`
/// equal to it (with its port or none) and, if the target is in absolute
/// form, that too. `Ok(None)`: the head is not complete yet.
pub fn in_tunnel(buf: &[u8], host: &str, port: u16) -> Result<Option<Vec<u8>>, InTunnel> {
    let unreadable = |why: String| InTunnel::Unreadable(Failure::BadRequest(why));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if read_head(&mut req, buf).map_err(InTunnel::Unreadable)?.is_none() {
        return Ok(None);
    }
    let (method, target, minor) = (req.method.unwrap_or_default(), req.path.unwrap_or_default(), req.version.unwrap_or(1));
    let other = |named: String| InTunnel::OtherHost(format!("a request naming {named} in the tunnel to {}", host_header(host, port)));
    let ours = |(h, p): (String, u16)| h == host && p == port;
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err(unreadable(format!("a CONNECT inside the tunnel to {}", host_header(host, port))));
    }
    let path = match strip_prefix_ignore_case(target, "http://") {
        Some(rest) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority_part, path) = rest.split_at(end);
            if !authority(authority_part, Some(80)).is_some_and(ours) || authority_part.contains('@') {
                return Err(other(format!("http://{authority_part}")));
            }
            if path.starts_with('/') { path.to_string() } else { format!("/{path}") }
        }
        None if target.starts_with('/') => target.to_string(),
        None => return Err(unreadable(format!("{method} {target:?}: a request in a tunnel names a path (GET /path, with Host)"))),
    };
    let mut hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
    let (Some(named), None) = (hosts.next(), hosts.next()) else {
        return Err(other("no Host, or more than one".into()));
    };
    let named = std::str::from_utf8(named.value).ok().map(str::trim).unwrap_or_default();
    if !authority(named, Some(port)).is_some_and(ours) {
        return Err(other(format!("Host {named}")));
    }
    let line = format!("{method} http://{}{path} HTTP/1.{minor}", host_header(host, port));
    Ok(Some([line.as_bytes(), after_request_line(buf)].concat()))
}

/// What follows a head's request line: from the line end after it (the CR
/// before its LF, if any), line ends and all as sent, so that `parse`
/// refuses a bare LF there as it does from a proxy client. Empty lines
/// before the request line (which httparse skips) are not its.
fn after_request_line(buf: &[u8]) -> &[u8] {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let lf = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line_end = if lf > 0 && rest.get(lf - 1) == Some(&b'\r') { lf - 1 } else { lf };
    rest.get(line_end..).unwrap_or_default()
}

/// Whether a proxy consumes the header `name` (RFC 9110 section 7.6.1): a
/// fixed one, or one the client's `Connection` names (`options`).
/// `Upgrade` goes too (put back, when the client asks for one, by `parse`).
fn hop_by_hop(name: &str, options: &[Cow<'_, str>]) -> bool {
    const FIXED: [&str; 7] = ["connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade", "http2-settings"];
    FIXED.iter().any(|f| name.eq_ignore_ascii_case(f)) || options.iter().any(|o| name.eq_ignore_ascii_case(o))
}

/// Where the request's body ends (RFC 9112 section 6.3), refusing a request
/// whose body two readers could read two ways: the origin and this proxy
/// must agree on where the next request starts. Also what RFC 9112 lets a
/// server refuse: obs-fold, a bare LF.
fn check_framing(headers: &[httparse::Header<'_>], head: &[u8], minor: u8) -> Result<Body, String> {
    if let Some(why) = unsafe_head(head) {
        return Err(why.to_string());
    }
    // Some servers (CGI's environment above all) read '_' as '-': a framing
    // header spelt with one would frame the body there and not here.
    if let Some(h) = headers.iter().find(|h| h.name.contains('_') && ["content-length", "transfer-encoding"].contains(&h.name.replace('_', "-").to_ascii_lowercase().as_str())) {
        return Err(format!("a {} header: a framing header spelt with '_', which some servers read as '-'", h.name));
    }
    let declared = declared(headers)?;
    if minor == 0 && !matches!(declared, Declared::Nothing | Declared::Length(_)) {
        // RFC 9112 section 6.1: an HTTP/1.0 reader knows no chunking.
        return Err("Transfer-Encoding in an HTTP/1.0 request".into());
    }
    match declared {
        Declared::Nothing => Ok(Body::Empty),
        Declared::Length(n) => Ok(Body::Length(n)),
        Declared::Chunked => Ok(Body::Chunked),
        Declared::OtherCoding => Err("a Transfer-Encoding that does not end in chunked".into()),
    }
}

/// The Host header for a target: `name`, `name:port`, `[v6]:port` (the
/// port only when it is not 80).
fn host_header(host: &str, port: u16) -> impl std::fmt::Display + '_ {
    // Written straight into the head (not a String of its own: one
    // allocation fewer per forwarded request).
    struct HostHeader<'a>(&'a str, u16);
    impl std::fmt::Display for HostHeader<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0.contains(':') {
                true => write!(f, "[{}]", self.0)?,
                false => f.write_str(self.0)?,
            }
            if self.1 != 80 {
                write!(f, ":{}", self.1)?;
            }
            Ok(())
        }
    }
    HostHeader(host, port)
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
#[path = "proxy_request_tests.rs"]
mod tests;
