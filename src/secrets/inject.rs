//! A request head on its way out (`inject`), and what is no request
//! (`scan`): where placeholders are looked for, swapped, or refused.
//!
//! A placeholder is looked for in the whole head, compared without case
//! (a tool may lower-case what it sends), and inside every header value of
//! the form `Basic BASE64` once decoded (git sends a token so). Found where
//! it may not go (the head goes to a name not in its `to=`, or not over TLS
//! the proxy opened), the head is refused: `Leak`. Where it may go, it is
//! swapped for the value only in its `as=` place and only when written
//! exactly (the whole credential); anywhere else it passes as it is, worth
//! nothing there. A credential that is no placeholder is never touched.
//! What the scan does not see: a placeholder encoded otherwise (percent- or
//! base64-encoded outside `Basic`) or in a body. That is no leak of a value:
//! the sandbox holds no value; the scan is a tripwire that names the try.

use super::placeholder::{base64, unbase64};
use super::{Entry, Injected, Leak, Place, Secrets};

impl Secrets {
    /// A request head in origin form (request line, `Host`, headers, CRLF
    /// CRLF) going to `host` (lower case, no port); `opened`: over TLS the
    /// proxy opened. `Ok(None)`: nothing to swap (no placeholder in it, or
    /// only where it is worth nothing): send it as it is. `Ok(Some)`: the
    /// head with values swapped in, and the echoes a response may carry.
    pub fn inject(&self, head: &[u8], host: &str, opened: bool) -> Result<Option<Injected>, Leak> {
        self.inject_for(head, host, opened, None)
    }

    /// `inject` for a client of route `client=` `client`: an entry with
    /// `clients=` that does not name it is a leak, as another name would be.
    pub fn inject_for(&self, head: &[u8], host: &str, opened: bool, client: Option<&str>) -> Result<Option<Injected>, Leak> {
        let found = self.found(head);
        if found.is_empty() {
            return Ok(None);
        }
        if let Some((e, place)) = found.iter().find(|(e, _)| !e.serves(client)) {
            return Err(leak(e, &format!("{place} of a request from client {}, which its clients= does not name", client.unwrap_or("(none)"))));
        }
        let allowed = |e: &Entry| opened && e.goes_to(host);
        if let Some((e, place)) = found.iter().find(|(e, _)| !allowed(e)) {
            return Err(leak(e, &format!("{place} of a request to {host}{}", if opened { "" } else { " not over TLS the proxy opened" })));
        }
        let mut out = Vec::with_capacity(head.len() + 64);
        let mut echoes = Vec::new();
        let mut swapped = false;
        for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
            let (name, value) = match split_header(line) {
                Some(h) if i > 0 => h,
                _ => {
                    out.extend_from_slice(line);
                    continue;
                }
            };
            let new = found.iter().find_map(|(e, _)| swap(e, name, value));
            match new {
                Some((new, echo)) => {
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(&new);
                    out.extend_from_slice(if line.ends_with(b"\r\n") { b"\r\n" } else { b"\n" });
                    echoes.extend(echo);
                    swapped = true;
                }
                None => out.extend_from_slice(line),
            }
        }
        if !swapped {
            return Ok(None);
        }
        // A value swapped in is not some other entry's placeholder (the file's
        // checks make it so; this holds it whatever an entry holds).
        if let Some((e, place)) = self.found(&out).into_iter().find(|(e, _)| !allowed(e)) {
            return Err(leak(e, &format!("{place} of a request to {host}, once values were swapped in")));
        }
        Ok(Some(Injected { head: out, echoes }))
    }

    /// Any placeholder in `bytes` (a CONNECT head, a host name, an SNI, a DNS
    /// question's name), compared without case: `Err` with `what` in its
    /// words (`"in the CONNECT request"`, `"in the name asked"`).
    pub fn scan(&self, bytes: &[u8], what: &str) -> Result<(), Leak> {
        let lower = bytes.to_ascii_lowercase();
        match self.entries.iter().find(|e| contains(&lower, &e.placeholder)) {
            Some(e) => Err(leak(e, what)),
            None => Ok(()),
        }
    }

    /// The entries whose placeholder is in `head`, each with where it was
    /// first found: "in the request line", "in header X-Api-Key". Line by
    /// line: a placeholder is visible ASCII, never across a line's end.
    fn found(&self, head: &[u8]) -> Vec<(&Entry, String)> {
        if self.entries.is_empty() {
            return Vec::new(); // no --secrets: nothing to look for (and no line lower-cased per request)
        }
        // (a header's name, the line lower-cased, its Basic credential decoded and lower-cased)
        type Line<'a> = (Option<&'a [u8]>, Vec<u8>, Option<Vec<u8>>);
        let lines: Vec<Line<'_>> = head
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, line)| {
                let header = split_header(line).filter(|_| i > 0);
                let decoded = header.and_then(|(_, v)| basic(v)).map(|c| c.to_ascii_lowercase());
                (header.map(|(name, _)| name), line.to_ascii_lowercase(), decoded)
            })
            .collect();
        let mut found = Vec::new();
        for e in &self.entries {
            let hit = lines.iter().find(|(_, lower, decoded)| contains(lower, &e.placeholder) || decoded.as_ref().is_some_and(|c| contains(c, &e.placeholder)));
            match hit {
                Some((Some(name), ..)) => found.push((e, format!("in header {}", self.shown(name)))),
                Some((None, ..)) => found.push((e, "in the request line".to_string())),
                None => {}
            }
        }
        found
    }
}

impl Secrets {
    /// A header's name for a leak's words: a token of at most 64 characters
    /// (else "(a name not shown)"), with any value in it replaced.
    fn shown(&self, name: &[u8]) -> String {
        let token = name.len() <= 64 && name.iter().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b));
        match std::str::from_utf8(name) {
            Ok(name) if token => self.redact_text(name).into_owned(),
            _ => "(a name not shown)".to_string(),
        }
    }
}

/// A head with a value swapped in, asking for its answer uncompressed: any
/// `Accept-Encoding` the client sent gives way to `identity`. The redactor
/// reads the answer's bytes as they come, and a value the origin echoes in
/// a body it compressed is no longer those bytes: the client would pick
/// the compression that hides an echo from it.
pub fn uncompressed(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 26);
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        let accept = i > 0 && split_header(line).is_some_and(|(name, _)| name.eq_ignore_ascii_case(b"accept-encoding"));
        if line == b"\r\n" || line == b"\n" {
            out.extend_from_slice(b"Accept-Encoding: identity\r\n");
        }
        if !accept {
            out.extend_from_slice(line);
        }
    }
    out
}

/// (the bytes sent, the bytes the client sent): `Injected::echoes`.
type Echo = (Vec<u8>, Vec<u8>);

/// `e`'s value in place of its placeholder in header `name: value`, if its
/// `as=` place is this header and holds exactly the placeholder; with the
/// echo of `as=basic` (the credential as sent, and as the client sent it).
fn swap(e: &Entry, name: &[u8], value: &[u8]) -> Option<(Vec<u8>, Option<Echo>)> {
    match &e.place {
        Place::Header(h) if name.eq_ignore_ascii_case(h.as_bytes()) && value == e.placeholder.as_slice() => Some((e.value.clone(), None)),
        Place::Bearer if name.eq_ignore_ascii_case(b"authorization") => {
            let (scheme, credential) = match value.iter().position(|&b| b == b' ') {
                Some(at) => (value.get(..=at).unwrap_or_default(), trim(value.get(at..).unwrap_or_default())),
                None => (&b""[..], value),
            };
            (credential == e.placeholder.as_slice()).then(|| ([scheme, &e.value].concat(), None))
        }
        Place::Basic if name.eq_ignore_ascii_case(b"authorization") => {
            let decoded = basic(value)?;
            let colon = decoded.iter().position(|&b| b == b':')?;
            let (user, password) = (decoded.get(..=colon)?, decoded.get(colon + 1..)?);
            if password != e.placeholder.as_slice() {
                return None;
            }
            let sent = base64(&[user, &e.value].concat());
            let asked = base64(&[user, &e.placeholder].concat());
            // The echo without its padding: found too where an origin
            // echoes the credential unpadded (as the padded one starts so).
            let unpadded = |b64: &[u8]| b64.strip_suffix(b"==").or_else(|| b64.strip_suffix(b"=")).unwrap_or(b64).to_vec();
            let echo = (unpadded(&sent), unpadded(&asked));
            Some(([&b"Basic "[..], &sent].concat(), Some(echo)))
        }
        _ => None,
    }
}

/// A header line's name and value (trimmed), or `None` for what is none
/// (the request line, the blank line that ends the head).
fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    (!name.is_empty() && !name.contains(&b' ')).then(|| (name, trim(line.get(colon + 1..).unwrap_or_default())))
}

/// A `Basic` credential, decoded.
fn basic(value: &[u8]) -> Option<Vec<u8>> {
    let rest = value.get(..6).filter(|s| s.eq_ignore_ascii_case(b"basic "))?;
    unbase64(trim(value.get(rest.len()..)?))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |at| at + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// Does `lower` (lower-cased) hold `needle`, compared without case?
pub fn contains(lower: &[u8], needle: &[u8]) -> bool {
    let needle = needle.to_ascii_lowercase();
    !needle.is_empty() && lower.windows(needle.len()).any(|w| w == needle.as_slice())
}

fn leak(e: &Entry, place: &str) -> Leak {
    Leak { entry: e.name.clone(), why: format!("the placeholder of {} {place} (it may go to {} only, over TLS the proxy opened)", e.name, e.names()) }
}
