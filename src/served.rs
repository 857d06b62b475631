//! One small HTTP exchange that the loop serves beside the relaying: a
//! metrics scrape (`metrics`) or an admin page or API call (`ask::admin`),
//! on the listeners `--metrics` and `--admin` bind (one listener when they
//! name the same address). The request in (head and body, at most
//! `MAX_REQUEST` bytes), the answer out, then closed. It is read and written
//! only when ready, never blocking the loop; one that stalls is dropped at its
//! deadline.
//!
//! Two phases, so that the answer may need the whole proxy: `receive`
//! hands over the request once it is complete, the caller works out the
//! answer, `respond` queues it, and `send` writes it out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::relay::would_block;
use crate::sys::Stream;

/// A request's head and body together, at most.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A peer gets this long to send its request and read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What a listener serves: the metrics pages, the admin pages, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serves {
    pub metrics: bool,
    pub admin: bool,
}

/// One exchange on its way through.
pub struct Scrape {
    stream: Stream,
    /// Who sent it (the admin side logs a refused peer).
    pub peer: SocketAddr,
    /// What the listener it came by serves.
    pub serves: Serves,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    sent: usize,
    pub deadline: Instant,
}

/// What `receive` found.
pub enum Received {
    /// The peer left (or failed) before its request was whole: close it.
    Over,
    /// Not whole yet (or already answered): wait.
    More,
    /// The whole request (or the first `MAX_REQUEST` bytes and more).
    Request(Vec<u8>),
}

impl Scrape {
    pub fn new(stream: Stream, peer: SocketAddr, serves: Serves, now: Instant) -> Scrape {
        Scrape { stream, peer, serves, request: Vec::new(), response: None, sent: 0, deadline: now + TIMEOUT }
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// (read, write): read the request, then write the answer.
    pub fn interest(&self) -> (bool, bool) {
        (self.response.is_none(), self.response.is_some())
    }

    /// Read what has come; the request once it is complete.
    pub fn receive(&mut self) -> Received {
        if self.response.is_some() {
            return Received::More;
        }
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                // A client that half-closes after its request is still answered.
                Ok(0) if complete(&self.request) => break,
                Ok(0) => return Received::Over,
                Ok(n) => self.request.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if would_block(&e) => break,
                Err(_) => return Received::Over,
            }
            if self.request.len() > MAX_REQUEST {
                break;
            }
        }
        if complete(&self.request) {
            Received::Request(std::mem::take(&mut self.request))
        } else {
            Received::More
        }
    }

    /// The answer to write.
    pub fn respond(&mut self, response: Vec<u8>) {
        self.response = Some(response);
    }

    /// Write what the peer takes; `false` when the exchange is over and it
    /// can be closed.
    pub fn send(&mut self) -> bool {
        let Some(response) = &self.response else { return true };
        while self.sent < response.len() {
            match self.stream.write(response.get(self.sent..).unwrap_or_default()) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => return true,
                Err(_) => return false,
            }
        }
        let _ = self.stream.shutdown_write();
        false
    }
}

/// The end of a request's head (after its blank line), if it has come.
pub fn head_end(request: &[u8]) -> Option<usize> {
    let crlf = request.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = request.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether `request` is whole: its head, and the body bytes its
/// `Content-Length` says; or too long to wait for more.
pub fn complete(request: &[u8]) -> bool {
    if request.len() > MAX_REQUEST {
        return true;
    }
    let Some(end) = head_end(request) else { return false };
    let head = request.get(..end).unwrap_or_default();
    // A bad length is answered (400) by whoever reads the head.
    let length = head.split(|b| *b == b'\n').find_map(|line| {
        let (name, value) = line.split_at(line.iter().position(|b| *b == b':')?);
        name.eq_ignore_ascii_case(b"content-length").then(|| std::str::from_utf8(value.get(1..)?).ok()?.trim().parse::<usize>().ok())?
    });
    let want = length.unwrap_or(0);
    // A body that could not fit is refused at once (413), not waited for.
    request.len() - end >= want || end.saturating_add(want) > MAX_REQUEST
}

/// The request line's target (`/metrics`), or empty when it has none.
pub fn target(request: &[u8]) -> &[u8] {
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    line.split(|b| *b == b' ').nth(1).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_whole_with_its_head_and_body() {
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: x\r\n"), "head not over");
        assert!(complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(complete(b"GET / HTTP/1.1\n\n"), "bare LF");
        assert!(!complete(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), "body not over");
        assert!(complete(b"POST /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nabcde"));
        assert!(complete(b"POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n"), "a bad length: answered");
        assert!(complete(&[b'a'; MAX_REQUEST + 1]), "too long: answered");
        assert!(complete(b"POST /a HTTP/1.1\r\nContent-Length: 9000\r\n\r\n"), "a body too long for the bound: answered at once");
        assert_eq!(target(b"GET /metrics?x HTTP/1.1\r\n"), b"/metrics?x");
        assert_eq!(target(b"GET"), b"");
    }
}
