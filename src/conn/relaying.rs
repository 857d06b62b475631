//! The relaying phase of a connection: the ends a direction reads and
//! writes (a socket, or a socket through TLS), one direction's pump with its
//! FIN and its holds, TLS records flushed as sockets drain, and when both
//! directions are over. A file of its own: `mod.rs` holds the connection's
//! life (start, connect, events, timeouts) and reads better without it.

use std::io;

use crate::dump::dump_bytes;
use super::{Conn, Context, Phase};
use crate::close::{Reason, Side};
use crate::coalesce::{Shape, Shapes};
use crate::log;
use crate::relay::{Direction, Endpoint, Failure, Framing, Note, Pace, State};
use crate::sys::Stream;
use crate::tls::{self, TlsEnd};

impl Endpoint for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Stream::read(self, buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Stream::write(self, buf)
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        Stream::shutdown_write(self)
    }
}

/// One end as the relay sees it: a socket, or a socket through TLS (the
/// client's on a terminating route, the upstream's on an originating one).
enum End<'a> {
    Plain(&'a mut Stream),
    Tls(TlsEnd<'a>),
}

impl<'a> End<'a> {
    fn of(stream: &'a mut Stream, tls: Option<&'a mut rustls::Connection>) -> End<'a> {
        match tls {
            Some(tls) => End::Tls(TlsEnd { stream, tls }),
            None => End::Plain(stream),
        }
    }
}

impl Endpoint for End<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            End::Plain(s) => s.read(buf),
            End::Tls(t) => t.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            End::Plain(s) => s.write(buf),
            End::Tls(t) => t.write(buf),
        }
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            End::Plain(s) => s.shutdown_write(),
            End::Tls(t) => t.shutdown_write(),
        }
    }
    fn end_before_close(&mut self) {
        if let End::Tls(t) = self {
            t.end_before_close();
        }
    }
}

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
        self.tls.as_ref().and_then(|t| t.side(side)).is_some_and(|c| c.wants_write())
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

/// A connection's TLS state, per side: the client's on a terminating
/// route, the upstream's on an originating one.
#[derive(Default)]
pub(super) struct Tls {
    pub(super) client: Option<rustls::Connection>,
    pub(super) upstream: Option<rustls::Connection>,
    /// Plain bytes rustls decrypted that the relay has not taken yet, per
    /// side (client, upstream): that socket may have nothing left to wake
    /// the loop with, so the connection is due at once (`deadline`).
    pub(super) backlog: (bool, bool),
}

impl Tls {
    fn side(&self, side: Side) -> Option<&rustls::Connection> {
        match side {
            Side::Client => self.client.as_ref(),
            Side::Upstream => self.upstream.as_ref(),
        }
    }

    fn side_mut(&mut self, side: Side) -> Option<&mut rustls::Connection> {
        match side {
            Side::Client => self.client.as_mut(),
            Side::Upstream => self.upstream.as_mut(),
        }
    }

    /// After reading from `side`: whether rustls still holds plain bytes.
    fn note_backlog(&mut self, side: Side) {
        let pending = self.side_mut(side).is_some_and(tls::has_plaintext);
        match side {
            Side::Client => self.backlog.0 = pending,
            Side::Upstream => self.backlog.1 = pending,
        }
    }
}

/// Why a read on `side` ended the connection: TLS's own failure (the close
/// line's `tls` or `upstream-tls`, with rustls' words), else the I/O error.
pub(super) fn read_failed(side: Side, e: io::Error) -> Reason {
    match tls::tls_failure(&e) {
        Some(why) => Reason::Tls(side, why),
        None => Reason::Error(side, e),
    }
}

/// The route's shape for the direction whose bytes come from `from`.
pub(super) fn shape_from(shapes: &mut Shapes, from: Side) -> &mut Shape {
    match from {
        Side::Client => &mut shapes.to_upstream,
        Side::Upstream => &mut shapes.to_client,
    }
}

/// `--trace`: a piece held back from the kernel, or released, and why.
pub(super) fn trace_hold(conn: u64, to: Side, note: &Note<'_>) {
    if !log::tracing() {
        return;
    }
    let dir = if to == Side::Upstream { "to_upstream" } else { "to_client" };
    match note {
        Note::Held { bytes, window } => {
            log::trace_line(format_args!("hold(conn={conn}, {dir}, {bytes} bytes)"), format_args!("until the next piece, {}us at most", window.as_micros()));
        }
        Note::Released { bytes, why, held } => {
            log::trace_line(format_args!("release(conn={conn}, {dir}, {bytes} bytes)"), format_args!("{} after {}us", why.name(), held.as_micros()));
        }
        Note::Read(_) => {}
    }
}
