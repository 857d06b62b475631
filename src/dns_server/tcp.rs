//! DNS over TCP (RFC 7766): each message with a two-byte length first.
//! One client connection: queries in (several may be in flight, answered
//! as they are ready, in any order, as the RFC allows), replies out. Every
//! buffer is bounded: a query longer than `MAX_QUERY` closes the
//! connection; past `MAX_IN_FLIGHT` questions it is not read until some are
//! answered.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::relay::would_block;
use crate::sys::Stream;

/// A query is one question (at most 255 bytes of name) and an OPT record.
const MAX_QUERY: usize = 1024;
/// Questions of one connection waiting for their answers at once.
const MAX_IN_FLIGHT: usize = 16;

pub struct Client {
    pub stream: Stream,
    pub peer: SocketAddr,
    /// Bytes of queries not yet complete.
    read: Vec<u8>,
    /// Replies not yet written (each with its length first), and how much
    /// of them went.
    out: Vec<u8>,
    sent: usize,
    pub in_flight: usize,
    /// The client sent its FIN: close once everything is answered.
    ended: bool,
    pub deadline: Instant,
}

/// What reading a client gave.
pub enum Got {
    /// Complete queries, to answer.
    Queries(Vec<Vec<u8>>),
    /// Done with it: close.
    Close,
}

impl Client {
    pub fn new(stream: Stream, peer: SocketAddr, deadline: Instant) -> Client {
        Client { stream, peer, read: Vec::new(), out: Vec::new(), sent: 0, in_flight: 0, ended: false, deadline }
    }

    /// (read, write) interest now.
    pub fn interest(&self) -> (bool, bool) {
        (!self.ended && self.in_flight < MAX_IN_FLIGHT, self.sent < self.out.len())
    }

    /// Read what came, and cut it into queries.
    pub fn on_readable(&mut self) -> Got {
        let mut buf = [0u8; 2048];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => self.read.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if would_block(&e) => break,
                Err(_) => return Got::Close,
            }
            if self.read.len() > MAX_QUERY + 2 {
                break;
            }
        }
        let mut queries = Vec::new();
        while let [hi, lo, rest @ ..] = self.read.as_slice() {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            if len > MAX_QUERY {
                return Got::Close;
            }
            let Some(query) = rest.get(..len) else { break };
            queries.push(query.to_vec());
            self.read.drain(..2 + len);
        }
        if self.read.len() > MAX_QUERY + 2 {
            return Got::Close;
        }
        self.in_flight += queries.len();
        if queries.is_empty() && self.done() {
            return Got::Close;
        }
        Got::Queries(queries)
    }

    /// Queue `reply` (the answer to one of its queries) and write what can go.
    pub fn answer(&mut self, reply: &[u8]) -> io::Result<()> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let len = u16::try_from(reply.len()).map_err(|_| io::Error::other("a reply over 64 KiB"))?;
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(reply);
        self.flush()
    }

    /// Write what is queued. `Ok` with bytes left: wait for writable.
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(rest) = self.out.get(self.sent..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Its FIN came and nothing is left to answer or write.
    pub fn done(&self) -> bool {
        self.ended && self.in_flight == 0 && self.sent >= self.out.len()
    }
}
