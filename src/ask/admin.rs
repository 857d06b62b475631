//! What the admin listener (`--admin`) answers, from a request's bytes
//! alone: the page (three static files, no token), and the JSON API behind
//! a bearer token (`--admin-token`). The loop carries out what needs the
//! proxy (`proxy/admin.rs`): `parse` says what was asked, the proxy lists
//! or answers, then a `Reply` is written.
//!
//! Who may answer: the token, compared in constant time, in an
//! `Authorization: Bearer` header (never in a URL, so never in a log line);
//! and a browser's request must come from the page itself: an `Origin`, when
//! sent, must be `http://` and the request's own `Host`, and that host a
//! loopback address, `localhost`, or the listener's own address (a page
//! elsewhere, or one that made its name point here, is refused); a
//! `Sec-Fetch-Site: cross-site` request is refused too. The CLI and hooks
//! send the token and no `Origin`.

use std::net::{IpAddr, SocketAddr};

use super::json::{self, Answering};
use super::Scope;
use crate::served::MAX_REQUEST;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/ask.js");
const STYLE: &str = include_str!("page/ask.css");

/// Sent with every answer: the page runs its own script and style only,
/// talks to its own origin only, and is never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A token shorter than this is refused at start.
pub const MIN_TOKEN: usize = 16;

/// What a request must show: the token, and (for the `Origin` check) the
/// listener's own address.
pub struct Gate {
    token: String,
    listen: SocketAddr,
}

impl Gate {
    pub fn new(token: String, listen: SocketAddr) -> Gate {
        Gate { token, listen }
    }
}

/// What a request asks for.
#[derive(Debug)]
pub enum Request {
    /// Answered without the proxy: a page, or why not.
    Done(Reply),
    /// `GET /api/questions`.
    List,
    /// `POST /api/answer`.
    Answer(Answering),
}

/// One answer, before it is written.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    content_type: &'static str,
    body: String,
    /// HEAD: the head alone.
    head_only: bool,
    /// A 405's `Allow`.
    allow: &'static str,
    /// Refused for who sent it (token, origin): why, for the `admin-refused` line.
    pub refused: Option<&'static str>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply { status, content_type, body, head_only: false, allow: "", refused: None }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: String) -> Reply {
        Reply::new(status, "application/json", body)
    }

    /// `{"error":"..."}` with this status.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, json::error(message))
    }

    /// `{"ok":true,"id":N,"answer":"..."}`.
    pub fn answered(id: u64, scope: Scope) -> Reply {
        Reply::json(200, format!("{{\"ok\":true,\"id\":{id},\"answer\":\"{}\"}}", scope.name()))
    }

    fn not_allowed(allow: &'static str, message: &str) -> Reply {
        Reply { allow, ..Reply::error(405, message) }
    }

    fn refused(status: u16, why: &'static str) -> Reply {
        Reply { refused: Some(why), ..Reply::error(status, why) }
    }

    /// The bytes to send: status line, the headers every answer has, body.
    pub fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Content Too Large",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}; charset=utf-8\r\nContent-Length: {}\r\nContent-Security-Policy: {CSP}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        match self.status {
            401 => head.push_str("WWW-Authenticate: Bearer\r\n"),
            405 => head.push_str(&format!("Allow: {}\r\n", self.allow)),
            _ => {}
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// What `request` (a whole one: `served::complete`) asks for.
pub fn parse(request: &[u8], gate: &Gate) -> Request {
    Request::Done(match route(request, gate) {
        Ok(asked) => return asked,
        Err(reply) => reply,
    })
}

fn route(request: &[u8], gate: &Gate) -> Result<Request, Reply> {
    if request.len() > MAX_REQUEST {
        return Err(Reply::error(413, "a request is at most 8 KiB, head and body"));
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(request) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) | Err(_) => return Err(Reply::error(400, "not an HTTP/1.x request")),
    };
    let (method, target) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let one = |name: &str| -> Result<Option<&str>, Reply> {
        let mut values = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| std::str::from_utf8(h.value).unwrap_or("\u{fffd}"));
        let first = values.next();
        if values.next().is_some() {
            return Err(Reply::error(400, "a header that may come once came twice"));
        }
        Ok(first.map(str::trim))
    };
    let page = |content_type, body: &str| {
        if method != "GET" && method != "HEAD" {
            return Err(Reply::not_allowed("GET, HEAD", "the page is read with GET"));
        }
        Ok(Request::Done(Reply { head_only: method == "HEAD", ..Reply::new(200, content_type, body.to_string()) }))
    };
    match path {
        "/" => return page("text/html", PAGE),
        "/ask.js" => return page("text/javascript", SCRIPT),
        "/ask.css" => return page("text/css", STYLE),
        "/api/questions" if method != "GET" => return Err(Reply::not_allowed("GET", "questions are listed with GET")),
        "/api/answer" if method != "POST" => return Err(Reply::not_allowed("POST", "an answer is given with POST")),
        "/api/questions" | "/api/answer" => {}
        _ => return Err(Reply::error(404, "the page is at /, the API at /api/questions and /api/answer (docs/ask.md)")),
    }
    // A browser's request from anywhere but the page itself.
    if one("sec-fetch-site")?.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(Reply::refused(403, "a cross-site request (Sec-Fetch-Site)"));
    }
    if method == "POST" {
        if let Some(origin) = one("origin")? {
            origin_allowed(origin, one("host")?, gate.listen).map_err(|why| Reply::refused(403, why))?;
        }
    }
    let token = one("authorization")?.and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim()));
    match token {
        None => return Err(Reply::refused(401, "no token (send Authorization: Bearer TOKEN; docs/ask.md)")),
        Some(t) if !same(t.as_bytes(), gate.token.as_bytes()) => return Err(Reply::refused(401, "a wrong token")),
        Some(_) => {}
    }
    if method == "GET" {
        return Ok(Request::List);
    }
    if one("transfer-encoding")?.is_some() {
        return Err(Reply::error(400, "send the body with Content-Length, not chunked"));
    }
    let length = one("content-length")?.map(|v| v.parse::<usize>());
    let body = match length {
        Some(Ok(n)) => request.get(end..end.saturating_add(n)).ok_or_else(|| Reply::error(400, "a body shorter than its Content-Length"))?,
        Some(Err(_)) => return Err(Reply::error(400, "a Content-Length that is not a number")),
        None => &[],
    };
    json::answering(body).map(Request::Answer).map_err(|why| Reply::error(400, &format!("bad body: {why}; expected {{\"id\":N,\"answer\":\"once\",\"by\":\"me\"}}")))
}

/// A browser's `Origin` may only be the page's own: `http://` + the
/// request's `Host`, where that host is loopback, `localhost` or the
/// listener's own address.
pub fn origin_allowed(origin: &str, host: Option<&str>, listen: SocketAddr) -> Result<(), &'static str> {
    let Some(host) = host else { return Err("an Origin with no Host") };
    if !origin.strip_prefix("http://").is_some_and(|o| o.eq_ignore_ascii_case(host)) {
        return Err("a foreign Origin (not the page itself)");
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let ip = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name).parse::<IpAddr>().ok();
    // Listening on every address, any of the machine's own (an address
    // typed in, never a name that could be pointed here) with its port.
    let own = host.parse::<SocketAddr>().is_ok_and(|a| a == listen || (listen.ip().is_unspecified() && a.port() == listen.port()));
    if name.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback()) || own {
        Ok(())
    } else {
        Err("a Host that is not loopback, localhost or the admin address (a name pointed here?)")
    }
}

/// Equal, in a time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether the token file was there or made now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Made {
    Now,
    Before,
}

/// The admin token: the file's first line, trimmed; when there is no file,
/// a fresh one (32 random bytes in hex) written there, readable by the
/// proxy's user only.
pub fn token_file(path: &str) -> Result<(String, Made), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.lines().next().unwrap_or_default().trim().to_string();
            if token.len() < MIN_TOKEN {
                return Err(format!("--admin-token: the token in {path} is {} characters; it must be at least {MIN_TOKEN} (delete the file and one is made)", token.len()));
            }
            Ok((token, Made::Before))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes).map_err(|e| format!("--admin-token: no random bytes for a token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            crate::sys::write_private(path, format!("{token}\n").as_bytes()).map_err(|e| format!("--admin-token: cannot write {path}: {} (under WasmEdge or wasmtime, pass its folder with --dir)", crate::sys::describe(&e)))?;
            Ok((token, Made::Now))
        }
        Err(e) => Err(format!("--admin-token: cannot read {path}: {} (under WasmEdge or wasmtime, pass its folder with --dir)", crate::sys::describe(&e))),
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
