//! Log lines on stderr: an RFC 3339 timestamp, then `key=value` pairs.
//!
//! Writes ignore errors on purpose: a closed stderr must not stop the proxy.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Quiet drops per-connection lines; start-up lines and errors stay.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

pub fn line(args: fmt::Arguments<'_>) {
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    let _ = writeln!(std::io::stderr().lock(), "{now} {args}");
}

/// Always printed.
macro_rules! notice {
    ($($arg:tt)*) => { $crate::log::line(format_args!($($arg)*)) };
}

/// Per-connection events: dropped by --quiet.
macro_rules! event {
    ($($arg:tt)*) => { if !$crate::log::quiet() { $crate::log::line(format_args!($($arg)*)) } };
}

pub(crate) use {event, notice};
