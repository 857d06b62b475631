//! Admission: new clients. Accept (in batches, pausing when descriptors run
//! out), check the route's allow/deny lists, wait for a PROXY header where the
//! route expects one, then start the connection's upstream connect. The
//! coming front phases (name peeking, CONNECT, DNS waits) belong here.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Proxy, ACCEPT_BATCH, ACCEPT_PAUSE};
use crate::conn::{self, Conn, Reason};
use crate::log::{Level, Record};
use crate::metrics::Stats;
use crate::proxy_header::{self, Received};
use crate::relay::would_block;
use crate::sys::{self, Stream};

/// A client of an `accept-proxy` route whose PROXY header is still arriving.
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) route: usize,
    pub(super) client: Stream,
    pub(super) peer: SocketAddr,
    reader: proxy_header::Reader,
    pub(super) deadline: Instant,
}

impl Proxy {
    /// Step 5: take new clients of `route` until its backlog is empty, the
    /// batch is used up, or the connection limit is reached.
    pub(super) fn accept(&mut self, route: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.accept_paused_until.is_some() {
                return;
            }
            if self.active() >= self.max_conns {
                Record::new(Level::Debug, "limit").num("max_conns", self.max_conns as u64).str("action", "pausing accepts").emit();
                return; // the listeners are left out of the interest until a slot frees
            }
            let Some(r) = self.shared.routes.get_mut(route) else { return };
            let (client, peer) = match r.listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => return,
                // The client gave up before we got to it: nothing to pause for.
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) => {
                    self.pause_accepting(&e, now);
                    return;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            r.stats.connections += 1;
            r.stats.active += 1;
            if r.accept_proxy {
                let reader = proxy_header::Reader::default();
                self.pending.insert(Pending { id, route, client, peer, reader, deadline: now + self.header_timeout });
            } else {
                self.admit(route, id, client, peer, None, now);
            }
        }
    }

    /// A client is here (and has sent its PROXY header, if its route wants
    /// one): check it against the route's lists and start its upstream connect.
    fn admit(&mut self, route: usize, id: u64, client: Stream, peer: SocketAddr, header: Option<Received>, now: Instant) {
        let Some(r) = self.shared.routes.get_mut(route) else { return };
        let (from, to, rest) = match header {
            Some(Received { addrs: Some((from, to)), rest }) => (from, Some(to), rest),
            Some(Received { addrs: None, rest }) => (peer, None, rest),
            None => (peer, None, Vec::new()),
        };
        if !r.acl.permits(from.ip()) {
            close_early(&mut r.stats, &r.name, id, from, None, &Reason::Denied);
            return; // dropping `client` closes it: no upstream ever saw it
        }
        let mut early = match r.send_proxy {
            Some(v) => proxy_header::encode(v, from, to.or_else(|| client.local_addr().ok()).unwrap_or(peer)),
            None => Vec::new(),
        };
        early.extend_from_slice(&rest);
        let Some((mut cx, stats)) = self.shared.context(route, now) else { return };
        match Conn::start(id, route, client, from, &early, &mut cx) {
            Ok(conn) => {
                let id = conn.id();
                let key = self.conns.insert(conn);
                self.busy.add(key, id); // connecting: watched in every pass
            }
            Err((_client, upstream, reason)) => {
                close_early(stats, cx.route, id, from, upstream, &reason);
                // No descriptor for the upstream socket: let the next
                // clients wait in the backlog instead of being dropped too.
                if let Reason::ConnectFailed(e) = &reason {
                    if sys::out_of_descriptors(e) {
                        self.pause_accepting(e, now);
                    }
                }
            }
        }
    }

    /// An accept-proxy client sent something: read at most the rest of its
    /// header; once complete, admit it.
    pub(super) fn on_header(&mut self, key: usize, now: Instant) {
        let Some(p) = self.pending.get_mut(key) else { return };
        let mut buf = [0u8; 512];
        let outcome = loop {
            let want = p.reader.want().min(buf.len());
            let Some(chunk) = buf.get_mut(..want) else { break Err("header buffer".to_string()) };
            match p.client.read(chunk) {
                Ok(0) => break Err("the client closed before its PROXY header ended".to_string()),
                Ok(n) => match p.reader.push(chunk.get(..n).unwrap_or_default()) {
                    Ok(Some(received)) => break Ok(Some(received)),
                    Ok(None) => continue,
                    Err(why) => break Err(why),
                },
                Err(e) if would_block(&e) => break Ok(None),
                Err(e) => break Err(e.to_string()),
            }
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(received)) => {
                let Some(p) = self.pending.try_remove(key) else { return };
                self.admit(p.route, p.id, p.client, p.peer, Some(received), now);
            }
            Err(why) => {
                let Some(p) = self.pending.try_remove(key) else { return };
                if let Some(r) = self.shared.routes.get_mut(p.route) {
                    close_early(&mut r.stats, &r.name, p.id, p.peer, None, &Reason::BadProxyHeader(why));
                }
            }
        }
    }

    /// Stop accepting for `ACCEPT_PAUSE`: the listener stays readable while
    /// the failure lasts (EMFILE, mostly), and the loop must not spin on it.
    fn pause_accepting(&mut self, e: &io::Error, now: Instant) {
        Record::new(Level::Warn, "accept-paused")
            .str("error", e)
            .num("for_ms", ACCEPT_PAUSE.as_millis() as u64)
            .emit();
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
    }
}

/// Close a client that never got as far as a `Conn` (denied, a bad or
/// missing PROXY header, no upstream to try): count it and log it.
pub(super) fn close_early(stats: &mut Stats, route: &str, id: u64, client: SocketAddr, upstream: Option<SocketAddr>, reason: &Reason) {
    stats.closed(reason.kind());
    conn::log_close(id, route, client, upstream, (0, 0), Duration::ZERO, reason);
}

pub(super) fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
