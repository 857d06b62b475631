//! A forward route's idle connections to destinations, kept after an answer
//! for the next plain request to the same host and port (from any client):
//! what spares a connect per request, as squid and HAProxy keep theirs.
//!
//! A connection is kept only when its answer ended by its framing, neither
//! side asked to close, and nothing came after it. Bounded: `MAX` in all,
//! `PER_HOST` per destination, each for `IDLE` at most; the oldest goes
//! first (`take` and `park` scan them: a few hundred at most). One that
//! the server closed while it waited is found out when it is taken (a read
//! that does not say "would block") and dropped: the request dials anew.
//! Each is used again only for the name it was opened for, and only if its
//! address is still among the name's checked ones.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::conn::Kept;
use crate::relay::would_block;
use crate::sys::Stream;
use crate::tls;

/// Enough for a busy destination's clients each to find one: with 8 per
/// destination, 50 kept-alive clients of one host dialled it anew for 42
/// of every 50 requests (a connect, its handshake and a TIME_WAIT each:
/// 31 µs of the native build's time per request, against 13 with these).
/// Each costs a descriptor and about 100 bytes here, and the server's
/// socket there; squid and HAProxy keep theirs without a count.
pub const MAX: usize = 256;
pub const PER_HOST: usize = 128;
/// Under the 5 s that Node.js and Apache keep an idle connection by
/// default: a server's close and our next request crossing on the wire
/// (which the check at `take` cannot see) then needs a server that keeps
/// connections for less.
pub const IDLE: Duration = Duration::from_secs(4);

struct Entry {
    /// `host:port` as the client asked for it.
    host: String,
    addr: SocketAddr,
    stream: Stream,
    /// Its TLS, for an opened tunnel's requests (kept under `tls:HOST:PORT`,
    /// so that no plain request is sent on it).
    tls: Option<Box<tls::Session>>,
    since: Instant,
}

#[derive(Default)]
pub struct Parked {
    entries: Vec<Entry>,
}

impl Parked {
    /// Keep `stream` (to `addr`, opened for `host`) for the next request.
    pub fn park(&mut self, host: &str, (addr, stream, tls): Kept, now: Instant) {
        self.expire(now);
        if self.entries.iter().filter(|e| e.host == host).count() >= PER_HOST {
            if let Some(oldest) = self.entries.iter().position(|e| e.host == host) {
                self.entries.remove(oldest);
            }
        }
        if self.entries.len() >= MAX {
            self.entries.remove(0);
        }
        self.entries.push(Entry { host: host.to_string(), addr, stream, tls, since: now });
    }

    /// A kept connection to `host`, at one of `addrs`, that is still open.
    pub fn take(&mut self, host: &str, addrs: &[SocketAddr], now: Instant) -> Option<Kept> {
        self.expire(now);
        while let Some(i) = self.entries.iter().rposition(|e| e.host == host && addrs.contains(&e.addr)) {
            let mut e = self.entries.remove(i);
            let open = match e.tls.as_deref_mut() {
                Some(tls) => tls::quiet_and_open(&e.stream, tls),
                None => {
                    let mut probe = [0u8; 1];
                    matches!(e.stream.read(&mut probe), Err(err) if would_block(&err))
                }
            };
            if open {
                return Some((e.addr, e.stream, e.tls));
            } // else closed, reset or talking out of turn: dropped
        }
        None
    }

    /// Drop those kept longer than `IDLE`: the oldest, first in the list
    /// (each is added at the end, at its time), so a look at the first
    /// says when nothing is due (called per request and per pass).
    pub fn expire(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(IDLE) else { return };
        let stale = self.entries.iter().take_while(|e| e.since <= cutoff).count();
        self.entries.drain(..stale);
    }
}
