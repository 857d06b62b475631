//! Admission: new clients. Accept (in batches, pausing when descriptors run
//! out), take each through its `front` (a PROXY header, allow/deny, a peek
//! at the name it asks for) and, once a route is picked, start the
//! connection's upstream connect. Whatever a front still waits for, it
//! waits for here, not in the loop.

use std::io;
use std::time::{Duration, Instant};

use super::state::{Door, RouteState};
use super::{Proxy, ACCEPT_BATCH, ACCEPT_PAUSE};
use crate::close::{log_close, Reason, Who};
use crate::conn::{Conn, Destination, NotStarted};
use crate::forward::{Decision, Forward, Rule};
use crate::ledger::Destinations;
use crate::front::{Front, Step};
use crate::log::{self, Level, Record};
use crate::names::Asked;
use crate::proxy_header;
use crate::relay::would_block;
use crate::sys;

impl Proxy {
    /// Step 5: take new clients of `door` until its backlog is empty, the
    /// batch is used up, or the connection limit is reached.
    pub(super) fn accept(&mut self, door: usize, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.accept_paused_until.is_some() {
                return;
            }
            if !self.room() {
                Record::new(Level::Debug, "limit")
                    .num("max_conns", self.max_conns as u64)
                    .num("sockets", sys::open_sockets() as u64)
                    .str("action", "pausing accepts")
                    .emit();
                return; // the listeners are left out of the interest until a slot (or a descriptor) frees
            }
            let Some(d) = self.doors.get_mut(door) else { return };
            let Some(listener) = &d.listener else { return }; // removed by a reload
            let (client, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if would_block(&e) => return,
                // The client gave up before we got to it: nothing to pause for.
                Err(e) if transient_accept_error(&e) => continue,
                Err(e) => {
                    self.pause_accepting(&e, now);
                    return;
                }
            };
            if d.dns.is_some() {
                self.adopt_dns_client(door, client, peer, now);
                continue;
            }
            // A forward port's policy, by who the client is: its address,
            // or on a Unix listener the uid the kernel gives. None claims
            // it: refused as allow= would (`Front::check`).
            let uid = if d.forward.is_empty() || !matches!(d.place, crate::route::Place::Unix(_)) { None } else { client.peer_uid() };
            let policy = d.policy_for(peer, uid).unwrap_or(usize::MAX);
            if let Some(stats) = d.stats(policy, &mut self.shared.routes) {
                stats.connections += 1;
                stats.active += 1;
            }
            if self.shared.nodelay {
                let _ = client.set_nodelay(); // best effort, as the probe found it works; once per client
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut front = Front::new(id, door, client, peer, now);
            front.policy = policy;
            front.client_name = d.policy(policy).and_then(|p| p.forward.identity.name.clone());
            match self.advance(&mut front, now) {
                Step::Wait => {
                    self.fronts.insert(front);
                }
                step => self.finish(front, step, now),
            }
        }
    }

    /// Report mode: each such forward route's draft allowlist, in the log
    /// (on stop; the metrics port serves it at /allowlist at any time).
    pub(super) fn log_drafts(&self) {
        for (listen, label, d, forward) in in_report_mode(&self.doors, &self.shared.routes) {
            log_draft(listen, label, d, forward);
        }
    }

    /// The client of front `key` sent something: take it as far as it goes.
    pub(super) fn on_front(&mut self, key: usize, now: Instant) {
        let Some(mut front) = self.fronts.try_remove(key) else { return };
        match self.advance(&mut front, now) {
            Step::Wait => {
                self.fronts.insert(front); // the same key: the slot was just freed
            }
            step => self.finish(front, step, now),
        }
    }

    /// Fronts past their deadline: closed with the reason of their phase.
    pub(super) fn expire_fronts(&mut self, now: Instant) {
        let due: Vec<usize> = self.fronts.iter().filter(|(_, f)| f.deadline <= now).map(|(key, _)| key).collect();
        for key in due {
            if let Some(mut front) = self.fronts.try_remove(key) {
                front.reason = Some(front.expired());
                self.finish(front, Step::Close, now);
            }
        }
    }

    /// Take a front as far as it goes; one the policy held for a person
    /// has its question filed (`asking.rs`).
    pub(super) fn advance(&mut self, front: &mut Front, now: Instant) -> Step {
        let mut step = Step::Close;
        // A login may move the client to another policy of its door
        // (`Front::log_in_to`): then it goes on under that one's rules.
        for _ in 0..2 {
            let was = front.policy;
            step = match self.doors.get(front.door) {
                Some(door) => front.advance(&door.rules(front.policy, self.header_timeout, self.peek_timeout, &self.shared.keys, &self.asks), &mut self.resolver, now),
                None => Step::Close,
            };
            if front.policy == was {
                break;
            }
            // Counted on its new policy's route from now on.
            if let Some(d) = self.doors.get_mut(front.door) {
                if let Some(s) = d.stats(was, &mut self.shared.routes) {
                    s.connections = s.connections.saturating_sub(1);
                    s.active = s.active.saturating_sub(1);
                }
                if let Some(s) = d.stats(front.policy, &mut self.shared.routes) {
                    s.connections += 1;
                    s.active += 1;
                }
            }
        }
        if step == Step::Wait && front.asking.is_some() {
            self.hold(front, now);
        }
        step
    }

    /// Lookups the resolver finished: each front waiting for one goes on.
    pub(super) fn on_resolved(&mut self, now: Instant) {
        for (id, result) in self.resolver.take_done() {
            self.re_resolved(id, &result);
            self.dns_resolved(id, &result, now);
            let waiting: Vec<usize> = self.fronts.iter().filter(|(_, f)| f.waits_for() == Some(id)).map(|(k, _)| k).collect();
            for key in waiting {
                let Some(mut front) = self.fronts.try_remove(key) else { continue };
                let step = match self.doors.get(front.door) {
                    Some(door) => front.resolved(result.clone(), &door.rules(front.policy, self.header_timeout, self.peek_timeout, &self.shared.keys, &self.asks), &mut self.resolver, now),
                    None => Step::Close,
                };
                if step == Step::Wait && front.waits_for().is_some() {
                    self.fronts.insert(front); // its next name is asked: the same key, the slot was just freed
                    continue;
                }
                self.finish(front, step, now);
            }
        }
    }

    /// A front is done: relay it to its route, or close it.
    pub(super) fn finish(&mut self, mut front: Front, mut step: Step, now: Instant) {
        if let Some(id) = front.held {
            self.asks.left(id);
        }
        // A forward client on its way out: its request counts toward its
        // budget for the name, if the route has one (`budgets.rs`).
        let mut charge = None;
        if let Step::Relay(_) = step {
            match self.charge_request(&mut front, now) {
                Ok(c) => charge = c,
                Err(()) => step = Step::Close,
            }
        }
        self.count_destination(&front);
        match step {
            Step::Relay(route) => {
                let id = front.id;
                if self.admit(front, route, now) {
                    if let Some(charge) = charge {
                        self.charging.insert(id, charge);
                    }
                }
            }
            Step::Wait | Step::Close => self.close_front(front, now),
        }
    }

    /// A route is picked: start its upstream connect, with our PROXY header
    /// (if the route sends one) and what the front read going first.
    /// `true`: it started (a connection now).
    fn admit(&mut self, mut front: Front, route: usize, now: Instant) -> bool {
        let Some(door) = self.doors.get_mut(front.door) else { return false };
        let Some(r) = self.shared.routes.get_mut(route) else { return false };
        if door.table.peeks() {
            // Counted at the door until now; from here on, on its route.
            door.stats.active = door.stats.active.saturating_sub(1);
            r.stats.connections += 1;
            r.stats.active += 1;
        }
        if log::tracing() {
            if let Some(asked) = &front.asked {
                let backend = r.backend().unwrap_or("default");
                log::trace_line(format_args!("pick(conn={}, {}={})", front.id, asked.fields().first().map_or("name", |f| f.0), asked.name()), format_args!("{backend}"));
            }
        }
        let early = match r.send_proxy {
            Some(v) => proxy_header::encode(v, front.from, front.to.or_else(|| front.client.local_addr().ok()).unwrap_or(front.peer)),
            None => Vec::new(),
        };
        let mut read = front.take_read();
        let opaque = door.policy(front.policy).map(|p| p.forward.opaque.clone()).unwrap_or_default();
        let forward = front.target.take().map(|t| {
            // A tunnel's bytes that came with its CONNECT are its first
            // bytes: they wait to be checked against its name with what
            // follows. A plain request may find a connection kept from an
            // earlier request to the same host, still open.
            // Through a parent, a tunnel is first a CONNECT to it.
            let chain = t.parent.as_ref().filter(|_| t.tunnel).map(|p| (p.name(), p.connect_request(&t.host, t.port)));
            let open = t.opened.then(|| t.host.clone());
            let tunnel = t.tunnel.then(|| (t.host, t.port, opaque.contains(&t.port), std::mem::take(&mut read)));
            let parked = match &front.asked {
                Some(Asked::Http { host: Some(h) }) if t.exchange.is_some() => self.parked.take(&parked_key(h, t.opened), &t.addrs, now),
                _ => None,
            };
            Destination { addrs: t.addrs, tunnel, http: t.exchange, speaks: front.speaks, chain, parked, client_tls: front.tls.take(), open }
        });
        let speaks = forward.as_ref().map(|d| d.speaks);
        let kept = forward.as_ref().is_some_and(|d| d.parked.is_some());
        let Some((mut cx, stats)) = self.shared.context(route, now) else { return false };
        let client = (front.client, front.from, front.asked.map(Box::new));
        match Conn::start(front.id, route, client, (&early, &read), forward, &mut cx) {
            Ok(conn) => {
                let id = conn.id();
                let key = self.conns.insert(conn);
                self.busy.add(key, id); // connecting: watched in every pass
                if kept {
                    // A kept connection is connected already: the request
                    // goes out now, not after a wake-up that says so.
                    self.dispatch(key, now, |conn, cx| conn.reused(cx));
                }
                true
            }
            Err(NotStarted { asked, upstream, reason, client, mut client_tls }) => {
                if let Some(speaks) = speaks {
                    crate::front::tell_through(&client, client_tls.as_deref_mut(), &speaks.refusal(&reason));
                }
                stats.closed(reason.kind());
                let who = Who { id: front.id, route: cx.route, backend: cx.backend, client: front.from, asked: asked.as_deref() };
                log_close(&who, upstream, (0, 0), Duration::ZERO, &reason);
                // No descriptor for the upstream socket: let the next
                // clients wait in the backlog instead of being dropped too.
                if let Reason::ConnectFailed(e) = &reason {
                    if sys::out_of_descriptors(e) {
                        self.pause_accepting(e, now);
                    }
                }
                false
            }
        }
    }

    /// A forward client's request was answered and its connection goes on:
    /// what it sends next goes through the front again, checked, looked up
    /// and sent on like its first request, wherever it goes.
    pub(super) fn next_request(&mut self, conn: Conn, now: Instant) {
        let (id, route) = (conn.id(), conn.route);
        // Its door and policy: where its route is now (a reload may have
        // moved the policy within its door; a client keeps its route).
        let place = self.doors.iter().enumerate().find_map(|(i, d)| Some((i, d.policy(route)?)));
        let Some((door, policy)) = place else { return }; // its route went away in a reload: closed
        let (policy, client_name) = (policy.route, policy.forward.identity.name.clone());
        if let Some(stats) = self.doors.get_mut(door).and_then(|d| d.stats(policy, &mut self.shared.routes)) {
            stats.active += 1; // still open: its exchange's close counted it out
        }
        let asked = conn.asked_host().map(str::to_string);
        let next = conn.into_next();
        if let (Some(kept), Some(host)) = (next.upstream, asked) {
            // Unwatched while parked: a poller that keeps what it was told
            // would still report it under its connection's token, which a
            // new connection may hold by now.
            self.poller.add(kept.1.handle(), 0, false, false);
            self.parked.park(&parked_key(&host, kept.2.is_some()), kept, now);
        }
        let mut front = Front::next_request(id, (door, policy, client_name), next.client, next.leftover, (next.pinned, next.client_tls), now);
        match self.advance(&mut front, now) {
            Step::Wait => {
                self.fronts.insert(front);
            }
            step => self.finish(front, step, now),
        }
    }

    /// A tunnel's first bytes were refused (`conn::bind`): a decision of its
    /// own, logged and counted like the CONNECT's.
    pub(super) fn tunnel_refused(&mut self, route: usize, id: u64, asked: &str, rule: Rule) {
        let Some(r) = self.shared.routes.get_mut(route) else { return };
        if let Some(d) = r.destinations.as_mut() {
            d.decided(asked, Decision::Deny, rule);
        }
        log_decision(id, &r.name, asked, Decision::Deny, rule);
    }

    /// A forward route's client named a host: count it (bounded, `ledger`)
    /// and, if the policy decided, log and count the decision.
    fn count_destination(&mut self, front: &Front) {
        let Some(door) = self.doors.get(front.door) else { return };
        let Some(policy) = door.policy(front.policy) else { return };
        let Some(Asked::Http { host: Some(asked) }) = &front.asked else { return };
        let Some(d) = self.shared.routes.get_mut(policy.route).and_then(|r| r.destinations.as_mut()) else { return };
        d.count(asked);
        if let Some((decision, rule)) = front.decision {
            let grew = d.decided_how(asked, decision, rule, front.asked_how.map(|s| s.name()));
            log_decision(front.id, &policy.label, asked, decision, rule);
            let forward = &policy.forward;
            if (forward.report || forward.ask.is_some()) && grew {
                // A name new to report mode's draft: the draft as it is now
                // (a wasm runtime ends the module on a signal, so the last
                // of these lines is its draft; natively, stop logs one too).
                log_draft(&door.name, &policy.label, d, forward);
            }
        }
    }

    /// Close a client that never got a route (denied, a bad PROXY header,
    /// no route for its name, ...): count it at its door and log it.
    fn close_front(&mut self, mut front: Front, now: Instant) {
        let reason = front.reason.take().unwrap_or(Reason::NoRoute);
        let Some(door) = self.doors.get_mut(front.door) else { return };
        if let Some(stats) = door.stats(front.policy, &mut self.shared.routes) {
            stats.closed(reason.kind());
        }
        let route = door.policy(front.policy).map_or(&door.name, |p| &p.label);
        let who = Who { id: front.id, route, backend: None, client: front.from, asked: front.asked.as_ref() };
        log_close(&who, None, (0, 0), now.saturating_duration_since(front.opened), &reason);
        // dropping `front` closes the client: no upstream ever saw it
    }

    /// Stop accepting: the listener stays readable while the failure lasts
    /// (EMFILE, mostly), and the loop must not spin on it. Out of
    /// descriptors, the sockets open now are the most this process may hold
    /// (a wasm module cannot ask), so accepting waits until one is freed and
    /// then keeps the reserve below that; otherwise for `ACCEPT_PAUSE`.
    fn pause_accepting(&mut self, e: &io::Error, now: Instant) {
        let open = sys::open_sockets();
        if sys::out_of_descriptors(e) && self.budget.learn(open) {
            Record::new(Level::Warn, "accept-paused")
                .str("error", sys::describe(e))
                .num("sockets", open as u64)
                .str("until", "a descriptor is freed")
                .emit();
            return;
        }
        Record::new(Level::Warn, "accept-paused")
            .str("error", sys::describe(e))
            .num("for_ms", ACCEPT_PAUSE.as_millis() as u64)
            .emit();
        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
    }
}

/// The forward routes in report or ask mode: (listen address, route
/// label, ledger, policy), for their drafts (in the log on stop, at the
/// metrics port's /allowlist, on the admin page).
pub(super) fn in_report_mode<'a>(doors: &'a [Door], routes: &'a [RouteState]) -> impl Iterator<Item = (&'a str, &'a str, &'a Destinations, &'a Forward)> {
    doors.iter().flat_map(|door| {
        door.forward.iter().filter(|p| p.forward.report || p.forward.ask.is_some()).filter_map(|p| {
            Some((door.name.as_str(), p.label.as_str(), routes.get(p.route)?.destinations.as_ref()?, &p.forward))
        })
    })
}

/// Report mode's draft allowlist of the route on `listen` (`label` in
/// logs), as a log line.
pub(super) fn log_draft(listen: &str, label: &str, d: &Destinations, forward: &Forward) {
    let (line, _) = d.draft(listen, forward);
    Record::always("allowlist-draft").str("route", label).str("names", d.counts()).str("line", line).emit();
}

/// One line per decision of a forward route's policy: what was asked, what
/// was decided, and the rule's stable id (`rule=`, for audit scripts).
pub(super) fn log_decision(conn: u64, route: &str, asked: &str, decision: Decision, rule: Rule) {
    let level = if decision == Decision::Allow { Level::Info } else { Level::Warn };
    Record::new(level, "decision").num("conn", conn).str("route", route).str("host", asked).str("decision", decision.name()).str("rule", rule.id()).emit();
}

pub(super) fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// Where a destination's kept connection is filed: by `host:port`, and
/// apart (`tls:`) when it speaks TLS for an opened tunnel's requests.
fn parked_key(host: &str, tls: bool) -> std::borrow::Cow<'_, str> {
    if tls { format!("tls:{host}").into() } else { host.into() }
}
