//! One query's trip to a nameserver: over UDP (a datagram out, answers read
//! until one has our id), or over TCP after a truncated answer (a
//! length-prefixed message, written and read as the socket allows). A file
//! of its own: `mod.rs` decides what to ask and whom; this is the wire.

use std::io;

use super::message::{self, Answer, Family};
use crate::relay::would_block;
use crate::sys::{Datagram, Stream};

/// The largest answer read (a UDP answer is at most 512 bytes without
/// EDNS; over TCP, at most 64 KiB).
const MAX_ANSWER: usize = 65_535;

/// How a query travels.
pub(super) enum Transport {
    Udp(Datagram),
    /// After a truncated answer: the query again over TCP, length-prefixed.
    Tcp { stream: Stream, out: Vec<u8>, sent: usize, read: Vec<u8> },
}

/// Read datagrams until one answers query `id`; strays are dropped.
pub(super) fn read_udp(sock: &Datagram, id: u16, family: Family) -> io::Result<Option<Answer>> {
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Ok(answer) = message::parse(buf.get(..n).unwrap_or_default(), id, family) {
                    return Ok(Some(answer));
                }
            }
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Move a TCP query on: finish the connect, write, read the length-prefixed answer.
pub(super) fn step_tcp(stream: &Stream, out: &[u8], sent: &mut usize, read: &mut Vec<u8>, id: u16, family: Family) -> io::Result<Option<Answer>> {
    if *sent < out.len() {
        stream.finish_connect()?;
        loop {
            match stream.write(out.get(*sent..).unwrap_or_default()) {
                Ok(n) => {
                    *sent += n;
                    if *sent >= out.len() {
                        break;
                    }
                }
                Err(e) if would_block(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
    let mut buf = [0u8; 4096];
    loop {
        // The answer may be complete before the server's FIN is read (or with it).
        if let Some(answer) = tcp_answer(read, id, family)? {
            return Ok(Some(answer));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed before its answer ended")),
            Ok(n) => read.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        if read.len() > MAX_ANSWER + 2 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an answer over 64 KiB"));
        }
    }
}

/// The length-prefixed answer in `read`, once it is all there.
fn tcp_answer(read: &[u8], id: u16, family: Family) -> io::Result<Option<Answer>> {
    let &[hi, lo, ..] = read else { return Ok(None) };
    let len = u16::from_be_bytes([hi, lo]) as usize;
    match read.get(2..2 + len) {
        Some(msg) => message::parse(msg, id, family).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        None => Ok(None),
    }
}
