//! A connection's steps from connected to relaying: its upstream
//! accepted the connect (a tunnel through a parent proxy asks the parent
//! first, `chain.rs`, and reads its answer), the client told it is open,
//! and relaying begins; or the next upstream is tried; or a forward
//! proxy's client is refused in its protocol. The connection's methods,
//! above it: `mod.rs` takes nothing from here.

use std::io;
use std::net::SocketAddr;

use super::chain::{Chain, MAX_ANSWER};
use super::context::Context;
use super::failover::{log_attempt_failed, Ends, Failover};
use super::{Conn, Phase};
use crate::close::{Reason, Side};
use crate::front::{self, Speaks};
use crate::log::Level;
use crate::tls;

impl Conn {
    /// The upstream accepted the connect: a tunnel through a parent proxy
    /// asks it first (`chain.rs`); anything else starts relaying.
    pub(super) fn connected(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        let addr = self.upstream_addr();
        let (open, kept) = match &mut self.phase {
            Phase::Connecting(Failover { dest: Some(d), .. }) => (d.open.take(), d.kept_tls.take()),
            _ => (None, None),
        };
        if let Some(kept) = kept {
            // A kept connection of an opened tunnel's: its TLS goes on.
            self.tls.get_or_insert_with(Box::default).upstream = Some(*kept);
        } else if let Some(name) = open {
            // An opened tunnel's request: TLS of our own, for its name,
            // verified against the origin's roots (`tls::Opener`).
            let opener = cx.opener.ok_or_else(|| Reason::Tls(Side::Upstream, "no --ca: nothing opens TLS here".into()))?;
            let tls = opener.connect(&name).map_err(|e| Reason::Error(Side::Upstream, e))?;
            self.tls.get_or_insert_with(Box::default).upstream = Some(tls);
            self.flush_tls(Side::Upstream)?;
        } else if let Some(origin) = cx.upstream_tls {
            // Our ClientHello goes first; the client's bytes follow once
            // the handshake is through (rustls holds them until then).
            let tls = tls::connect(origin).map_err(|e| Reason::Error(Side::Upstream, e))?;
            self.tls.get_or_insert_with(Box::default).upstream = Some(tls);
            self.flush_tls(Side::Upstream)?;
        }
        let (bind, http, speaks, chain) = match &mut self.phase {
            Phase::Connecting(Failover { dest: Some(d), .. }) => (d.bind.take(), d.http.take(), d.speaks, d.chain.take()),
            _ => (None, None, Speaks::Http, None),
        };
        match chain {
            Some((parent, request)) => self.ask_parent(Chain::new(addr, parent, bind, speaks, cx.now + cx.connect_timeout), &request),
            None => self.relay_from(addr, (bind, http, speaks), &[], cx),
        }
    }

    /// Started on a connection kept from an earlier request (`Failover`
    /// took it): connected already, so relaying begins at once.
    pub fn reused(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        match self.phase {
            Phase::Connecting(_) => self.connected(cx),
            _ => Ok(()),
        }
    }

    /// Connected (to the destination, or through a parent to it): relay. A
    /// tunnel's client hears first that it is open (200, or SOCKS5's reply
    /// with the address we connected from), then `early`, what the
    /// destination already sent through the parent.
    pub(super) fn relay_from(&mut self, addr: SocketAddr, (bind, http, speaks): Ends, early: &[u8], cx: &mut Context<'_>) -> Result<(), Reason> {
        let tunnel = bind.is_some();
        self.phase = Phase::Relaying { addr, bind, http };
        self.last_active = cx.now;
        self.who(cx.route, cx.backend).record(Level::Info, "open").str("upstream", crate::sys::show(addr)).emit();
        if tunnel {
            let opened = speaks.opened(self.upstream.local_addr().ok());
            self.to_client.preload(&opened, cx.buffers);
            self.to_client.preload(early, cx.buffers);
            self.pump(Side::Upstream, cx)?;
        }
        // A client usually speaks first (an HTTP request is already waiting),
        // and a PROXY header is already buffered.
        self.pump(Side::Client, cx)?;
        self.finished()
    }

    /// Closing for `reason` before any upstream connected: a forward
    /// proxy's client is owed an answer in its protocol (HTTP 502, or 504
    /// for a timeout; SOCKS5's reply code).
    /// Also a plain request whose destination failed before any byte of
    /// an answer came back (its TLS refused, a reset): a 502 that says why.
    pub fn refuse(&mut self, reason: &Reason) {
        let answer = match &self.phase {
            Phase::Connecting(Failover { dest: Some(d), .. }) => d.speaks.refusal(reason),
            Phase::Chaining(chain) => chain.speaks.refusal(reason),
            Phase::Relaying { http: Some(_), .. } if self.to_client.bytes == 0 && self.to_client.is_empty() && matches!(reason, Reason::Tls(Side::Upstream, _) | Reason::Error(Side::Upstream, _)) => Speaks::Http.refusal(reason),
            _ => return,
        };
        front::tell_through(&self.client, self.tls.as_deref_mut().and_then(|t| t.client.as_mut()), &answer);
    }

    /// Give up on the current upstream and try the next one the pool offers.
    pub(super) fn next_upstream(&mut self, last: io::Error, cx: &mut Context<'_>) -> Result<(), Reason> {
        let Phase::Connecting(f) = &mut self.phase else { return Ok(()) };
        log_attempt_failed(self.id, f.addr, &last);
        match f.next(self.id, Some(last), cx) {
            Ok(upstream) => {
                self.upstream = upstream;
                Ok(())
            }
            Err((addr, reason)) => {
                if let Some(addr) = addr {
                    f.addr = addr; // the close line names the last one tried
                }
                Err(reason)
            }
        }
    }

    /// Connected to the parent: send it `request` (a CONNECT: a few hundred
    /// bytes into an empty socket buffer, so a short write is a fault) and
    /// wait for its answer.
    pub(super) fn ask_parent(&mut self, chain: Chain, request: &[u8]) -> Result<(), Reason> {
        match self.upstream.write(request) {
            Ok(n) if n == request.len() => {}
            Ok(_) => return Err(Reason::Error(Side::Upstream, io::Error::new(io::ErrorKind::WriteZero, "a short write of the CONNECT to the parent"))),
            Err(e) => return Err(Reason::Error(Side::Upstream, e)),
        }
        self.phase = Phase::Chaining(Box::new(chain));
        Ok(())
    }

    /// The parent sent something: once its answer's head is complete, a
    /// 2xx opens the tunnel and anything else refuses the client.
    pub(super) fn parent_answered(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        let Phase::Chaining(chain) = &mut self.phase else { return Ok(()) };
        let ended = front::read_up_to(&self.upstream, &mut chain.answer, MAX_ANSWER).map_err(|e| Reason::Error(Side::Upstream, e))?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        let parent = chain.parent.as_str();
        let len = match head.parse(&chain.answer) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if ended => return Err(Reason::Parent(None, format!("the parent {parent} closed before it answered the CONNECT"))),
            Ok(httparse::Status::Partial) if chain.answer.len() > MAX_ANSWER => return Err(Reason::Parent(None, format!("the parent {parent} answered the CONNECT with a head over {MAX_ANSWER} bytes"))),
            Ok(httparse::Status::Partial) => return Ok(()),
            Err(e) => return Err(Reason::Parent(None, format!("the parent {parent} answered the CONNECT with no HTTP answer ({e})"))),
        };
        let code = head.code.unwrap_or(0);
        if !(200..300).contains(&code) {
            let text = head.reason.unwrap_or("").escape_debug().to_string();
            return Err(Reason::Parent(Some(code), format!("the parent {parent} answered the CONNECT with {code} {text}")));
        }
        let early = chain.answer.split_off(len);
        let (addr, bind, speaks) = (chain.addr, chain.bind.take(), chain.speaks);
        self.relay_from(addr, (bind, None, speaks), &early, cx)
    }
}
