//! The traffic dump (`--dump`): the bytes relayed, as socat -v/-x shows them.

use std::fmt::Write as _;

use crate::close::Side;
use crate::settings::{Dump, DumpMode};
use crate::log::{Level, Record};
use crate::names::Asked;

/// The bytes the front read before the connection began (a peeked
/// ClientHello or request head, bytes past a PROXY header): one line saying
/// how many and what they asked for, then the bytes as any others.
pub fn dump_peeked(dump: Dump, conn: u64, asked: Option<&Asked>, dumped: &mut usize, bytes: &[u8]) {
    if dump.mode == DumpMode::Off || bytes.is_empty() {
        return;
    }
    let mut r = Record::new(Level::Info, "dump").num("conn", conn).str("dir", "to_upstream").num("peeked", bytes.len() as u64);
    for (k, v) in asked.map(Asked::fields).unwrap_or_default() {
        r = r.str(k, v);
    }
    r.emit();
    dump_bytes(dump, conn, Side::Upstream, dumped, bytes);
}

/// Bytes as the hex dump writes them: `67 68 70 5f`. Also the form the log
/// redacts a secret's value in (`proxy::Keys::redactions`), so the two agree.
pub fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(hex, "{sep}{b:02x}");
    }
    hex
}

/// The traffic dump (`--dump`): one line per chunk read, as text with C-style
/// escapes or as hex, until the connection's limit; then one `truncated` line.
pub fn dump_bytes(dump: Dump, conn: u64, to: Side, dumped: &mut usize, bytes: &[u8]) {
    if dump.mode == DumpMode::Off || *dumped > dump.limit {
        return;
    }
    let take = bytes.len().min(dump.limit - *dumped);
    let dir = if to == Side::Upstream { "to_upstream" } else { "to_client" };
    if take > 0 {
        let shown = bytes.get(..take).unwrap_or(bytes);
        let r = Record::new(Level::Info, "dump").num("conn", conn).str("dir", dir).num("len", take as u64);
        if r.is_on() {
            match dump.mode {
                DumpMode::Hex => r.str("hex", hex(shown)).emit(),
                _ => r.escaped("data", shown.escape_ascii()).emit(),
            }
        }
    }
    *dumped += take;
    if take < bytes.len() {
        Record::new(Level::Info, "dump").num("conn", conn).str("dir", dir).str("truncated", format_args!("limit {} bytes reached", dump.limit)).emit();
        *dumped = dump.limit + 1; // say it once
    }
}
