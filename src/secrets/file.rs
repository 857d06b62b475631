//! The secrets file, read and checked at start (and by a reload). One
//! entry a line, `#` comments and blank lines:
//!
//! ```text
//! NAME value=VALUE|env:VAR to=PATTERN,... as=bearer|basic|header:NAME [placeholder=P]
//! ```
//!
//! A word starting with `#` starts a comment to the end of its line.
//! Every error is one line naming the file and line. A value is visible
//! ASCII (it goes in a header) of at least `MIN_VALUE` characters (shorter,
//! its bytes would be found, and replaced, all over responses); a
//! placeholder has the value's length, differs from it even without case,
//! and from every other entry's placeholder and value; names are unique;
//! `to=*` is refused (name the hosts a value is for).

use super::placeholder::derive;
use super::{Entry, Place, Secrets};
use crate::names::Pattern;

/// The shortest value taken: see the opening.
pub const MIN_VALUE: usize = 8;

impl Secrets {
    /// Read and parse `path`: the permission check first
    /// (`sys::check_private`), then `parse`.
    pub fn load(path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, String> {
        crate::sys::check_private(path)?;
        let text = std::fs::read(path).map_err(|e| format!("{path}: cannot read it ({})", crate::sys::describe(&e)))?;
        let text = String::from_utf8(text).map_err(|_| format!("{path}: not UTF-8 text"))?;
        Secrets::parse(&text, path, env)
    }

    /// The file's text; `origin` names it in errors; `env` is the proxy's
    /// own environment, for `value=env:VAR`.
    pub fn parse(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| format!("{origin}:{}: {why}", i + 1);
            let entry = entry(line, env).map_err(at)?;
            for other in &entries {
                let clash = if other.name == entry.name {
                    "its NAME is another entry's".to_string()
                } else if other.placeholder.eq_ignore_ascii_case(&entry.placeholder) {
                    format!("its placeholder is {}'s", other.name)
                } else if other.value.eq_ignore_ascii_case(&entry.placeholder) || entry.value.eq_ignore_ascii_case(&other.placeholder) {
                    format!("a placeholder of one is the value of the other ({})", other.name)
                } else {
                    continue;
                };
                return Err(at(format!("{}: {clash} (each entry needs a NAME and placeholder of its own)", entry.name)));
            }
            entries.push(entry);
        }
        Ok(Secrets::new(entries))
    }
}

fn entry(line: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Entry, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let form = "expected NAME value=VALUE|env:VAR to=NAME,... as=bearer|basic|header:NAME [placeholder=P] [clients=NAME,...]";
    if !is_name(name) {
        return Err(format!("{name:?} is no NAME (letters, digits and _, not first a digit): {form}"));
    }
    let (mut value, mut to, mut place, mut placeholder, mut clients) = (None, None, None, None, None);
    // A word starting with # starts a comment to the line's end.
    for word in words.take_while(|w| !w.starts_with('#')) {
        let Some((key, arg)) = word.split_once('=') else {
            return Err(format!("{name}: {word:?} is no KEY=VALUE: {form}"));
        };
        let slot = match key {
            "value" => &mut value,
            "to" => &mut to,
            "as" => &mut place,
            "placeholder" => &mut placeholder,
            "clients" => &mut clients,
            _ => return Err(format!("{name}: unknown option {key}=: {form}")),
        };
        if slot.replace(arg).is_some() {
            return Err(format!("{name}: {key}= given twice"));
        }
    }
    let missing = |key: &str| format!("{name}: no {key}=: {form}");
    let (value, from) = match value.ok_or_else(|| missing("value"))? {
        v if v.starts_with("env:") => {
            let var = v.get(4..).unwrap_or_default();
            let value = env(var).ok_or_else(|| format!("{name}: value=env:{var}, but {var} is not set in the proxy's environment"))?;
            (value, format!(" (env:{var})"))
        }
        v => (v.to_string(), String::new()),
    };
    visible(&value).map_err(|why| format!("{name}: its value{from} {why}"))?;
    if value.len() < MIN_VALUE {
        return Err(format!("{name}: its value{from} has {} characters (at least {MIN_VALUE}: shorter, it would be found all over responses)", value.len()));
    }
    let to = to.ok_or_else(|| missing("to"))?;
    let to = to.split(',').map(|p| pattern(p).map_err(|why| format!("{name}: to={to}: {why}"))).collect::<Result<Vec<_>, _>>()?;
    let place = as_place(place.ok_or_else(|| missing("as"))?).map_err(|why| format!("{name}: {why}"))?;
    let placeholder = match placeholder {
        Some(p) => {
            visible(p).map_err(|why| format!("{name}: its placeholder {why}"))?;
            if p.len() != value.len() {
                return Err(format!("{name}: its placeholder has {} characters, its value {} (they must be as long, so that a response's echo is replaced in place)", p.len(), value.len()));
            }
            if p.eq_ignore_ascii_case(&value) {
                return Err(format!("{name}: its placeholder is its value (it must differ, even without case)"));
            }
            p.as_bytes().to_vec()
        }
        None => derive(name, value.as_bytes()).map_err(|why| format!("{name}: {why}"))?,
    };
    // clients=: the client= names of the routes whose clients it serves
    // (crate::forward::identity); without it, every client's.
    let clients = match clients {
        Some(list) => {
            let mut names = Vec::new();
            for c in list.split(',') {
                crate::forward::identity::check_name(c).map_err(|why| format!("{name}: clients={list}: {why}"))?;
                names.push(c.to_string());
            }
            names
        }
        None => Vec::new(),
    };
    Ok(Entry { name: name.to_string(), value: value.into_bytes(), placeholder, to, place, clients })
}

fn is_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Visible ASCII: what a header value can carry as it is.
fn visible(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    match text.bytes().find(|b| !b.is_ascii_graphic()) {
        Some(b) if b.is_ascii() => Err(format!("holds the byte 0x{b:02x} (visible ASCII only: it goes in a header)")),
        Some(_) => Err("holds a non-ASCII character (visible ASCII only: it goes in a header)".into()),
        None => Ok(()),
    }
}

fn pattern(p: &str) -> Result<Pattern, String> {
    match Pattern::parse(p)? {
        Pattern::Any => Err("* would send the value anywhere the proxy opens: name the hosts it is for".into()),
        p => Ok(p),
    }
}

fn as_place(text: &str) -> Result<Place, String> {
    let token = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    match text {
        "bearer" => Ok(Place::Bearer),
        "basic" => Ok(Place::Basic),
        _ => match text.strip_prefix("header:") {
            Some(h) if ["host", "content-length", "transfer-encoding", "connection"].iter().any(|n| h.eq_ignore_ascii_case(n)) => {
                Err(format!("as=header:{h}: that header frames or routes the request; a credential goes elsewhere"))
            }
            Some(h) if token(h) => Ok(Place::Header(h.to_string())),
            _ => Err(format!("as={text}: expected as=bearer (Authorization: SCHEME VALUE), as=basic (the password of Authorization: Basic) or as=header:NAME")),
        },
    }
}
