//! A forward route's client held for a person (ask mode, `crate::ask`):
//! its destination is not listed, so it waits, unread and unresolved,
//! until someone answers its question or its `ask-timeout=` passes.
//!
//! Holding changes nothing of what the client sent: the phase stays where
//! it was, the bytes stay in the read buffer, and the next `advance` (made
//! by the loop once the question is answered) reads the request again from
//! the start and comes back to `decide`, which then finds the answer. So
//! every front (a plain request, CONNECT, SOCKS5, a transparent listener's
//! TLS or HTTP) is held by the same few lines, and nothing is sent to DNS
//! before the answer: the name is looked up only after `decide` lets it by.

use std::time::Instant;

use super::{Front, Rules, Speaks, Step};
use crate::ask::{Asking, Granted, Scope, Way};
use crate::close::Reason;
use crate::forward::{Decision, Forward, Rule};

impl Front {
    /// The policy would ask a person about `host:port`: go on if an answer
    /// covers it, refuse if one refused it, else hold the client.
    pub(super) fn ask_person(&mut self, host: &str, port: u16, tunnel: bool, rules: &Rules<'_>, now: Instant) -> Result<(), Step> {
        if self.pinned.is_some() {
            // A request inside a tunnel already allowed (asked or not):
            // the tunnel's answer covers what it carries to its own host.
            self.decision = Some((Decision::Allow, Rule::Asked));
            return Ok(());
        }
        let granted = match self.answer.take() {
            Some(scope) if scope.allows() => Some(Granted::Allow(scope)),
            Some(scope) => Some(Granted::Deny(scope)),
            None => rules.asks.granted(rules.route, host, port, self.from.ip(), now),
        };
        match granted {
            Some(Granted::Allow(scope)) => {
                self.decision = Some((Decision::Allow, Rule::Asked));
                self.asked_how = Some(scope);
                Ok(())
            }
            Some(Granted::Deny(scope)) => {
                let why = format!("{host} is not in to=, and a person refused it ({})", scope.name());
                Err(self.refused(Forward::unanswered(Rule::AskDenied, host, port, why)))
            }
            None => {
                let way = match (self.speaks, tunnel) {
                    (Speaks::Socks5, _) => Way::Socks5,
                    (Speaks::Tls, _) => Way::Transparent,
                    _ if rules.forward.is_some_and(|(_, f)| f.transparent.is_some()) => Way::Transparent,
                    (Speaks::Http, true) => Way::Connect,
                    (Speaks::Http, false) => Way::Http,
                };
                let (method, path) = self.request_line.clone().unzip();
                self.asking = Some(Asking { route: rules.route.to_string(), host: host.to_string(), port, client: self.from.ip(), way, method, path });
                let timeout = rules.forward.and_then(|(_, f)| f.ask).unwrap_or(crate::ask::DEFAULT_TIMEOUT);
                self.deadline = now + timeout;
                if crate::log::tracing() {
                    crate::log::trace_line(format_args!("ask(conn={}, {} {host}:{port})", self.id, way.name()), format_args!("held for a person, at most {}s", timeout.as_secs()));
                }
                Err(Step::Wait)
            }
        }
    }

    /// Refused unanswered (`AskTimeout`, `AskFull`): the client is told in
    /// its protocol, and the decision kept.
    pub fn unanswered(&mut self, rule: Rule) -> Reason {
        let (host, port) = match &self.asking {
            Some(a) => (a.host.clone(), a.port),
            None => self.target.as_ref().map(|t| (t.host.clone(), t.port)).unwrap_or_default(),
        };
        let why = match rule {
            Rule::AskFull => format!("{host} is not in to=, and its question was dropped unanswered to make room for newer ones"),
            _ => format!("{host} is not in to=, and nobody answered in time"),
        };
        let refusal = Forward::unanswered(rule, &host, port, why);
        self.decision = Some((Decision::Deny, rule));
        self.asked = Some(crate::names::Asked::Http { host: Some(format!("{host}:{port}")) });
        let reason = Reason::Forbidden(self.naming_client(refusal.text));
        self.tell(&self.speaks.refusal(&reason));
        reason
    }

    /// Held on a question (or about to be filed as one): not read from.
    pub fn is_held(&self) -> bool {
        self.held.is_some() || self.asking.is_some()
    }

    /// The answer to its question: the next `advance` goes on or refuses.
    pub fn answered(&mut self, scope: Scope) {
        self.held = None;
        // Asked and answered: a wait after this (the name's lookup) is
        // not a question again, nor its deadline an ask-timeout.
        self.asking = None;
        self.answer = Some(scope);
    }
}
