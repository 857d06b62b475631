//! The little JSON the admin API speaks, by hand (no serde): strings
//! escaped so that no name or path can end a string, a script or a line
//! (quotes, backslash, control characters, `<` and `>`, U+2028 and U+2029),
//! the questions and answers written out, and the one body the API takes,
//! `{"id":N,"answer":"...","by":"..."}`, read strictly.

use std::fmt::Write as _;
use std::time::Instant;

use super::{Answer, Question, Scope};

/// `s` as a JSON string, quotes included.
pub fn string(out: &mut String, s: &str) {
    // Control characters (always); `<`, `>` and `&` (never markup, wherever
    // the text lands); DEL; the two separators JavaScript once took for
    // line ends.
    crate::log::json_escaped(out, s, |c| matches!(c, '<' | '>' | '&' | '\u{7f}' | '\u{2028}' | '\u{2029}'));
}

/// A JSON string or `null`.
fn maybe(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

/// `{"error":"..."}`.
pub fn error(message: &str) -> String {
    let mut out = String::from("{\"error\":");
    string(&mut out, message);
    out.push('}');
    out
}

/// `GET /api/questions`: the questions waiting (oldest first), the recent
/// answers (newest first) and report mode's drafts.
pub fn questions<'a>(pending: &[Question], recent: impl Iterator<Item = &'a Answer>, drafts: &str, now: Instant) -> String {
    let mut out = String::from("{\"questions\":[");
    for (i, q) in pending.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let a = &q.asking;
        let _ = write!(out, "{{\"id\":{},\"route\":", q.id);
        string(&mut out, &a.route);
        out.push_str(",\"client\":");
        string(&mut out, &a.client.to_string());
        let _ = write!(out, ",\"way\":\"{}\",\"host\":", a.way.name());
        string(&mut out, &a.host);
        let _ = write!(out, ",\"port\":{},\"method\":", a.port);
        maybe(&mut out, a.method.as_deref());
        out.push_str(",\"path\":");
        maybe(&mut out, a.path.as_deref());
        let _ = write!(out, ",\"waited_s\":{},\"clients\":{}}}", now.saturating_duration_since(q.since).as_secs(), q.waiting);
    }
    out.push_str("],\"recent\":[");
    for (i, r) in recent.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let a = &r.asking;
        let _ = write!(out, "{{\"id\":{},\"route\":", r.id);
        string(&mut out, &a.route);
        out.push_str(",\"client\":");
        string(&mut out, &a.client.to_string());
        let _ = write!(out, ",\"way\":\"{}\",\"host\":", a.way.name());
        string(&mut out, &a.host);
        let _ = write!(out, ",\"port\":{},\"answer\":\"{}\",\"by\":", a.port, r.scope.name());
        string(&mut out, &r.by);
        let _ = write!(out, ",\"at\":\"{}\"}}", humantime::format_rfc3339_seconds(r.at));
    }
    out.push_str("],\"drafts\":");
    string(&mut out, drafts);
    out.push('}');
    out
}

/// What `POST /api/answer` asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Answering {
    pub id: u64,
    pub scope: Scope,
    /// Who answers, as the log and the page show it: `[a-z0-9-]`, at most
    /// 16 characters; `api` when the body says nothing.
    pub by: String,
}

/// Longest string value taken in a body.
const MAX_VALUE: usize = 64;

/// Read `{"id":N,"answer":"...","by":"..."}`: those keys only, each at
/// most once, `id` a whole number, the strings plain (no escapes, no control
/// characters); `by` may be left out. Else why not, in words.
pub fn answering(body: &[u8]) -> Result<Answering, String> {
    let mut r = Reader { s: body, at: 0 };
    let (mut id, mut answer, mut by) = (None, None, None);
    r.blank();
    r.expect(b'{')?;
    r.blank();
    if r.peek() != Some(b'}') {
        loop {
            r.blank();
            let key = r.string()?;
            r.blank();
            r.expect(b':')?;
            r.blank();
            let twice = match key {
                "id" => id.replace(r.number()?).is_some(),
                "answer" => answer.replace(r.string()?).is_some(),
                "by" => by.replace(r.string()?).is_some(),
                other => return Err(format!("unknown key {other:?} (the body takes id, answer and by)")),
            };
            if twice {
                return Err(format!("{key} is given twice"));
            }
            r.blank();
            match r.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err("expected , or } after a value".into()),
            }
        }
    } else {
        r.next();
    }
    r.blank();
    if r.peek().is_some() {
        return Err("something after the object".into());
    }
    let id = id.ok_or("no id (the question's number)")?;
    let answer = answer.ok_or("no answer (once, session, forever, deny or deny-forever)")?;
    let scope = Scope::parse(answer).ok_or_else(|| format!("{answer:?} is not an answer: once, session, forever, deny or deny-forever"))?;
    Ok(Answering { id, scope, by: who(by.unwrap_or("api")) })
}

/// `by` as the log may show it: lower-case letters, digits and `-`, at most 16.
pub fn who(by: &str) -> String {
    let kept: String = by.chars().map(|c| c.to_ascii_lowercase()).filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-').take(16).collect();
    if kept.is_empty() {
        "api".to_string()
    } else {
        kept
    }
}

/// A cursor over the body's bytes.
struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == want => Ok(()),
            _ => Err(format!("expected {:?} at byte {}", want as char, self.at)),
        }
    }

    /// A string without escapes or control characters, at most `MAX_VALUE` bytes.
    fn string(&mut self) -> Result<&'a str, String> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next() {
                Some(b'"') => break,
                Some(b'\\') => return Err("a string with an escape (the values are plain words)".into()),
                Some(b) if b < 0x20 => return Err("a control character in a string".into()),
                Some(_) if self.at - start > MAX_VALUE => return Err(format!("a string over {MAX_VALUE} bytes")),
                Some(_) => {}
                None => return Err("a string that does not end".into()),
            }
        }
        let bytes = self.s.get(start..self.at - 1).unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|_| "a string that is not UTF-8".to_string())
    }

    /// A whole number: digits, no sign, no fraction, no leading zero.
    fn number(&mut self) -> Result<u64, String> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(self.s.get(start..self.at).unwrap_or_default()).unwrap_or_default();
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return Err("id must be a whole number, e.g. 3".into());
        }
        digits.parse().map_err(|_| "id is too large".to_string())
    }
}

/// The `"error"` string of an API answer, unescaped (for the CLI), if it has one.
pub fn error_of(body: &str) -> Option<String> {
    let rest = body.split_once("\"error\":\"")?.1;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('?'));
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}
