//! What a message's headers declare of its framing (RFC 9112 section 6.3)
//! and its connection (`Connection`, RFC 9110 section 7.6.1), read the same
//! way for a request and a response; and what in a head two readers could
//! read two ways. The room's tour is in `mod.rs`.
//!
//! Every request and answer through a forward route is read here, so the
//! values are borrowed from the head where they are already trimmed and in
//! lower case (nearly always), and copied only where not: a copy per value
//! was a third of the allocations a forwarded request cost.

use std::borrow::Cow;

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
    let (has_length, has_coding) = (lengths.clone().next().is_some(), codings.clone().next().is_some());
    if has_length && has_coding {
        return Err("both Content-Length and Transfer-Encoding".into());
    }
    if has_length {
        return content_length(lengths).map(Declared::Length);
    }
    if !has_coding {
        return Ok(Declared::Nothing);
    }
    let codings: Vec<Cow<'_, str>> = codings.collect();
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
pub fn names_framing<'o>(options: &'o [Cow<'_, str>]) -> Option<&'o str> {
    options.iter().map(|o| o.as_ref()).find(|o| FRAMING.contains(o))
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
pub fn connection_options<'h>(headers: &[httparse::Header<'h>]) -> Vec<Cow<'h, str>> {
    let mut options = Vec::new();
    for value in values(headers, "connection") {
        match value {
            Cow::Borrowed(v) => options.extend(v.split(',').map(ows).filter(|o| !o.is_empty()).map(Cow::Borrowed)),
            Cow::Owned(v) => options.extend(v.split(',').map(ows).filter(|o| !o.is_empty()).map(|o| Cow::Owned(o.to_string()))),
        }
    }
    options
}

/// The connection ends after this message: it says `close`, or it is
/// HTTP/1.0 (`minor` 0) without `keep-alive`.
pub fn closes(options: &[Cow<'_, str>], minor: u8) -> bool {
    let has = |o: &str| options.iter().any(|t| t == o);
    has("close") || (minor == 0 && !has("keep-alive"))
}

/// Every value of the headers called `name`, trimmed, in lower case.
fn values<'a, 'h: 'a>(headers: &'a [httparse::Header<'h>], name: &'a str) -> impl Iterator<Item = Cow<'h, str>> + Clone + 'a {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| lower(h.value))
}

/// A header value trimmed and in lower case: borrowed when it already is.
fn lower(value: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(value) {
        Cow::Borrowed(v) if !v.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(ows(v)),
        v => Cow::Owned(ows(&v).to_ascii_lowercase()),
    }
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
fn content_length<'h>(values: impl Iterator<Item = Cow<'h, str>>) -> Result<u64, String> {
    // The first value as read, and its length: digit strings are equal when
    // their numbers and their lengths are ("044" is not "44").
    let mut first: Option<(u64, usize)> = None;
    for value in values {
        for each in value.split(',').map(ows) {
            let digits = !each.is_empty() && each.len() <= 18 && each.bytes().all(|b| b.is_ascii_digit());
            let n = each.parse::<u64>().ok().filter(|_| digits);
            match (first, n) {
                (None, Some(n)) => first = Some((n, each.len())),
                (None, None) => return Err("a Content-Length that is not a number".into()),
                (Some(f), n) if n.map(|n| (n, each.len())) != Some(f) => return Err("Content-Length values that differ".into()),
                (Some(_), _) => {}
            }
        }
    }
    first.map(|(n, _)| n).ok_or_else(|| "a Content-Length that is not a number".into())
}

