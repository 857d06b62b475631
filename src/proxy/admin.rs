//! The loop's HTTP listeners (`--metrics`, `--admin`, one when they share
//! an address) and their exchanges (`served::Scrape`): accepted, read,
//! answered and written as they are ready, at most `MAX_SCRAPES` at once.
//! A request is answered by the metrics pages (`metrics`) or the admin
//! side (`ask::admin`), as its listener serves; an answer to a question
//! is carried out here (`Proxy::answer`), between `ask::admin::parse` and
//! the reply.

use std::net::SocketAddr;
use std::time::Instant;

use super::admission::{self, transient_accept_error};
use super::{Proxy, MAX_SCRAPES};
use crate::ask::admin::{self, Reply, Request};
use crate::ask::json;
use crate::log::{Level, Record};
use crate::relay::would_block;
use crate::served::{self, Received, Scrape};

impl Proxy {
    pub(super) fn accept_scrapes(&mut self, now: Instant) {
        for (listener, serves) in &self.served.listeners {
            while self.scrapes.len() < MAX_SCRAPES {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        self.scrapes.insert(Scrape::new(stream, peer, *serves, now));
                    }
                    Err(e) if would_block(&e) || transient_accept_error(&e) => break,
                    Err(e) => {
                        let name = if serves.admin { "admin" } else { "metrics" };
                        Record::new(Level::Warn, "accept-failed").str("listener", name).str("error", e).emit();
                        break;
                    }
                }
            }
        }
    }

    /// Exchange `key` is ready: read its request, answer it, write.
    pub(super) fn serve_scrape(&mut self, key: usize, now: Instant) {
        let Some(scrape) = self.scrapes.get_mut(key) else { return };
        let request = match scrape.receive() {
            Received::Over => {
                self.scrapes.try_remove(key);
                return;
            }
            Received::More => None,
            Received::Request(request) => Some((request, scrape.peer, scrape.serves)),
        };
        if let Some((request, peer, serves)) = request {
            // One listener for both: /metrics and /allowlist are the metrics side's.
            let target = served::target(&request);
            let metrics_page = target == b"/metrics" || target.starts_with(b"/metrics?") || target == b"/allowlist";
            let response = if serves.admin && !(serves.metrics && metrics_page) { self.admin_reply(&request, peer, now) } else { self.metrics_reply(&request, now) };
            if let Some(scrape) = self.scrapes.get_mut(key) {
                scrape.respond(response);
            }
        }
        if let Some(scrape) = self.scrapes.get_mut(key) {
            if !scrape.send() || scrape.deadline <= now {
                self.scrapes.try_remove(key);
            }
        }
    }

    /// The admin side's answer to a whole request from `peer`.
    fn admin_reply(&mut self, request: &[u8], peer: SocketAddr, now: Instant) -> Vec<u8> {
        let Some(gate) = &self.served.admin else { return Reply::error(404, "no admin side here").bytes() };
        let reply = match admin::parse(request, gate) {
            Request::Done(reply) => reply,
            Request::List => {
                let drafts = drafts(&self.doors, &self.shared.routes);
                Reply::json(200, json::questions(self.asks.pending(), self.asks.recent(), &drafts, now))
            }
            Request::Answer(a) if self.asks.question(a.id).is_none() => Reply::error(404, &format!("no question {} is waiting (answered, timed out, or never asked)", a.id)),
            Request::Answer(a) => match self.answer(a.id, a.scope, &a.by, now) {
                Ok(()) => Reply::answered(a.id, a.scope),
                Err(why) => Reply::error(409, &why),
            },
        };
        if let Some(why) = reply.refused {
            // Who and why; never what they sent (a wrong token is still a token).
            Record::new(Level::Warn, "admin-refused").str("peer", peer).num("status", u64::from(reply.status)).str("why", why).emit();
        }
        reply.bytes()
    }
}

/// Report mode's drafts (and ask mode's), one block per forward route in
/// it: for /allowlist and the admin page.
pub(super) fn drafts(doors: &[super::Door], routes: &[super::RouteState]) -> String {
    let drafts = admission::in_report_mode(doors, routes).map(|(listen, _, d, forward)| d.draft(listen, forward).1);
    let text = drafts.collect::<Vec<_>>().join("\n");
    if text.is_empty() {
        "# no forward route is in report or ask mode\n".to_string()
    } else {
        text
    }
}
