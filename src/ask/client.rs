//! `wasiter ask`: the CLI side of the admin API. `list` prints the
//! questions waiting and the recent answers, one line each (`listing.rs`;
//! `--json`: the JSON of `GET /api/questions`, for `jq`); `answer ID
//! ANSWER` gives one. One request over TCP to the
//! running proxy's `--admin` address, with the token read from its file.
//!
//! It speaks through the same `sys` layer as the proxy (a non-blocking
//! connect, waited on with a `Poller`, bounded by `TIMEOUT`), so it runs on
//! every build: natively, and on WasmEdge and wasmtime (which need the token
//! file's folder given with `--dir`).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::json;
use super::Scope;
use crate::relay::would_block;
use crate::sys::{Poller, Stream};

/// The whole exchange, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What `wasiter ask` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    List,
    Answer { id: u64, scope: Scope },
}

/// `wasiter ask ...`, its flags read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub call: Call,
    /// The proxy's `--admin` address.
    pub admin: SocketAddr,
    /// Where the token is (`--admin-token`).
    pub token_file: String,
    /// `list --json`: the API's JSON as it came, for `jq`.
    pub json: bool,
}

/// Run it: what to print on stdout, or the error line for stderr (exit 1).
pub fn run(ask: &Ask) -> Result<String, String> {
    let token = std::fs::read_to_string(&ask.token_file)
        .map_err(|e| format!("--admin-token: cannot read {}: {} (on WasmEdge or wasmtime, pass its folder with --dir)", ask.token_file, crate::sys::describe(&e)))?;
    let token = token.lines().next().unwrap_or_default().trim().to_string();
    let request = match &ask.call {
        Call::List => format!("GET /api/questions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n", ask.admin),
        Call::Answer { id, scope } => {
            let body = format!("{{\"id\":{id},\"answer\":\"{}\",\"by\":\"cli\"}}", scope.name());
            format!(
                "POST /api/answer HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                ask.admin,
                body.len()
            )
        }
    };
    let response = exchange(ask.admin, request.as_bytes(), TIMEOUT).map_err(|e| format!("cannot reach the admin API at {}: {}", ask.admin, crate::sys::describe(&e)))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("{} gave no HTTP answer", ask.admin))?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        let why = json::error_of(body).unwrap_or_else(|| body.trim().to_string());
        return Err(format!("{}: {status}: {why}", ask.admin));
    }
    Ok(match &ask.call {
        Call::List if ask.json => body.trim().to_string(),
        Call::List => super::listing::lines(body).unwrap_or_else(|| body.trim().to_string()),
        Call::Answer { id, scope } => format!("question {id} answered {}", scope.name()),
    })
}

/// Send `request`, read the answer to its end: blocking, with a deadline.
fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let stream = Stream::connect(addr)?;
    let mut poller = Poller::new()?;
    // Wait until the stream can read or write (as asked), or fail at the deadline.
    let mut wait = |read: bool, write: bool| -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
            }
            poller.begin(true);
            poller.add(stream.handle(), 0, read, write);
            poller.wait(left.min(Duration::from_secs(1)))?;
            if let Some(ev) = poller.events().next() {
                if write {
                    stream.connected_by(ev)?;
                }
                return Ok(());
            }
        }
    };
    wait(false, true)?;
    let mut sent = 0;
    while sent < request.len() {
        match stream.write(request.get(sent..).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if would_block(&e) => wait(false, true)?,
            Err(e) => return Err(e),
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => answer.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if would_block(&e) => wait(true, false)?,
            Err(e) => return Err(e),
        }
        if answer.len() > 16 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an answer over 16 MiB"));
        }
    }
}
