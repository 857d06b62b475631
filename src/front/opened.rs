//! A tunnel the route opens (`open=NAME,...`, `--ca DIR`): instead of
//! relaying the client's TLS to the destination, the proxy completes the
//! handshake itself, with a leaf for the tunnel's name signed by the
//! sandbox's CA (`tls::Opener`), and from then on the client is a pinned
//! tunnel's client like any other (`proxy_request::in_tunnel`), whose bytes
//! come through its TLS: each request inside is read whole, checked
//! (`allow-http=`), given its credentials (`crate::secrets`), and sent to the
//! destination over TLS of the proxy's own, verified against the origin's
//! roots with the same name (`conn`).
//!
//! ```text
//! CONNECT host:443 ─▶ 200 (ours) ─▶ Hello: its ClientHello names host? ─▶ our leaf ─▶ Request (through TLS) ─▶ ...
//! SOCKS5 to host:443 ─▶ success ─┘        (else an alert: sni-mismatch)
//! transparent=443: the ClientHello is the first thing read ─┘
//! ```
//! Every other tunnel stays as it was (bound by its name, `conn::bind`):
//! names left out of `open=` keep their own certificates, so pinned
//! clients and mutual TLS work through them.

use super::{client_hello, tell, Front, Phase, Rules, Speaks, Step, PEEK_LIMIT};
use crate::close::{Reason, Side};
use crate::forward::{Decision, Forward, Rule};
use crate::names::normalize;
use crate::tls;

impl Front {
    /// A tunnel to `host:port` passed the policy. `asked`: the bytes that
    /// asked for it (a CONNECT head, a name), checked for placeholders
    /// (`what` says where they were), and how many of the bytes read are
    /// that request (`head`: a CONNECT's, which the tunnel's bytes follow).
    /// `Some(step)`: the front took it (it is opened, or refused); `None`:
    /// it goes on as a tunnel.
    pub(super) fn tunnel_checks(&mut self, (host, port): (&str, u16), (asked, what, head): (&[u8], &str, usize), rules: &Rules<'_>) -> Option<Step> {
        if let Err(leak) = rules.secrets.scan(asked, what) {
            return Some(self.refused(Forward::leak(host, port, leak.why)));
        }
        let (_, forward) = rules.forward?;
        if let Err(refusal) = forward.check_tunnel(host, port) {
            return Some(self.refused(refusal));
        }
        if !forward.opens(host, port) || rules.opener.is_none() {
            return None; // a route with open= does not start without --ca
        }
        // The client hears that its tunnel is open (an HTTP 200, a SOCKS5
        // success; nothing for a transparent client), and its ClientHello,
        // which may have come with the request, is read next.
        let opened = self.speaks.opened(None);
        if !opened.is_empty() && self.client.write(&opened).ok() != Some(opened.len()) {
            return Some(self.close(Reason::Error(Side::Client, std::io::ErrorKind::WriteZero.into())));
        }
        self.read.drain(..head.min(self.read.len()));
        self.pinned = Some((host.to_string(), port));
        self.phase = Phase::Hello;
        Some(self.hello(rules))
    }

    /// An opened tunnel's ClientHello: it must name the tunnel's host, as
    /// any tunnel's must (`conn::bind`); then the handshake is ours.
    pub(super) fn hello(&mut self, rules: &Rules<'_>) -> Step {
        let ended = match self.read_more() {
            Ok(ended) => ended,
            Err(e) => return self.close(Reason::Error(Side::Client, e)),
        };
        let Some((host, port)) = self.pinned.clone() else { return Step::Close };
        let Some(&first) = self.read.first() else {
            return if ended { self.close(Reason::Closed(Side::Client)) } else { Step::Wait };
        };
        if !client_hello::looks_like_tls(first) {
            let why = format!("the tunnel to {host}:{port} carries bytes that are not TLS (first byte {:?}), and the route opens its TLS", first.escape_ascii().to_string());
            return self.deny(Rule::NotTls, Reason::NotTls(why), None);
        }
        let hello = match client_hello::parse(&self.read) {
            Ok(Some(hello)) => hello,
            Ok(None) if ended || self.read.len() > PEEK_LIMIT => {
                let why = format!("the ClientHello in the tunnel to {host} ended after {} bytes", self.read.len());
                return self.deny(Rule::NotTls, Reason::BadClientHello(why), Some(client_hello::DECODE_ERROR));
            }
            Ok(None) => return Step::Wait,
            Err(failure) => return self.deny(Rule::NotTls, Reason::BadClientHello(failure.why()), Some(client_hello::DECODE_ERROR)),
        };
        match hello.server_name.as_deref().map(normalize) {
            Some(name) if name == host => {}
            named => {
                let named = named.map_or("no server".to_string(), |n| n.to_string());
                let why = format!("the ClientHello names {named}, the tunnel was opened for {host}:{port}");
                return self.deny(Rule::SniMismatch, Reason::NameMismatch(why), Some(client_hello::UNRECOGNIZED_NAME));
            }
        }
        let Some(opener) = rules.opener else { return Step::Close };
        let mut session = match opener.accept(&host, &self.read) {
            Ok(session) => session,
            Err(e) => return self.close(Reason::Tls(Side::Client, tls::tls_failure(&e).unwrap_or_else(|| e.to_string()))),
        };
        if let Err(e) = tls::flush(&self.client, &mut session) {
            return self.close(Reason::Error(Side::Client, e));
        }
        if crate::log::tracing() {
            crate::log::trace_line(format_args!("open(conn={}, {host}:{port})", self.id), format_args!("TLS completed with a leaf for {host}; requests read inside"));
        }
        self.read.clear();
        self.tls = Some(Box::new(session));
        self.speaks = Speaks::Http; // what it speaks inside
        self.phase = Phase::Request;
        Step::Wait
    }

    /// Refuse an opened tunnel's ClientHello: a decision of its own, told
    /// with a fatal alert (`alert`) or, for bytes that are not TLS, a 403.
    fn deny(&mut self, rule: Rule, reason: Reason, alert: Option<u8>) -> Step {
        if let Some((host, port)) = &self.pinned {
            self.asked = Some(crate::names::Asked::Http { host: Some(format!("{host}:{port}")) });
        }
        self.decision = Some((Decision::Deny, rule));
        match alert {
            Some(code) => tell(&self.client, &client_hello::fatal_alert(&self.read, code)),
            None => tell(&self.client, &Speaks::Http.refusal(&reason)),
        }
        self.close(reason)
    }
}
