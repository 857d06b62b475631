//! What a forward proxy's connection adds to the relay: a CONNECT tunnel's
//! first bytes held until they are checked against its name (`bind.rs`),
//! and a plain request carried as one exchange (`crate::http1`), after
//! which the client goes back to the front for its next request.


use super::bind::{Bind, Verdict};
use crate::dump::dump_bytes;
use super::{Conn, Context, Next, Phase};
use crate::close::{Reason, Side};
use crate::front;
use crate::names::Asked;
use crate::relay::Framing;

impl Conn {
    /// After `Reason::Answered`: the client, and what it sent past the
    /// request (the start of its next), for the front to take again; the
    /// destination's connection, if it may carry another request (see
    /// `proxy::parked`); and the tunnel its requests must stay in, if any.
    pub fn into_next(self) -> Next {
        let clean = self.to_upstream.is_empty() && !self.to_upstream.is_done() && !self.to_client.is_done() && self.write_error.is_none() && !self.queued(Side::Upstream);
        let (client_tls, upstream_tls) = match self.tls {
            Some(t) => (t.client.map(Box::new), t.upstream.map(Box::new)),
            None => (None, None),
        };
        let (leftover, upstream, pinned) = match self.phase {
            Phase::Relaying { http: Some(x), addr, .. } => {
                let reusable = clean && x.upstream_reusable();
                if crate::log::tracing() {
                    let verdict = if reusable { "kept for the next request to it" } else { "closed" };
                    crate::log::trace_line(format_args!("keep(conn={}, {addr})", self.id), format_args!("{verdict}"));
                }
                (x.request.leftover, reusable.then_some((addr, self.upstream, upstream_tls)), x.pinned)
            }
            // A tunnel found to carry HTTP: its first request, unsent, goes
            // back to the front with the client, pinned to the tunnel's
            // destination from here on. Its connection is not kept: it may
            // be a parent's tunnel, which no plain request may reuse.
            Phase::Relaying { bind: Some(b), .. } => {
                let Bind { host, port, read, .. } = *b;
                (read, None, Some((host, port)))
            }
            _ => (Vec::new(), None, None),
        };
        Next { client: (self.client, self.client_addr), leftover, upstream, pinned, client_tls }
    }

    /// The exchange's framing, per direction: whether the request (from
    /// the client) or the answer (from the upstream) has ended.
    pub(super) fn message_ended(&self, from: Side) -> bool {
        match (&self.phase, from) {
            (Phase::Relaying { http: Some(x), .. }, Side::Client) => x.request.done(),
            (Phase::Relaying { http: Some(x), .. }, Side::Upstream) => x.response.done(),
            _ => false,
        }
    }

    /// A tunnel whose first bytes are still to be checked.
    pub(super) fn binding(&self) -> bool {
        matches!(self.phase, Phase::Relaying { bind: Some(_), .. })
    }

    /// What a forward proxy's client asked for (`host:port`), if it did.
    pub fn asked_host(&self) -> Option<&str> {
        match self.asked.as_deref() {
            Some(Asked::Http { host: Some(h) }) => Some(h),
            _ => None,
        }
    }

    /// A tunnel's first bytes: read them, and relay them once they ask for
    /// the tunnel's name; else answer (an alert, a 403) and close.
    pub(super) fn bind_read(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        let Phase::Relaying { bind: slot @ Some(_), .. } = &mut self.phase else { return Ok(()) };
        let Some(bind) = slot.as_deref_mut() else { return Ok(()) };
        let before = bind.read.len();
        let ended = front::read_up_to(&self.client, &mut bind.read, front::PEEK_LIMIT).map_err(|e| Reason::Error(Side::Client, e))?;
        if !ended && !bind.opaque() && front::no_line_end_since(&bind.read, before) {
            return Ok(());
        }
        match bind.verdict(ended || bind.read.len() > front::PEEK_LIMIT) {
            Verdict::Wait => Ok(()),
            Verdict::Refuse(answer, reason) => {
                if !self.to_client.wants_write() {
                    front::tell(&self.client, &answer); // after the 200, not before it
                }
                Err(reason)
            }
            Verdict::Requests => {
                // Handed back to the front once the client has its 200
                // (`exchange_over`); nothing of it went to the destination.
                bind.requests = true;
                self.handing_over()
            }
            Verdict::Pass => {
                let read = std::mem::take(&mut bind.read);
                *slot = None;
                if !read.is_empty() {
                    self.last_active = cx.now;
                    dump_bytes(cx.dump, self.id, Side::Upstream, &mut self.dumped, &read);
                    self.to_upstream.preload(&read, cx.buffers);
                }
                self.pump(Side::Client, cx)
            }
        }
    }

    /// The destination answered 101 to an upgrade the client asked for (a
    /// websocket): from here the connection is a tunnel to it alone, both
    /// ways, and what the client sent past its request goes first.
    pub(super) fn upgraded(&mut self, cx: &mut Context<'_>) {
        let Phase::Relaying { http: slot @ Some(_), .. } = &mut self.phase else { return };
        if slot.as_ref().is_none_or(|x| x.response.reader.status != Some(101)) {
            return;
        }
        let leftover = slot.take().map(|x| x.request.leftover).unwrap_or_default();
        self.to_upstream.preload(&leftover, cx.buffers);
    }

    /// A tunnel whose first bytes are a request head: once the client has
    /// read its 200, the connection's record ends (`reason=answered`) and
    /// the client goes back to the front for that request.
    fn handing_over(&mut self) -> Result<(), Reason> {
        match self.exchange_over() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// A plain request's exchange is over: why the connection ends now (the
    /// client going on to its next request, or closing), if it does.
    pub(super) fn exchange_over(&mut self) -> Option<Reason> {
        if let Phase::Relaying { bind: Some(b), .. } = &self.phase {
            let flushed = self.to_client.is_empty() && !self.queued(Side::Client);
            return (b.requests && flushed && self.write_error.is_none()).then_some(Reason::Answered);
        }
        let Phase::Relaying { http: Some(x), .. } = &self.phase else { return None };
        // A plain request's answer is out: the client goes on with its
        // next request (checked afresh), or the connection ends.
        let flushed = self.to_client.is_empty() && !self.queued(Side::Client);
        if x.response.done() && flushed && self.write_error.is_none() {
            return Some(match (x.goes_on(), x.client_close) {
                (true, _) => Reason::Answered,
                (false, true) => Reason::Closed(Side::Client),
                (false, false) => Reason::Closed(Side::Upstream),
            });
        }
        if self.to_client.is_done() {
            // The destination closed: a close-delimited answer ends
            // here; any other was cut short. The client's connection
            // ends either way (its next request has nowhere to go).
            return Some(self.write_error.take().map_or(Reason::Closed(Side::Upstream), |(side, e)| Reason::Error(side, e)));
        }
        None
    }
}
