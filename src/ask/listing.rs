//! `wasiter ask list` for a person: the JSON of `GET /api/questions` read
//! back (a small reader for what `json.rs` writes) and shown as lines.
//!
//! ```text
//! waiting:
//!   #3  4s  127.0.0.1 connect api.example.com:443  on 127.0.0.1:3128  (1 client)
//! recent:
//!   #2  session by page  127.0.0.1 http pypi.org:80  at 2026-12-04T21:00:00Z
//! ```

use std::fmt::Write as _;

/// A JSON value, as far as the listing needs one.
#[derive(Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The API's numbers are whole.
    Number(i64),
    Text(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> &Value {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map_or(&Value::Null, |(_, v)| v),
            _ => &Value::Null,
        }
    }

    fn list(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            _ => &[],
        }
    }

    /// As shown: text bare, a whole number without a fraction, null empty.
    fn show(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format!("{n}"),
            Value::Text(t) => t.chars().map(shown).collect(),
            _ => "?".to_string(),
        }
    }
}

/// A character for a terminal: a control character or a direction
/// override (which could restyle or reorder the line) as `\u{..}`.
fn shown(c: char) -> String {
    if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
        c.escape_unicode().to_string()
    } else {
        c.to_string()
    }
}

/// The listing's lines, or None when `body` is not the JSON it expects
/// (the caller prints it as it came).
pub fn lines(body: &str) -> Option<String> {
    let mut r = Reader { s: body.as_bytes(), at: 0 };
    let v = r.value(0)?;
    let mut out = String::new();
    let questions = v.get("questions").list();
    if questions.is_empty() {
        out.push_str("nothing is waiting\n");
    } else {
        out.push_str("waiting (answer with: wasiter ask answer ID once|session|forever|deny|deny-forever):\n");
    }
    for q in questions {
        let request = match (q.get("method"), q.get("path")) {
            (m @ Value::Text(_), p @ Value::Text(_)) => format!("  {} {}", m.show(), p.show()),
            _ => String::new(),
        };
        let clients = q.get("clients").show();
        let _ = writeln!(
            out,
            "  #{}  {}s  {} {} {}{request}  on {}  ({clients} client{})",
            q.get("id").show(),
            q.get("waited_s").show(),
            q.get("client").show(),
            q.get("way").show(),
            destination(q),
            q.get("route").show(),
            if clients == "1" { "" } else { "s" }
        );
    }
    let recent = v.get("recent").list();
    if !recent.is_empty() {
        out.push_str("recent:\n");
    }
    for a in recent {
        let _ = writeln!(
            out,
            "  #{}  {} by {}  {} {} {}  at {}",
            a.get("id").show(),
            a.get("answer").show(),
            a.get("by").show(),
            a.get("client").show(),
            a.get("way").show(),
            destination(a),
            a.get("at").show()
        );
    }
    Some(out.trim_end().to_string())
}

/// `host:port`, or the host alone for a DNS question (port 0).
fn destination(q: &Value) -> String {
    match q.get("port") {
        Value::Number(p) if *p > 0 => format!("{}:{p}", q.get("host").show()),
        _ => q.get("host").show(),
    }
}

struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn blank(&mut self) {
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, want: u8) -> bool {
        self.blank();
        let hit = self.s.get(self.at) == Some(&want);
        self.at += usize::from(hit);
        hit
    }

    fn word(&mut self, word: &str, v: Value) -> Option<Value> {
        let hit = self.s.get(self.at..self.at + word.len()) == Some(word.as_bytes());
        self.at += word.len();
        hit.then_some(v)
    }

    /// One value; nesting is bounded (the API's is three deep).
    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > 8 {
            return None;
        }
        self.blank();
        match *self.s.get(self.at)? {
            b'{' => {
                self.at += 1;
                let mut map = Vec::new();
                if self.eat(b'}') {
                    return Some(Value::Object(map));
                }
                loop {
                    self.blank();
                    let Value::Text(key) = self.value(depth + 1)? else { return None };
                    if !self.eat(b':') {
                        return None;
                    }
                    map.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Some(Value::Object(map));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Value::List(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Value::List(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => self.text(),
            b'n' => self.word("null", Value::Null),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            _ => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(|b| b.is_ascii_digit() || *b == b'-') {
                    self.at += 1;
                }
                let n = std::str::from_utf8(self.s.get(start..self.at)?).ok()?.parse().ok()?;
                Some(Value::Number(n))
            }
        }
    }

    fn text(&mut self) -> Option<Value> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        let rest = std::str::from_utf8(self.s.get(self.at..)?).ok()?;
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.at += i + 1;
                    return Some(Value::Text(out));
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                        out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_s_json_is_shown_as_lines() {
        let body = r#"{"questions":[{"id":3,"route":"127.0.0.1:3128","client":"127.0.0.1","way":"http","host":"a.test","port":80,"method":"GET","path":"/x\u003cy","waited_s":4,"clients":1},
            {"id":4,"route":"127.0.0.1:53","client":"::1","way":"dns","host":"b.test","port":0,"method":null,"path":null,"waited_s":0,"clients":0}],
            "recent":[{"id":2,"route":"r","client":"127.0.0.1","way":"connect","host":"c.test","port":443,"answer":"session","by":"page","at":"2026-12-04T21:00:00Z"}],"drafts":"x"}"#;
        assert_eq!(
            lines(body).unwrap(),
            "waiting (answer with: wasiter ask answer ID once|session|forever|deny|deny-forever):\n  #3  4s  127.0.0.1 http a.test:80  GET /x<y  on 127.0.0.1:3128  (1 client)\n  #4  0s  ::1 dns b.test  on 127.0.0.1:53  (0 clients)\nrecent:\n  #2  session by page  127.0.0.1 connect c.test:443  at 2026-12-04T21:00:00Z"
        );
        assert_eq!(lines(r#"{"questions":[],"recent":[],"drafts":""}"#).unwrap(), "nothing is waiting");
        let hostile = r#"{"questions":[{"id":1,"host":"a.test","port":80,"method":"GET","path":"/\u001b[2J\u202ex","clients":1}]}"#;
        assert!(lines(hostile).unwrap().contains("GET /\\u{1b}[2J\\u{202e}x"), "no escape sequence reaches the terminal: {:?}", lines(hostile));
        for bad in ["", "{", r#"{"questions":[1,]}"#, r#"{"a" 1}"#, "[[[[[[[[[[[[1]]]]]]]]]]]]", "\"unterminated"] {
            assert_eq!(lines(bad), None, "{bad:?}");
        }
    }
}
