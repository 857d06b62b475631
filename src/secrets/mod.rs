//! Keys the sandbox never holds (`--secrets FILE`): the sandbox gets a
//! placeholder shaped like the credential, and the proxy swaps the real
//! value in on its way out, only over TLS the proxy opened and only to the
//! names the entry lists. Pure: no sockets; the only I/O is reading the file.
//!
//! - `file.rs`: the file, one entry a line:
//!   `NAME value=VALUE|env:VAR to=PATTERN,... as=bearer|basic|header:NAME [placeholder=P]`,
//!   refused at start (one line naming the file and line) when anything is off.
//! - `placeholder.rs`: the derived placeholder (the value's own prefix such as
//!   `ghp_`, then characters of the value's classes drawn from SHA-256), and
//!   the base64 of `as=basic`.
//! - `inject.rs`: a request head on its way out. Every placeholder is looked
//!   for in the whole head (request line and every header, without case, and
//!   inside any `Basic` credential decoded): one that may not go where the
//!   head goes (another name, or not over TLS the proxy opened) is a `Leak`,
//!   refused. One that may go is swapped for the value in its `as=` place
//!   only; in another place of a head to its own name it passes unchanged
//!   (it is worth nothing there), as does a credential that is no placeholder.
//!   `scan` is the same look at what is no request (a CONNECT head, a name).
//! - `redact.rs`: a response's bytes, every value (and the base64 of a
//!   `Basic` credential as sent) replaced in place by its placeholder, of the
//!   same length, so that no framing changes; across reads too (see there).
//!   And `redact_text`, the last guard of a log line.

use std::sync::Arc;

use crate::names::Pattern;

mod file;
mod inject;
pub use inject::uncompressed;
mod placeholder;
mod redact;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inject;

/// The entries of one secrets file.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    entries: Vec<Entry>,
    /// Their (value, placeholder) pairs, shared by every redactor.
    pairs: Arc<Vec<Pair>>,
}

/// Where a value goes in a request (`as=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The credential of an `Authorization` header, any scheme (`Bearer P`, `token P`).
    Bearer,
    /// The password of `Authorization: Basic` (base64 of `USER:PASSWORD`).
    Basic,
    /// The whole value of this header (as written in the file).
    Header(String),
}

/// One line of the file.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The environment variable the sandbox gets.
    pub name: String,
    pub value: Vec<u8>,
    /// Of the value's length, and other than it.
    pub placeholder: Vec<u8>,
    /// The names the value may go to.
    pub to: Vec<Pattern>,
    pub place: Place,
    /// `clients=NAME,...`: only these clients' requests get the value
    /// (their routes' `client=`); empty: every client's.
    pub clients: Vec<String>,
}

/// A placeholder on its way where it may not go. `why` is one line, and
/// never holds a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// The entry's NAME.
    pub entry: String,
    pub why: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// A request head with values swapped in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub head: Vec<u8>,
    /// (real bytes as sent, the placeholder bytes the client sent), of the
    /// same length: what a response may echo besides the values themselves
    /// (the base64 of `USER:VALUE` for `as=basic`). For `Secrets::redactor`.
    pub echoes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What the redactor replaces by what.
#[derive(Clone, Debug)]
struct Pair {
    value: Vec<u8>,
    placeholder: Vec<u8>,
    /// The length of their common prefix.
    common: usize,
}

impl Pair {
    /// `None` for what cannot be replaced in place (empty, lengths apart, or the same).
    fn new(value: Vec<u8>, placeholder: Vec<u8>) -> Option<Pair> {
        let common = value.iter().zip(&placeholder).take_while(|(a, b)| a == b).count();
        (!value.is_empty() && value.len() == placeholder.len() && common < value.len()).then_some(Pair { value, placeholder, common })
    }
}

/// One exchange's response redactor (`Secrets::redactor`, `redact.rs`).
#[derive(Clone, Debug)]
pub struct Redactor {
    /// The entries' pairs, then this exchange's echoes.
    shared: Arc<Vec<Pair>>,
    echoes: Vec<Pair>,
    /// The last bytes read (as read), one fewer than the longest value.
    carry: Vec<u8>,
    longest: usize,
    /// How many bytes came before this read.
    pos: u64,
    /// Where the last match replaced ends: the next may not start before.
    free: u64,
}

impl Secrets {
    fn new(entries: Vec<Entry>) -> Secrets {
        let pairs = entries.iter().filter_map(|e| Pair::new(e.value.clone(), e.placeholder.clone())).collect();
        Secrets { entries, pairs: Arc::new(pairs) }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// (NAME, placeholder) for `--placeholders`.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        self.entries.iter().map(|e| (e.name.clone(), String::from_utf8_lossy(&e.placeholder).into_owned())).collect()
    }
}

impl Entry {
    /// May this entry's value go to `host`?
    pub fn goes_to(&self, host: &str) -> bool {
        self.to.iter().any(|p| p.matches(host))
    }

    /// Its value may go out for a client of this name (`client=`; `None`
    /// for a route with none).
    pub fn serves(&self, client: Option<&str>) -> bool {
        self.clients.is_empty() || client.is_some_and(|c| self.clients.iter().any(|n| n == c))
    }

    /// Its names as written, for a message: `api.github.com, *.github.com`.
    pub fn names(&self) -> String {
        self.to.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}
