//! What a message's headers declare of its framing (RFC 9112 section 6.3)
//! and its connection (`Connection`, RFC 9110 section 7.6.1), read the same
//! way for a request and a response; and what in a head two readers could
//! read two ways. The room's tour is in `mod.rs`.

/// What a message's headers declare of its body (RFC 9112 section 6.3),
/// before the rules in which a request and an answer differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// Neither Content-Length nor Transfer-Encoding.
    Nothing,
    Length(u64),
    Chunked,
    /// A Transfer-Encoding whose last coding is not chunked.
    OtherCoding,
}

/// Read a message's framing headers. `Err`: both Content-Length and
/// Transfer-Encoding, or Content-Length values that are not one number.
pub fn declared(headers: &[httparse::Header<'_>]) -> Result<Declared, String> {
    let (lengths, codings) = (values(headers, "content-length"), values(headers, "transfer-encoding"));
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("both Content-Length and Transfer-Encoding".into());
    }
    if !lengths.is_empty() {
        return content_length(&lengths).map(Declared::Length);
    }
    if codings.is_empty() {
        return Ok(Declared::Nothing);
    }
    let each: Vec<&str> = codings.iter().flat_map(|v| v.split(',')).map(ows).filter(|c| !c.is_empty()).collect();
    // Chunked once, and last (RFC 9112 section 6.1): a reader that
    // de-chunks once would read the rest as another message.
    if each.iter().rev().skip(1).any(|c| *c == "chunked") {
        return Err("a Transfer-Encoding that does not end in chunked, or applies it twice".into());
    }
    Ok(if each.last() == Some(&"chunked") { Declared::Chunked } else { Declared::OtherCoding })
}

/// The headers a message's framing and routing are read from. A
/// `Connection` header that names one makes it hop-by-hop: a proxy drops
/// it after reading the framing from it, and the next reader frames the
/// message without it (a body read as a second request, or the next
/// client's request read as this one's body).
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// The first of `options` (a `Connection` header's, lower case) that names
/// a header the framing or routing is read from, if any.
pub fn names_framing(options: &[String]) -> Option<&str> {
    options.iter().map(String::as_str).find(|o| FRAMING.contains(o))
}

/// What in a message head (up to its blank line) two readers could read
/// two ways, beyond its headers: a bare LF ends a line for some and not
/// for others, and an obs-fold line joins the one before it for some.
///
/// Every request and answer through a forward route passes here: the line
/// ends are found a word at a time (`memchr`), not by a look at each byte
/// (which was the largest share of the proxy's own time per request).
pub fn unsafe_head(head: &[u8]) -> Option<&'static str> {
    let ends = || memchr::memchr_iter(b'\n', head);
    if ends().any(|at| at == 0 || head.get(at - 1) != Some(&b'\r')) {
        return Some("a bare LF in its head (lines end in CRLF)");
    }
    if ends().any(|at| matches!((head.get(at + 1), head.get(at + 2)), (Some(b' ' | b'\t'), Some(c)) if *c != b'\r')) {
        return Some("a folded header line (obs-fold)");
    }
    None
}

/// Where a message head's blank line ends, if it has one.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\r\n\r\n").map(|at| at + 4)
}

/// The options of a message's `Connection` headers, in lower case.
pub fn connection_options(headers: &[httparse::Header<'_>]) -> Vec<String> {
    values(headers, "connection").iter().flat_map(|v| v.split(',')).map(ows).filter(|o| !o.is_empty()).map(String::from).collect()
}

/// The connection ends after this message: it says `close`, or it is
/// HTTP/1.0 (`minor` 0) without `keep-alive`.
pub fn closes(options: &[String], minor: u8) -> bool {
    let has = |o: &str| options.iter().any(|t| t == o);
    has("close") || (minor == 0 && !has("keep-alive"))
}

/// Every value of the headers called `name`, trimmed, in lower case.
fn values(headers: &[httparse::Header<'_>], name: &str) -> Vec<String> {
    headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| ows(&String::from_utf8_lossy(h.value)).to_ascii_lowercase()).collect()
}

/// `s` without the optional whitespace around a field value or list
/// element (RFC 9110 section 5.6.3: space and tab alone). `str::trim`
/// also drops U+00A0, U+0085, U+3000...: `Content-Length: \u{a0}44` would
/// read 44 here and not a number (0, or none) at the origin, which then
/// reads the body as a request of its own.
fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The one length that every Content-Length value (and list) states.
fn content_length(values: &[String]) -> Result<u64, String> {
    let mut each = values.iter().flat_map(|v| v.split(',')).map(ows);
    let first = each.next().unwrap_or_default();
    if first.is_empty() || first.len() > 18 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a Content-Length that is not a number".into());
    }
    if each.any(|other| other != first) {
        return Err("Content-Length values that differ".into());
    }
    first.parse().map_err(|_| "a Content-Length that is not a number".into())
}

