//! A connection's ends as the relay sees them: a socket, or a socket
//! through TLS (`End`), the TLS sessions of both sides (`Tls`), and the
//! small helpers every phase shares (why a read failed, a direction's
//! shape, the trace of a hold). Below the connection: it takes nothing
//! from `mod.rs`.

use std::io;

use crate::close::{Reason, Side};
use crate::coalesce::{Shape, Shapes};
use crate::log;
use crate::relay::{Endpoint, Note};
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
pub(super) enum End<'a> {
    Plain(&'a mut Stream),
    Tls(TlsEnd<'a>),
}

impl<'a> End<'a> {
    pub(super) fn of(stream: &'a mut Stream, tls: Option<&'a mut tls::Session>) -> End<'a> {
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

/// A connection's TLS state, per side: the client's on a terminating
/// route, the upstream's on an originating one.
#[derive(Default)]
pub(super) struct Tls {
    pub(super) client: Option<tls::Session>,
    pub(super) upstream: Option<tls::Session>,
    /// Plain bytes rustls decrypted that the relay has not taken yet, per
    /// side (client, upstream): that socket may have nothing left to wake
    /// the loop with, so the connection is due at once (`deadline`).
    pub(super) backlog: (bool, bool),
}

impl Tls {
    pub(super) fn side(&self, side: Side) -> Option<&tls::Session> {
        match side {
            Side::Client => self.client.as_ref(),
            Side::Upstream => self.upstream.as_ref(),
        }
    }

    pub(super) fn side_mut(&mut self, side: Side) -> Option<&mut tls::Session> {
        match side {
            Side::Client => self.client.as_mut(),
            Side::Upstream => self.upstream.as_mut(),
        }
    }

    /// After reading from `side`: whether rustls still holds plain bytes.
    pub(super) fn note_backlog(&mut self, side: Side) {
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
