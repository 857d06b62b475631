//! Log records on stderr, one per line: text (`ts level event key=value ...`)
//! or JSON lines (`{"ts":..,"level":..,"event":..,"key":value}`).
//!
//! A record is built only when its level is enabled, so a disabled debug or
//! trace line costs one atomic load. Write errors are ignored on purpose: a
//! closed stderr must not stop the proxy.
//!
//! While the loop runs (`hold`), lines wait in a bounded buffer (`out`) and
//! are written with one call per pass (`flush`, before the loop waits), not
//! one per line: a connection's open and close lines were two system calls
//! of the ~20 it costs. Those writes never block: a stderr that nobody reads
//! keeps 1 MiB of lines, drops the rest (counted, and told in one line when
//! the reader catches up), and the proxy goes on serving. Before the loop
//! (the start lines, fatal errors at start) lines are written as they come,
//! blocking. On the way out, `release` writes what is held for up to a
//! second (the panic hook calls it too).

use std::fmt::{self, Display, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

mod out;
pub use out::{dropped_total, pending, Sink, CAPACITY};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);
static TRACE: AtomicBool = AtomicBool::new(false);

pub fn configure(level: Level, format: Format, trace: bool) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    JSON.store(format == Format::Json, Ordering::Relaxed);
    TRACE.store(trace, Ordering::Relaxed);
}

/// How long the way out may wait for stderr to take what is held.
const AT_EXIT: Duration = Duration::from_secs(1);

/// From now on, hold lines and write them through `sink` (the platform's
/// non-blocking write), one call per pass; in trace mode, as each comes.
pub fn hold(sink: Sink) {
    out::hold(sink, tracing());
}

/// Write the held lines, as far as stderr takes them now; once all are out
/// after some were dropped, say how many.
pub fn flush() {
    if let Some(lines) = out::flush() {
        Record { on: true, ..Record::new(Level::Warn, "log-dropped") }
            .num("lines", lines)
            .str("why", format_args!("stderr was not read: lines beyond the {} MiB waiting were dropped", CAPACITY >> 20))
            .emit();
        out::flush();
    }
}

/// Write what is held, waiting for stderr at most `AT_EXIT`, and stop
/// holding. Called by the panic hook too, so it must not panic itself: if
/// the panic came while a line was being added, the buffer is left as it is.
pub fn release() {
    let until = Instant::now() + AT_EXIT;
    loop {
        flush();
        let left = until.saturating_duration_since(Instant::now());
        if !out::pending() || left.is_zero() {
            break;
        }
        out::wait(left.min(Duration::from_millis(100)));
    }
    out::stop();
}

/// One finished line: held, or written now.
fn put(line: &str) {
    if !out::put(line.as_bytes()) {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Trace mode: every socket call and poll wake-up (see `sys`).
pub fn tracing() -> bool {
    TRACE.load(Ordering::Relaxed)
}

/// Turn trace mode on or off (for a stretch of calls traced as one line,
/// as the descriptor probe's); says whether it was on.
pub fn set_tracing(on: bool) -> bool {
    TRACE.swap(on, Ordering::Relaxed)
}

enum Value {
    Num(u64),
    Text(String),
    /// Already escaped (the traffic dump): quoted as it is in text lines.
    Escaped(String),
}

/// One log line under construction. Does nothing if its level is off.
pub struct Record {
    on: bool,
    level: Level,
    event: &'static str,
    fields: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn new(level: Level, event: &'static str) -> Record {
        Record { on: enabled(level), level, event, fields: Vec::new() }
    }

    /// Printed whatever the level (the start line: where we listen).
    pub fn always(event: &'static str) -> Record {
        Record { on: true, ..Record::new(Level::Info, event) }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    pub fn num(mut self, key: &'static str, v: u64) -> Record {
        if self.on {
            self.fields.push((key, Value::Num(v)));
        }
        self
    }

    pub fn str(mut self, key: &'static str, v: impl Display) -> Record {
        if self.on {
            self.fields.push((key, Value::Text(v.to_string())));
        }
        self
    }

    /// Text that is already escaped (only printable ASCII, `\"` for quotes).
    pub fn escaped(mut self, key: &'static str, v: impl Display) -> Record {
        if self.on {
            self.fields.push((key, Value::Escaped(v.to_string())));
        }
        self
    }

    pub fn emit(self) {
        if !self.on {
            return;
        }
        let ts = humantime::format_rfc3339_millis(SystemTime::now());
        let line = if JSON.load(Ordering::Relaxed) { self.json(ts) } else { self.text(ts) };
        put(&redacted(line));
    }

    fn text(&self, ts: impl Display) -> String {
        let mut out = format!("{ts} {} {}", self.level.name(), self.event);
        for (k, v) in &self.fields {
            match v {
                Value::Num(n) => {
                    let _ = write!(out, " {k}={n}");
                }
                Value::Text(s) if !s.is_empty() && !s.contains([' ', '"', '=', '\\']) && !s.contains(char::is_control) => {
                    let _ = write!(out, " {k}={s}");
                }
                Value::Text(s) => {
                    let _ = write!(out, " {k}=\"{}\"", s.escape_debug());
                }
                Value::Escaped(s) => {
                    let _ = write!(out, " {k}=\"{s}\"");
                }
            }
        }
        out.push('\n');
        out
    }

    fn json(&self, ts: impl Display) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"ts\":");
        json_string(&mut out, &ts.to_string());
        out.push_str(",\"level\":");
        json_string(&mut out, self.level.name());
        out.push_str(",\"event\":");
        json_string(&mut out, self.event);
        for (k, v) in &self.fields {
            out.push(',');
            json_string(&mut out, k);
            out.push(':');
            match v {
                Value::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Text(s) | Value::Escaped(s) => json_string(&mut out, s),
            }
        }
        out.push_str("}\n");
        out
    }
}

/// A JSON string literal (RFC 8259: quote, backslash and control characters escaped).
fn json_string(out: &mut String, s: &str) {
    json_escaped(out, s, |_| false);
}

/// A JSON string literal, with the characters `also` picks written as
/// `\uXXXX` too (the admin API's: never markup wherever the text lands).
pub fn json_escaped(out: &mut String, s: &str, also: impl Fn(char) -> bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || also(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

std::thread_local! {
    /// Texts no line may carry (a secret's value, as text and as the hex
    /// dump writes it), each with what is written instead.
    static REDACT: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// From now on, every line has each `(text, instead)` pair's text replaced
/// (`crate::secrets`: the last guard, whatever a line was made of).
pub fn redact(pairs: Vec<(String, String)>) {
    REDACT.with(|r| *r.borrow_mut() = pairs);
}

fn redacted(line: String) -> String {
    REDACT.with(|r| {
        let pairs = r.borrow();
        let mut line = line;
        for (text, instead) in pairs.iter().filter(|(t, _)| !t.is_empty()) {
            if line.contains(text.as_str()) {
                line = line.replace(text.as_str(), instead);
            }
        }
        line
    })
}

std::thread_local! {
    /// What the traced calls are part of, when it is not the proxy's work.
    static DURING: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// From now on (until `None`), trace lines end `during=WHAT`: the Nagle
/// probe's calls at start are told apart from the proxy's own.
pub fn trace_during(what: Option<&'static str>) {
    DURING.with(|d| d.set(what));
}

/// A trace line: `trace call="sock_recv(fd=5, 65536)" result=512`.
pub fn trace_line(call: fmt::Arguments<'_>, result: fmt::Arguments<'_>) {
    let line = Record::always("trace").str("call", call).str("result", result);
    match DURING.with(std::cell::Cell::get) {
        Some(what) => line.str("during", what).emit(),
        None => line.emit(),
    }
}

/// How a traced call ended: its value, EAGAIN, or the error. (Generic over
/// the error so that `r.as_ref()` can be shown without taking `r`.)
pub fn outcome<T: fmt::Debug, E: std::borrow::Borrow<std::io::Error>>(r: &Result<T, E>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) if e.borrow().kind() == std::io::ErrorKind::WouldBlock => "EAGAIN".to_string(),
        Err(e) => format!("error: {}", e.borrow()),
    }
}

/// Trace a host call from `sys` when trace mode is on, and hand its result
/// on; free otherwise: `trace!(sock.recv(buf), "sock_recv(fd={}, {})", fd, len)`.
macro_rules! trace {
    ($result:expr, $($call:tt)*) => {{
        let result = $result;
        if $crate::log::tracing() {
            $crate::log::trace_line(format_args!($($call)*), format_args!("{}", $crate::log::outcome(&result)));
        }
        result
    }};
}
pub(crate) use trace;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_quotes_only_what_needs_it() {
        let r = Record { on: true, level: Level::Info, event: "close", fields: vec![] }
            .num("conn", 7)
            .str("client", "127.0.0.1:5")
            .str("error", "Connection reset by peer (os error 104)")
            .str("odd", "a\"b\\c\n");
        assert_eq!(
            r.text("T"),
            "T info close conn=7 client=127.0.0.1:5 error=\"Connection reset by peer (os error 104)\" odd=\"a\\\"b\\\\c\\n\"\n"
        );
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_control_characters() {
        let r = Record { on: true, level: Level::Warn, event: "x", fields: vec![] }.num("n", 1).str("s", "q\"b\\\u{1}\n");
        assert_eq!(r.json("T"), "{\"ts\":\"T\",\"level\":\"warn\",\"event\":\"x\",\"n\":1,\"s\":\"q\\\"b\\\\\\u0001\\n\"}\n");
    }

    #[test]
    fn disabled_records_collect_nothing() {
        let r = Record { on: false, level: Level::Debug, event: "x", fields: vec![] }.num("n", 1).str("s", "v");
        assert!(r.fields.is_empty());
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error < Level::Debug);
    }
}
