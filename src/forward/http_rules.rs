//! Method and path rules (`allow-http=HOST/PATH:METHODS,...`): what a host
//! that some rule names may be asked. A host no rule names is not
//! restricted by them; one that some rule names may be asked only what one
//! of its rules allows.
//!
//! `HOST` is a name pattern as in `to=`; `PATH` starts with `/`, `*`
//! matches within one segment (any run of characters but `/`, so `*.git`
//! works), `**` as a whole segment matches zero or more segments; `METHODS`
//! is `|`-separated upper-case methods, or `*` for any. Paths compare with
//! case, as the origin's do.
//!
//! The path as matched (`normalize`): the request target up to its first
//! `?` (the query is not matched). Refused, as no path a rule could judge:
//! - a `.` or `..` segment in any spelling (`%2e`, `%2E%2e`, `.%2e`), and one
//!   with parameters (`..;x`, `..%3B`), which some servers read as `..`;
//! - an encoded `/` or `\` (`%2F`, `%5C`, any case), and a raw `\`;
//! - an empty segment (`//`; a trailing `/` is no empty segment but the end
//!   of the path, and `/a/` is not `/a`);
//! - `%` not followed by two hex digits; a control byte or NUL, raw or
//!   encoded; a raw space, `#` (no fragment is sent) or non-ASCII byte.
//!
//! Decoded for matching: `%XX` of an unreserved character (letters, digits,
//! `-._~`); every other `%XX` stays as written, its hex in upper case (so
//! `%252e` stays `%252e`: an encoded `%` and then the text `2e`). A path
//! that passes goes to the origin exactly as sent. A rule's own path is
//! read the same way (`%2A` there is a literal `*`).

use std::fmt;

use crate::names::Pattern;

/// One rule: `HOST/PATH:METHODS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    host: Pattern,
    /// The path's segments, normalized; `**` and `*` as written.
    path: Vec<String>,
    /// `None`: any method.
    methods: Option<Vec<String>>,
    /// The rule as written, for messages.
    text: String,
}

/// One list item of `allow-http=`.
pub fn parse(item: &str) -> Result<HttpRule, String> {
    let bad = |why: &str| format!("allow-http={item}: {why}");
    let form = "expected HOST/PATH:METHODS, the path starting with /";
    let Some(slash) = item.find('/') else { return Err(bad(form)) };
    let Some(colon) = item.rfind(':').filter(|&c| c > slash) else { return Err(bad(form)) };
    let (host, path, methods) = (item.get(..slash).unwrap_or_default(), item.get(slash..colon).unwrap_or_default(), item.get(colon + 1..).unwrap_or_default());
    let host = Pattern::parse(host).map_err(|e| bad(&e))?;
    if path.contains('?') {
        return Err(bad("a rule's path has no query (the query is not matched)"));
    }
    let path = normalize(path).map_err(|e| bad(&format!("its path: {e}")))?;
    let path: Vec<String> = segments(&path).map(str::to_string).collect();
    if let Some(s) = path.iter().find(|s| s.contains("**") && s.as_str() != "**") {
        return Err(bad(&format!("{s:?}: ** stands alone as a segment (any number of segments); * matches within one")));
    }
    let methods = match methods {
        "*" => None,
        _ => {
            let list: Vec<String> = methods.split('|').map(str::to_string).collect();
            if let Some(m) = list.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')) {
                return Err(bad(&format!("{m:?} is no method (upper case, GET not get; | between them, or * for any)")));
            }
            Some(list)
        }
    };
    Ok(HttpRule { host, path, methods, text: item.to_string() })
}

/// A forward route's rules, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRules(Vec<HttpRule>);

impl HttpRules {
    pub fn push(&mut self, rule: HttpRule) {
        self.0.push(rule);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Some rule names this host (lower case).
    pub fn names(&self, host: &str) -> bool {
        self.0.iter().any(|r| r.host.matches(host))
    }

    /// A request to `host` with `method` and the request target as sent in
    /// origin form (`/path?query`). `Ok`: no rule names the host, or one of
    /// them allows it. `Err`: one line, what was refused and why.
    pub fn check(&self, host: &str, method: &str, target: &str) -> Result<(), String> {
        let rules: Vec<&HttpRule> = self.0.iter().filter(|r| r.host.matches(host)).collect();
        if rules.is_empty() {
            return Ok(());
        }
        let shown = target.get(..target.len().min(200)).unwrap_or("(not shown)");
        let path = normalize(target).map_err(|e| format!("{method} {shown:?} to {host}: {e}, so no allow-http rule can judge it"))?;
        let segs: Vec<&str> = segments(&path).collect();
        if rules.iter().any(|r| r.allows(method, &segs)) {
            return Ok(());
        }
        let list = rules.iter().map(|r| r.text.as_str()).collect::<Vec<_>>().join(",");
        Err(format!("{method} {path} to {host} is allowed by no rule for it (allow-http={list})"))
    }
}

impl HttpRule {
    fn allows(&self, method: &str, segs: &[&str]) -> bool {
        self.methods.as_ref().is_none_or(|m| m.iter().any(|m| m == method)) && path_matches(&self.path, segs)
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A normalized path's segments: `/` is one empty segment, `/a/` is `a` and "".
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Pattern segments against a path's: `**` takes zero or more, any other
/// one segment (`*` within it). Dynamic programming: no pattern can make
/// it slow.
fn path_matches(pattern: &[String], path: &[&str]) -> bool {
    // ok[j]: the pattern so far matches the first j path segments.
    let mut ok = vec![false; path.len() + 1];
    if let Some(first) = ok.first_mut() {
        *first = true;
    }
    for p in pattern {
        let mut next = vec![false; path.len() + 1];
        if p == "**" {
            let mut any = false;
            for (j, slot) in next.iter_mut().enumerate() {
                any |= ok.get(j).copied().unwrap_or(false);
                *slot = any;
            }
        } else {
            for (j, seg) in path.iter().enumerate() {
                if ok.get(j).copied().unwrap_or(false) && glob(p.as_bytes(), seg.as_bytes()) {
                    if let Some(slot) = next.get_mut(j + 1) {
                        *slot = true;
                    }
                }
            }
        }
        ok = next;
    }
    ok.last().copied().unwrap_or(false)
}

/// `*` as any run of bytes within one segment; everything else literal.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|&b| b == b'*')
}

/// The path of a request target as rules match it (see the opening).
pub fn normalize(target: &str) -> Result<String, String> {
    let path = target.split('?').next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(format!("the request target {:?} is no path (one starting with /)", path.get(..40).unwrap_or(path)));
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&h| char::from(h).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i), hex(i + 1)) else {
                    return Err("a % not followed by two hex digits".into());
                };
                i += 2;
                let c = (hi * 16 + lo) as u8;
                match c {
                    b'/' | b'\\' => return Err(format!("an encoded {:?} (%{c:02X}), which a server could read as a separator", char::from(c))),
                    _ if c.is_ascii_control() => return Err(format!("an encoded control byte (%{c:02X})")),
                    _ if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => out.push(char::from(c)),
                    _ => out.push_str(&format!("%{c:02X}")),
                }
            }
            b'\\' => return Err("a \\ in the path, which a server could read as /".into()),
            b'#' => return Err("a # in the request target (a fragment is never sent)".into()),
            b' ' => return Err("a space in the request target".into()),
            _ if b.is_ascii_control() => return Err(format!("a control byte (0x{b:02x}) in the path")),
            _ if !b.is_ascii() => return Err("a non-ASCII byte in the path (it is sent percent-encoded)".into()),
            _ => out.push(char::from(b)),
        }
    }
    let segs: Vec<&str> = segments(&out).collect();
    for (n, seg) in segs.iter().enumerate() {
        let bare = seg.split(';').next().unwrap_or_default();
        let bare = bare.split("%3B").next().unwrap_or_default();
        if bare == "." || bare == ".." {
            return Err(format!("a {seg:?} segment (a dot segment in any spelling climbs or stays, and is refused)"));
        }
        if seg.is_empty() && n + 1 < segs.len() {
            return Err("an empty segment (//)".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "http_rules_tests.rs"]
mod tests;
