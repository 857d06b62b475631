//! The loop's side of ask mode (`crate::ask`): a held client's question
//! filed on the board (one per route, name, port and client), the answers
//! a person gives carried out (the held clients advanced again, the
//! *forever* ones written into the routes file first), and questions
//! nobody answered refused at their deadline.

use std::time::Instant;

use super::Proxy;
use crate::ask::{forever, Asking, Question, Scope};
use crate::front::{Front, Step};
use crate::log::{Level, Record};

impl Proxy {
    /// A front the policy held (`Front::asking`): file its question, and
    /// let it wait until the question's deadline.
    pub(super) fn hold(&mut self, front: &mut Front, now: Instant) {
        let Some(asking) = front.asking.clone() else { return };
        if front.held.is_none() {
            front.held = Some(self.file_question(asking, Some(front.id), front.deadline, now));
        }
        if let Some(q) = front.held.and_then(|id| self.asks.question(id)) {
            front.deadline = q.deadline; // one question, one deadline
        }
    }

    /// File a question (for client `conn`, or for a DNS question, none):
    /// its id. A new one is a log line; one dropped to make room refuses
    /// the clients held on it.
    pub(super) fn file_question(&mut self, asking: Asking, conn: Option<u64>, deadline: Instant, now: Instant) -> u64 {
        let known = self.asks.pending().iter().any(|q| (&q.asking.route, &q.asking.host, q.asking.port, q.asking.client) == (&asking.route, &asking.host, asking.port, asking.client));
        let shown = asking.clone();
        let (id, evicted) = self.asks.hold(asking, conn.is_some(), deadline, now);
        if !known {
            let mut line = Record::always("ask").num("question", id).str("route", &shown.route).str("client", shown.client).str("way", shown.way.name()).str("host", &shown.host);
            if shown.port != 0 {
                line = line.num("port", u64::from(shown.port));
            }
            if let (Some(method), Some(path)) = (&shown.method, &shown.path) {
                line = line.str("method", method).str("path", path);
            }
            if let Some(conn) = conn {
                line = line.num("conn", conn);
            }
            line.str("action", "held until a person answers (admin page, wasiter ask)").emit();
        }
        if let Some(q) = evicted {
            log_answer(&q, Scope::Full, "proxy");
            self.release(q.id, None, now);
        }
        id
    }

    /// A person answered question `id` with `scope` (`by`: page, cli, api):
    /// the *forever* scopes are written into the routes file first (an
    /// answer that cannot be written is refused, the question still
    /// waits), then the clients held on it go on or are refused.
    pub fn answer(&mut self, id: u64, scope: Scope, by: &str, now: Instant) -> Result<(), String> {
        let Some(q) = self.asks.question(id).cloned() else {
            return Err(format!("no question {id} is waiting (answered, timed out, or never asked)"));
        };
        if matches!(scope, Scope::Forever | Scope::DenyForever) {
            self.write_forever(&q, scope)?;
        }
        let q = self.asks.answer(id, scope, by, now)?;
        log_answer(&q, scope, by);
        self.release(id, Some(scope), now);
        if matches!(scope, Scope::Forever | Scope::DenyForever) {
            self.reload_now(now);
        }
        Ok(())
    }

    /// After a reload: questions the routes now settle (a person, or a
    /// forever answer, added the name to `to=` or `not-to=` by hand) are
    /// taken off the board, and their clients go on by the new policy.
    pub(super) fn settle_after_reload(&mut self, now: Instant) {
        let settled: Vec<u64> = self
            .asks
            .pending()
            .iter()
            .filter(|q| {
                let mut policies = self.doors.iter().filter(|d| d.listener.is_some()).flat_map(|d| &d.forward);
                policies.find(|p| p.label == q.asking.route).is_some_and(|p| !matches!(p.forward.check_host(&q.asking.host, q.asking.port), Ok((crate::forward::Decision::Ask, _))))
            })
            .map(|q| q.id)
            .collect();
        for id in settled {
            if let Ok(q) = self.asks.answer(id, Scope::Once, "routes-file", now) {
                log_answer(&q, Scope::Once, "routes-file");
                self.release(id, Some(Scope::Once), now);
            }
        }
    }

    /// Questions past their deadline (DNS questions: their held clients
    /// are refused at the same deadline by `expire_fronts`).
    pub(super) fn expire_questions(&mut self, now: Instant) {
        for q in self.asks.expire(now) {
            log_answer(&q, Scope::Timeout, "proxy");
        }
    }

    /// The clients held on question `id`: answered (`Some`), they go on or
    /// are refused; dropped unanswered (`None`), refused as `ask-full`.
    fn release(&mut self, id: u64, scope: Option<Scope>, now: Instant) {
        let held: Vec<usize> = self.fronts.iter().filter(|(_, f)| f.held == Some(id)).map(|(k, _)| k).collect();
        for key in held {
            let Some(mut front) = self.fronts.try_remove(key) else { continue };
            let step = match scope {
                Some(scope) => {
                    front.answered(scope);
                    self.advance(&mut front, now)
                }
                None => {
                    front.held = None;
                    front.reason = Some(front.unanswered(crate::forward::Rule::AskFull));
                    Step::Close
                }
            };
            if step == Step::Wait {
                self.hold(&mut front, now);
                self.fronts.insert(front);
            } else {
                self.finish(front, step, now);
            }
        }
    }

    /// Add the question's name to its route's line in the routes file
    /// (`to=`, or `not-to=` for `deny-forever`), with a comment. A DNS
    /// question's answer is for the name on every route (`ask::Board`): it
    /// goes into the line of every route in ask mode that the file holds.
    fn write_forever(&mut self, q: &Question, scope: Scope) -> Result<(), String> {
        let a = &q.asking;
        let Some(watch) = &self.watch else {
            return Err("forever is written into the routes file, and this proxy reads none (start it with --routes-file, and reloads on): answer session instead".into());
        };
        let path = watch.path.clone();
        let asked_on = |p: &&super::state::Policy| if a.way == crate::ask::Way::Dns { p.forward.ask.is_some() } else { p.label == a.route };
        let routes: Vec<usize> = self.doors.iter().filter(|d| d.listener.is_some()).flat_map(|d| &d.forward).filter(asked_on).map(|p| p.route).collect();
        let origins: Vec<String> = self.specs.iter().filter(|(_, i)| routes.contains(i)).map(|(s, _)| s.origin.clone()).collect();
        let mut lines: Vec<usize> = origins.iter().filter_map(|o| forever::line_of(o, &path)).collect();
        if lines.is_empty() {
            let from = origins.first().map_or("the flags", String::as_str);
            return Err(format!("the route {} comes from {from}, not the routes file {path}: forever needs it there (answer session instead)", a.route));
        }
        // From the last line up: a comment added above one line does not
        // move the lines before it.
        lines.sort_unstable();
        lines.dedup();
        let (key, verb) = if scope == Scope::Forever { ("to", "allowed") } else { ("not-to", "refused") };
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let port = if a.port == 0 { String::new() } else { format!(":{}", a.port) };
        let note = format!("wasiter ask: {} {verb} forever at {stamp}, asked by {} ({} {}{port})", a.host, a.client, a.way.name(), a.host);
        let mut text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {}", crate::sys::describe(&e)))?;
        for line in lines.into_iter().rev() {
            text = forever::edit(&text, line, key, &a.host, &note)?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{path}: cannot write it: {}", crate::sys::describe(&e)))?;
        Ok(())
    }
}

/// One line per answer (and per question refused unanswered).
fn log_answer(q: &Question, scope: Scope, by: &str) {
    let a = &q.asking;
    let mut line = Record::new(if scope.allows() { Level::Info } else { Level::Warn }, "answered");
    line = line.num("question", q.id).str("route", &a.route).str("client", a.client).str("way", a.way.name()).str("host", &a.host);
    if a.port != 0 {
        line = line.num("port", u64::from(a.port));
    }
    line.str("answer", scope.name()).str("by", by).num("waited_ms", q.since.elapsed().as_millis() as u64).num("clients", q.waiting as u64).emit();
}
