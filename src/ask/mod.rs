//! Asking a person: a destination that a route in ask mode (`ask`) does not
//! list is held, not refused, while someone decides on the admin page, the
//! CLI or the JSON API (`admin.rs`).
//!
//! ```text
//! front/egress decide ─ Decision::Ask ─▶ granted? ──yes──▶ on its way (rule=asked)
//!   (HTTP, CONNECT,                        │ no
//!    SOCKS5, transparent;                  ▼
//!    a DNS question)                Board::hold ─▶ one Question per (route, name,
//!                                                  port, client); the front waits,
//!                                                  unread, nothing resolved
//! page / CLI / API ─▶ Proxy::answer ─▶ Board::answer ─▶ grants (once, session),
//!                                       forever.rs (a line in the routes file),
//!                                       the held fronts advanced again
//! ```
//! This file is the state alone (no socket, no file): the questions
//! waiting, the answers given (the recent ones, for the page), and the
//! grants that outlive a question. The proxy holds one `Board` for all its
//! routes; a question's `route` is its listen address, which a reload keeps.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

pub mod admin;
pub mod client;
pub mod forever;
pub mod json;
pub mod listing;

/// Questions held at once, for all routes: one more refuses the oldest
/// (rule `ask-full`), so that a client cannot fill the page (or memory).
pub const MAX_QUESTIONS: usize = 64;
/// Answers kept for the page's "recent decisions".
pub const RECENT: usize = 32;
/// How long a *once* answer to a DNS question lets that client's next
/// connection to the name through, and answers its retry.
pub const ONCE_FOR: Duration = Duration::from_secs(60);
/// The default for `ask-timeout=`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The way out a question came by (the page shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// A plain HTTP request to the forward proxy (its method and path shown).
    Http,
    /// An HTTP CONNECT.
    Connect,
    Socks5,
    /// A transparent listener's client (its TLS name or Host).
    Transparent,
    /// A question to the allowlist DNS server.
    Dns,
}

impl Way {
    pub fn name(self) -> &'static str {
        match self {
            Way::Http => "http",
            Way::Connect => "connect",
            Way::Socks5 => "socks5",
            Way::Transparent => "transparent",
            Way::Dns => "dns",
        }
    }
}

/// A person's answer, and how far it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// This request, tunnel or connection (every client waiting on the
    /// question); for a DNS question, also that client's next connection to
    /// the name.
    Once,
    /// That name and port on that route until the proxy stops.
    Session,
    /// A line in the routes file (`to=`), then reloaded.
    Forever,
    /// Refused, this time.
    Deny,
    /// Refused for good: a `not-to=` line in the routes file.
    DenyForever,
    /// Nobody answered in time (not a person's answer: recorded alike).
    Timeout,
    /// Refused to make room for a newer question (`MAX_QUESTIONS`).
    Full,
}

impl Scope {
    /// The scopes a person may give, in the order the page shows them.
    pub const GIVEN: [Scope; 5] = [Scope::Once, Scope::Session, Scope::Forever, Scope::Deny, Scope::DenyForever];
    pub const ALL: [Scope; 7] = [Scope::Once, Scope::Session, Scope::Forever, Scope::Deny, Scope::DenyForever, Scope::Timeout, Scope::Full];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Once => "once",
            Scope::Session => "session",
            Scope::Forever => "forever",
            Scope::Deny => "deny",
            Scope::DenyForever => "deny-forever",
            Scope::Timeout => "timeout",
            Scope::Full => "full",
        }
    }

    /// A scope a person may give, by its name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::GIVEN.into_iter().find(|g| g.name() == s)
    }

    pub fn allows(self) -> bool {
        matches!(self, Scope::Once | Scope::Session | Scope::Forever)
    }
}

/// What a held client asks: filled in by the front (or the DNS server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asking {
    /// The route's listen address (its name in logs and metrics).
    pub route: String,
    pub host: String,
    /// 0 for a DNS question (no port).
    pub port: u16,
    pub client: IpAddr,
    pub way: Way,
    /// A plain HTTP request's method and path (as sent: shown escaped).
    pub method: Option<String>,
    pub path: Option<String>,
}

impl Asking {
    /// Identical questions are one: same route, name, port and client.
    fn same(&self, other: &Asking) -> bool {
        (&self.route, &self.host, self.port, self.client) == (&other.route, &other.host, other.port, other.client)
    }
}

/// One question waiting for a person.
#[derive(Clone, Debug)]
pub struct Question {
    pub id: u64,
    pub asking: Asking,
    /// When it was first asked (the page shows how long it has waited).
    pub since: Instant,
    pub at: SystemTime,
    /// When it is refused unanswered (`ask-timeout=`).
    pub deadline: Instant,
    /// Clients held on it now (a DNS question holds none: its answer is
    /// withheld and the client retries).
    pub waiting: usize,
}

/// An answer given (or a question refused unanswered), for the page, the
/// log and the metrics.
#[derive(Clone, Debug)]
pub struct Answer {
    pub id: u64,
    pub asking: Asking,
    pub scope: Scope,
    pub at: SystemTime,
    /// Who answered: "page", "cli", "api" (what the request said), or
    /// "proxy" for a timeout.
    pub by: String,
}

/// A *once* answer to a DNS question, waiting for its use: the retry of
/// the question, then the connection the client makes to the name.
#[derive(Clone, Debug)]
struct Once {
    client: IpAddr,
    host: String,
    allow: bool,
    dns_left: bool,
    conn_left: bool,
    until: Instant,
}

/// The questions, the answers and the grants of every route in ask mode.
#[derive(Default)]
pub struct Board {
    pending: Vec<Question>,
    next_id: u64,
    recent: VecDeque<Answer>,
    /// *session* (and *forever*, until the reload applies it): (route,
    /// name, port) allowed or refused; port 0 (a DNS question's) for any,
    /// and route "" (a DNS question's) for every route.
    session: HashSet<(String, String, u16)>,
    refused: HashSet<(String, String, u16)>,
    once: RefCell<Vec<Once>>,
    /// Answers by (route, scope): the metrics.
    counts: Vec<(String, Scope, u64)>,
}

/// What a route's grants say of a destination: the answer that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granted {
    Allow(Scope),
    Deny(Scope),
}

impl Board {
    /// Hold `asking` until `deadline`: its question (a new one, or the
    /// identical one already waiting, which then waits on one more client
    /// when `client` is true). Also the question refused to make room, if
    /// the board was full.
    pub fn hold(&mut self, asking: Asking, client: bool, deadline: Instant, now: Instant) -> (u64, Option<Question>) {
        if let Some(q) = self.pending.iter_mut().find(|q| q.asking.same(&asking)) {
            q.waiting += usize::from(client);
            return (q.id, None);
        }
        let evicted = (self.pending.len() >= MAX_QUESTIONS).then(|| self.pending.remove(0));
        if let Some(q) = &evicted {
            self.record(q, Scope::Full, "proxy");
        }
        self.next_id += 1;
        let id = self.next_id;
        self.pending.push(Question { id, asking, since: now, at: SystemTime::now(), deadline, waiting: usize::from(client) });
        (id, evicted)
    }

    /// A held client left (it closed, or its route went away).
    pub fn left(&mut self, id: u64) {
        if let Some(q) = self.pending.iter_mut().find(|q| q.id == id) {
            q.waiting = q.waiting.saturating_sub(1);
        }
    }

    /// The questions waiting, oldest first.
    pub fn pending(&self) -> &[Question] {
        &self.pending
    }

    /// The question `id`, if it still waits.
    pub fn question(&self, id: u64) -> Option<&Question> {
        self.pending.iter().find(|q| q.id == id)
    }

    /// The latest answers, newest first.
    pub fn recent(&self) -> impl Iterator<Item = &Answer> {
        self.recent.iter()
    }

    /// Answers so far, by (route, scope).
    pub fn counts(&self) -> &[(String, Scope, u64)] {
        &self.counts
    }

    /// Answer question `id` with `scope` (given `by` whom): it no longer
    /// waits, and its grant is kept. The caller releases its clients (and
    /// writes the routes file for the *forever* scopes, first).
    pub fn answer(&mut self, id: u64, scope: Scope, by: &str, now: Instant) -> Result<Question, String> {
        let at = self.pending.iter().position(|q| q.id == id).ok_or_else(|| format!("no question {id} is waiting (answered, timed out, or never asked)"))?;
        let q = self.pending.remove(at);
        let a = &q.asking;
        // A DNS question's answer is for the name on every route: the
        // client's connection after it (through the forward proxy or a
        // transparent listener) is not asked again.
        let route = if a.way == Way::Dns { String::new() } else { a.route.clone() };
        let key = (route, a.host.clone(), a.port);
        match scope {
            Scope::Session | Scope::Forever => {
                self.refused.remove(&key);
                self.session.insert(key);
            }
            Scope::DenyForever => {
                self.session.remove(&key);
                self.refused.insert(key);
            }
            Scope::Once | Scope::Deny if a.way == Way::Dns => {
                // The retry is answered by it, and the connection after.
                let once = Once { client: a.client, host: a.host.clone(), allow: scope == Scope::Once, dns_left: true, conn_left: scope == Scope::Once, until: now + ONCE_FOR };
                let mut list = self.once.borrow_mut();
                list.retain(|o| o.until > now && !(o.client == a.client && o.host == a.host));
                list.push(once);
            }
            _ => {} // once, deny: the clients held on it, and no one else
        }
        self.record(&q, scope, by);
        Ok(q)
    }

    /// Questions past their deadline: refused as `timeout`, returned so
    /// that the caller refuses the clients held on them.
    pub fn expire(&mut self, now: Instant) -> Vec<Question> {
        let (due, keep): (Vec<Question>, Vec<Question>) = std::mem::take(&mut self.pending).into_iter().partition(|q| q.deadline <= now);
        self.pending = keep;
        for q in &due {
            self.record(q, Scope::Timeout, "proxy");
        }
        self.once.borrow_mut().retain(|o| o.until > now);
        due
    }

    /// The nearest question deadline (the loop wakes for it).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|q| q.deadline).min()
    }

    /// A connection to `host:port` from `client` on `route`: an answer that
    /// already covers it (a *session* grant, or a *once* answer to this
    /// client's DNS question for the name, used up by this call).
    pub fn granted(&self, route: &str, host: &str, port: u16, client: IpAddr, now: Instant) -> Option<Granted> {
        if let Some(g) = self.standing(route, host, port) {
            return Some(g);
        }
        let mut list = self.once.borrow_mut();
        let once = list.iter_mut().find(|o| o.conn_left && o.client == client && o.host == host && o.until > now)?;
        once.conn_left = false;
        Some(Granted::Allow(Scope::Once))
    }

    /// A DNS question for `host` from `client` on `route`: a *session*
    /// grant for the name (any port), or a *once* answer to this client's
    /// question, used up by this call.
    pub fn dns_granted(&self, route: &str, host: &str, client: IpAddr, now: Instant) -> Option<Granted> {
        if let Some(g) = self.standing(route, host, 0) {
            return Some(g);
        }
        let mut list = self.once.borrow_mut();
        let once = list.iter_mut().find(|o| o.dns_left && o.client == client && o.host == host && o.until > now)?;
        once.dns_left = false;
        Some(if once.allow { Granted::Allow(Scope::Once) } else { Granted::Deny(Scope::Deny) })
    }

    /// The session-long answers for (route, host, port); port 0 (a DNS
    /// question's) covers every port.
    fn standing(&self, route: &str, host: &str, port: u16) -> Option<Granted> {
        let keys = [(route, port), (route, 0), ("", 0)];
        let has = |set: &HashSet<(String, String, u16)>| keys.iter().any(|(r, p)| set.contains(&(r.to_string(), host.to_string(), *p)));
        if has(&self.refused) {
            Some(Granted::Deny(Scope::DenyForever))
        } else if has(&self.session) {
            Some(Granted::Allow(Scope::Session))
        } else {
            None
        }
    }

    fn record(&mut self, q: &Question, scope: Scope, by: &str) {
        let answer = Answer { id: q.id, asking: q.asking.clone(), scope, at: SystemTime::now(), by: by.to_string() };
        self.recent.push_front(answer);
        self.recent.truncate(RECENT);
        match self.counts.iter_mut().find(|(r, s, _)| *r == q.asking.route && *s == scope) {
            Some((_, _, n)) => *n += 1,
            None => self.counts.push((q.asking.route.clone(), scope, 1)),
        }
    }
}

#[cfg(test)]
mod tests;
