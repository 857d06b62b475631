//! The relaying phase of a connection: one direction's pump with its FIN
//! and its holds, TLS records flushed as sockets drain, and when both
//! directions are over. A file of its own: `mod.rs` holds the connection's
//! life (start, connect, events, timeouts) and reads better without it;
//! the ends it pumps between are `ends.rs`'s.

use super::context::Context;
use super::ends::{read_failed, shape_from, trace_hold, End};
use super::{Conn, Phase};
use crate::close::{Reason, Side};
use crate::dump::dump_bytes;
use crate::relay::{Direction, Failure, Framing, Note, Pace, State};
use crate::tls;

impl Conn {
    /// The direction whose bytes come from `from`.
    pub(super) fn direction(&mut self, from: Side) -> &mut Direction {
        match from {
            Side::Client => &mut self.to_upstream,
            Side::Upstream => &mut self.to_client,
        }
    }

    /// Run the direction whose bytes come from `from`.
    pub(super) fn pump(&mut self, from: Side, cx: &mut Context<'_>) -> Result<(), Reason> {
        if from == Side::Client && self.binding() {
            return self.bind_read(cx);
        }
        // `back` is the other direction: what goes to the side we read from.
        let (client_tls, upstream_tls) = match self.tls.as_deref_mut() {
            Some(t) => (t.client.as_mut(), t.upstream.as_mut()),
            None => (None, None),
        };
        let mut client = End::of(&mut self.client, client_tls);
        let mut upstream = End::of(&mut self.upstream, upstream_tls);
        let (dir, back, src, dst) = match from {
            Side::Client => (&mut self.to_upstream, &mut self.to_client, &mut client, &mut upstream),
            Side::Upstream => (&mut self.to_client, &mut self.to_upstream, &mut upstream, &mut client),
        };
        let framing: Option<&mut dyn Framing> = match (&mut self.phase, from) {
            (Phase::Relaying { http: Some(x), .. }, Side::Client) => Some(&mut x.request),
            (Phase::Relaying { http: Some(x), .. }, Side::Upstream) => Some(&mut x.response),
            _ => None,
        };
        let to = from.other();
        let was_open = dir.state() == State::Open;
        // The other direction is over: this one's FIN closes the connection.
        let last = back.is_done();
        let read_before = dir.read;
        let (dump, id, dumped) = (cx.dump, self.id, &mut self.dumped);
        let mut pace = Pace { now: cx.now, cap: cx.coalesce, route: shape_from(cx.shapes, from) };
        let result = dir.pump(src, dst, cx.buffers, &mut pace, framing, last, |note| match note {
            Note::Read(bytes) => dump_bytes(dump, id, to, dumped, bytes),
            hold => trace_hold(id, to, &hold),
        });
        if dir.read > read_before {
            // This side spoke: it has acknowledged what it was sent, so what
            // goes to it next starts a new burst.
            back.heard_back();
        }
        if let Some(t) = self.tls.as_deref_mut() {
            t.note_backlog(from);
        }
        match result {
            Ok(true) => self.last_active = cx.now,
            Ok(false) => {}
            // A reset, a TLS failure (the peer's alert, or ours) or another
            // read error ends both directions.
            Err(Failure::Read(e)) => return Err(read_failed(from, e)),
            // The destination is gone; the other direction may still finish.
            Err(Failure::Write(e)) => {
                self.write_error.get_or_insert((to, e));
            }
        }
        if was_open && dir.state() != State::Open && self.first_fin.is_none() {
            self.first_fin = Some(from);
        }
        if from == Side::Upstream {
            self.upgraded(cx);
        }
        Ok(())
    }

    /// Decrypted bytes wait in rustls for a direction that can take them.
    pub(super) fn backlogged(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| (t.backlog.0 && self.to_upstream.wants_read()) || (t.backlog.1 && self.to_client.wants_read()))
    }

    /// TLS records (or a closing alert) wait for this side's socket.
    pub(super) fn queued(&self, side: Side) -> bool {
        self.tls.as_ref().and_then(|t| t.side(side)).is_some_and(tls::wants_write)
    }

    /// A socket can take more: send what its TLS has queued (handshake,
    /// records), then the FIN its direction passed on once the closing
    /// alert is out.
    pub(super) fn flush_tls(&mut self, side: Side) -> Result<(), Reason> {
        let (stream, toward) = match side {
            Side::Client => (&self.client, &self.to_client),
            Side::Upstream => (&self.upstream, &self.to_upstream),
        };
        let Some(tls) = self.tls.as_deref_mut().and_then(|t| t.side_mut(side)) else { return Ok(()) };
        match tls::flush(stream, tls) {
            Ok(true) => Ok(()),
            Ok(false) => {
                if toward.is_done() {
                    let _ = stream.shutdown_write();
                }
                Ok(())
            }
            Err(e) => Err(Reason::Error(side, e)),
        }
    }

    pub(super) fn finished(&mut self) -> Result<(), Reason> {
        if let Some(end) = self.exchange_over() {
            return Err(end);
        }
        if !(self.to_upstream.is_done() && self.to_client.is_done()) || self.queued(Side::Client) || self.queued(Side::Upstream) {
            return Ok(());
        }
        Err(match self.write_error.take() {
            Some((side, e)) => Reason::Error(side, e),
            None => Reason::Closed(self.first_fin.unwrap_or(Side::Client)),
        })
    }
}

