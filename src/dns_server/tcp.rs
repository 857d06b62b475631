//! DNS over TCP (RFC 7766): each message with a two-byte length first.
//! One client connection: queries in (several may be in flight, answered
//! as they are ready, in any order, as the RFC allows), replies out.
//!
//! Every buffer is bounded, also against a client that sends query after
//! query and never reads a reply: a query is taken from what was read only
//! while fewer than `MAX_IN_FLIGHT` wait for their answers *and* the
//! replies not yet written hold at most `MAX_UNSENT` bytes; until then the
//! rest stays in `read` (at most `READ_MAX` bytes) and the socket is not
//! read, so the client's own sends stall. A query longer than `MAX_QUERY`
//! closes the connection. So one client holds at most `READ_MAX` +
//! `MAX_UNSENT` + `MAX_IN_FLIGHT` replies (each under 2 KiB:
//! `answer::MAX_ADDRS` addresses) + `COMPACT`, under 48 KiB.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::relay::would_block;
use crate::sys::Stream;

/// A query is one question (at most 255 bytes of name) and an OPT record.
const MAX_QUERY: usize = 1024;
/// Questions of one connection waiting for their answers at once.
const MAX_IN_FLIGHT: usize = 16;
/// Bytes of replies queued but not written past which no query is taken.
pub const MAX_UNSENT: usize = 16 * 1024;
/// Bytes read but not yet taken as queries, at most.
const READ_MAX: usize = 2 * (MAX_QUERY + 2);
/// Written bytes kept at the front of `out` before it is compacted.
const COMPACT: usize = 4096;

pub struct Client {
    pub stream: Stream,
    pub peer: SocketAddr,
    /// Bytes read and not yet taken as queries.
    read: Vec<u8>,
    /// Replies not yet written (each with its length first), and how much
    /// of them went.
    out: Vec<u8>,
    sent: usize,
    /// Queries taken and not yet answered.
    pub in_flight: usize,
    /// The client sent its FIN: close once everything is answered.
    ended: bool,
    pub deadline: Instant,
}

impl Client {
    pub fn new(stream: Stream, peer: SocketAddr, deadline: Instant) -> Client {
        Client { stream, peer, read: Vec::new(), out: Vec::new(), sent: 0, in_flight: 0, ended: false, deadline }
    }

    /// (read, write) interest now: read only while a query could be taken
    /// and none already read waits.
    pub fn interest(&self) -> (bool, bool) {
        let read = !self.ended && self.has_room() && self.next_len().is_none() && self.read.len() < READ_MAX;
        (read, self.unsent() > 0)
    }

    /// Bytes of replies queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.out.len().saturating_sub(self.sent)
    }

    /// May another query be taken now?
    fn has_room(&self) -> bool {
        self.in_flight < MAX_IN_FLIGHT && self.unsent() <= MAX_UNSENT
    }

    /// The length of the next query, once it is all in `read`.
    fn next_len(&self) -> Option<usize> {
        let [hi, lo, rest @ ..] = self.read.as_slice() else { return None };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        (rest.len() >= len).then_some(len)
    }

    /// Read what came, up to `READ_MAX` bytes held. `Err`: close it (a
    /// read error, or a query announced longer than `MAX_QUERY`).
    pub fn on_readable(&mut self) -> Result<(), ()> {
        let mut buf = [0u8; 2048];
        while self.read.len() < READ_MAX {
            let room = (READ_MAX - self.read.len()).min(buf.len());
            let Some(chunk) = buf.get_mut(..room) else { break };
            match self.stream.read(chunk) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => self.read.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if would_block(&e) => break,
                Err(_) => return Err(()),
            }
        }
        match self.read.as_slice() {
            [hi, lo, ..] if usize::from(u16::from_be_bytes([*hi, *lo])) > MAX_QUERY => Err(()),
            _ => Ok(()),
        }
    }

    /// The next query read, if one is complete and there is room for it
    /// (it then counts as in flight until `answer`). `Err`: close it.
    pub fn take(&mut self) -> Result<Option<Vec<u8>>, ()> {
        if let [hi, lo, ..] = self.read.as_slice() {
            if usize::from(u16::from_be_bytes([*hi, *lo])) > MAX_QUERY {
                return Err(());
            }
        }
        let Some(len) = self.next_len().filter(|_| self.has_room()) else { return Ok(None) };
        let query = self.read.get(2..2 + len).unwrap_or_default().to_vec();
        self.read.drain(..2 + len);
        self.in_flight += 1;
        Ok(Some(query))
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
                Err(e) if would_block(&e) => {
                    // A reader that keeps up only in part must not keep
                    // every reply it read at the front of `out`.
                    if self.sent >= COMPACT {
                        self.out.drain(..self.sent);
                        self.sent = 0;
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Its FIN came and nothing is left to answer or write (a query cut
    /// short by the FIN is never answered).
    pub fn done(&self) -> bool {
        self.ended && self.in_flight == 0 && self.unsent() == 0 && self.next_len().is_none()
    }

    /// Bytes held for it now (read, queued): what the bounds above bound.
    #[cfg(all(test, unix))]
    pub fn held(&self) -> usize {
        self.read.len() + self.out.len()
    }
}

#[cfg(all(test, unix))] // drives real sockets on the Linux host
mod tests {
    use super::*;
    use crate::sys::Listener;
    use std::io::Write;

    /// A client that sends thousands of queries and never reads: the
    /// server side stops taking them once its replies back up, and what it
    /// holds stays under the bound whatever the client sends.
    #[test]
    fn a_client_that_never_reads_is_held_to_its_bound() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, addr) = loop {
            match listener.accept() {
                Ok(pair) => break pair,
                Err(e) if would_block(&e) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        };
        let mut client = Client::new(stream, addr, Instant::now());
        let query = [&[0u8, 20][..], &[0x55; 20]].concat();
        peer.set_nonblocking(true).unwrap();
        let reply = [0xaa; 1500];
        let (mut answered, mut most) = (0usize, 0usize);
        for _ in 0..2000 {
            let _ = peer.write(&query.repeat(50)); // as much as the socket takes; never a read
            if client.interest().0 {
                client.on_readable().unwrap();
            }
            while let Some(q) = client.take().unwrap() {
                assert_eq!(q.len(), 20);
                client.answer(&reply).unwrap();
                answered += 1;
            }
            most = most.max(client.held());
        }
        assert!(client.unsent() > MAX_UNSENT, "the replies backed up ({answered} answered)");
        assert!(!client.interest().0, "and the socket is no longer read");
        let bound = READ_MAX + MAX_UNSENT + MAX_IN_FLIGHT * (reply.len() + 2) + COMPACT;
        assert!(most <= bound, "held {most} bytes, bound {bound}");
        assert!(answered < 2000 * 50, "not every query sent was taken");
    }
}
