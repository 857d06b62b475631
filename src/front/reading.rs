//! Reading a client before it is a connection: up to a bound, never
//! blocking, a head read again only when a line may have ended, and a
//! PROXY header at most to its end.

use std::io;

use super::{client_hello, PEEK_LIMIT};
use crate::proxy_header::{self, Received};
use crate::relay::would_block;
use crate::sys::Stream;

/// Bytes of a plain head came since `before`, text with no line's end
/// among them, and the head is not past its limit: nothing can be complete
/// (or malformed) that was not, so it is not read again. A head sent a byte
/// at a time would otherwise be parsed whole once per byte (quadratic work
/// for one client); this way once per line, and a head has at most 100. A
/// ClientHello has no lines, and a control byte makes anything malformed at
/// once: those are always read.
pub fn no_line_end_since(read: &[u8], before: usize) -> bool {
    let plain = read.first().is_some_and(|&b| !client_hello::looks_like_tls(b));
    let text = |b: &u8| *b == b'\t' || *b == b'\r' || (*b >= b' ' && *b != 0x7f);
    plain && read.len() > before && read.len() <= PEEK_LIMIT && read.get(before..).unwrap_or_default().iter().all(text)
}

/// Read what `stream` has sent onto `read`, until it holds `limit` bytes
/// and one more (to see that it is over) or nothing more is waiting.
/// `Ok(true)`: the peer has closed.
///
/// A short read emptied the socket's receive queue: it stops there, as the
/// relay does, instead of reading again to hear "would block" (a call per
/// request head). Every poller here reports a readable socket for as long
/// as it is (level-triggered), so what comes next, a close included, wakes
/// the loop. Not so through TLS (`Front::read_more`): a session may hold
/// decrypted bytes that no poller can see, so it reads to the end.
pub fn read_up_to(stream: &Stream, read: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    SCRATCH.with_borrow_mut(|chunk| read_into(|buf| stream.read(buf), read, limit, chunk, true))
}

std::thread_local! {
    /// `read_up_to`'s landing space, kept: a fresh one would be zeroed on
    /// every call (4 KiB per request read, more than parsing the request).
    pub(super) static SCRATCH: std::cell::RefCell<[u8; 4096]> = const { std::cell::RefCell::new([0; 4096]) };
}

/// `read_up_to`'s loop, over whatever reads (a socket, or one through TLS).
pub(super) fn read_into(mut from: impl FnMut(&mut [u8]) -> io::Result<usize>, read: &mut Vec<u8>, limit: usize, chunk: &mut [u8; 4096], short_drains: bool) -> io::Result<bool> {
    while read.len() <= limit {
        let room = (limit + 1 - read.len()).min(chunk.len());
        let Some(buf) = chunk.get_mut(..room) else { break };
        match from(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                read.extend_from_slice(buf.get(..n).unwrap_or_default());
                if short_drains && n < room {
                    break;
                }
            }
            Err(e) if would_block(&e) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Read at most the rest of a PROXY header: `Ok(None)` until it is complete.
pub(super) fn read_header(client: &mut Stream, reader: &mut proxy_header::Reader) -> Result<Option<Received>, String> {
    let mut buf = [0u8; 512];
    loop {
        let want = reader.want().min(buf.len());
        let Some(chunk) = buf.get_mut(..want) else { return Err("header buffer".to_string()) };
        match client.read(chunk) {
            Ok(0) => return Err("the client closed before its PROXY header ended".to_string()),
            Ok(n) => {
                if let Some(received) = reader.push(chunk.get(..n).unwrap_or_default())? {
                    return Ok(Some(received));
                }
            }
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::no_line_end_since;

    #[test]
    fn a_head_is_read_again_only_when_a_line_may_have_ended() {
        let head = b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n";
        // A byte at a time: read again at each LF only (and it has three).
        let reads = (1..=head.len()).filter(|&n| !no_line_end_since(&head[..n], n - 1)).count();
        assert_eq!(reads, 3);
        assert!(!no_line_end_since(b"GET", 3), "nothing new: read (a wake-up with bytes already there)");
        assert!(!no_line_end_since(b"SSH\x00", 3), "a control byte: read, to refuse at once");
        assert!(!no_line_end_since(b"\x16\x03\x01\x00", 2), "a ClientHello: always read");
        let big = vec![b'a'; crate::front::PEEK_LIMIT + 1];
        assert!(!no_line_end_since(&big, crate::front::PEEK_LIMIT), "past the limit: read, to refuse it");
    }
}
