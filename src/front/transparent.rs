//! A transparent forward route (`transparent=PORT`): its clients do not
//! know it is there. The kernel redirected their connections to it
//! (nftables or iptables `REDIRECT` of outgoing TCP 443 and 80), so the
//! destination is learnt from what they send the server they think they
//! reach: the TLS server name of a ClientHello, or the `Host` of an HTTP
//! request, on the port the listener stands for (WASI has no
//! `SO_ORIGINAL_DST`: one listener per original port).
//!
//! From there it is the forward proxy's client: the same policy (`decide`),
//! resolver and refusals. A TLS connection is a tunnel bound to its server
//! name, its ClientHello the first bytes the destination gets; a plain
//! request is read as `GET http://HOST:PORT/path` (`absolute_from_host`),
//! so every request on a kept-alive connection is checked on its own.
//!
//! The address the client dialled is not used, natively either: the name
//! decides, and the connection goes to that name's checked addresses. A
//! program that dials an address with an allowed name in its ClientHello
//! reaches the allowed name, not the address.

use super::proxy_request::absolute_from_host;
use super::target::Target;
use super::{client_hello, Front, Rules, Speaks, Step, PEEK_LIMIT};
use crate::close::{Reason, Side};
use crate::dns::Resolver;
use crate::names::{destination_host, normalize};
use std::time::Instant;

/// What the transparent front makes of the bytes so far.
pub(super) enum First {
    /// Decided: wait, refuse or go on (a TLS tunnel).
    Step(Step),
    /// A plain request, now in absolute form in the read buffer: read it as
    /// a forward proxy's request.
    Request,
}

impl Front {
    /// A client of a transparent listener standing for `port`.
    pub(super) fn transparent(&mut self, port: u16, ended: bool, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> First {
        let Some(&first) = self.read.first() else {
            return First::Step(if ended { self.close(Reason::Closed(Side::Client)) } else { Step::Wait });
        };
        if !client_hello::looks_like_tls(first) {
            return match absolute_from_host(&self.read, port) {
                Ok(Some(request)) => {
                    self.read = request;
                    self.absolute = true;
                    First::Request
                }
                Ok(None) if ended || self.read.len() > PEEK_LIMIT => First::Step(self.answer(Reason::BadRequest(format!("no complete request head in {} bytes", self.read.len())))),
                Ok(None) => First::Step(Step::Wait),
                Err(failure) => First::Step(self.answer(Reason::BadRequest(failure.why()))),
            };
        }
        // TLS: refusals are alerts from here on.
        self.speaks = Speaks::Tls;
        let hello = match client_hello::parse(&self.read) {
            Ok(Some(hello)) => hello,
            Ok(None) if ended || self.read.len() > PEEK_LIMIT => {
                let why = format!("the ClientHello did not end in {} bytes", self.read.len());
                return First::Step(self.answer(Reason::BadClientHello(why)));
            }
            Ok(None) => return First::Step(Step::Wait),
            Err(failure) => return First::Step(self.answer(Reason::BadClientHello(failure.why()))),
        };
        let named = hello.server_name.as_deref().map(normalize);
        let Some(host) = named.as_deref().and_then(destination_host) else {
            let why = "a ClientHello with no server name: a transparent listener learns the destination from it".to_string();
            return First::Step(self.answer(Reason::NameMismatch(why)));
        };
        if let Err(step) = self.decide(&host, port, true, rules, now) {
            return First::Step(step);
        }
        if let Some(step) = self.tunnel_checks((&host, port), (host.as_bytes(), "in the server name", 0), rules) {
            return First::Step(step); // opened: the ClientHello in the buffer is read as ours
        }
        // The ClientHello stays in the read buffer: the destination gets it
        // first, and the tunnel's binding sees that it names `host`.
        let parent = rules.forward.and_then(|(_, f)| f.parent_for(&host)).cloned();
        First::Step(self.look_up(Target { host, port, tunnel: true, addrs: Vec::new(), exchange: None, parent, opened: false }, rules, resolver, now))
    }
}
