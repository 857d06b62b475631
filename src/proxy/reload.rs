//! Reload: the routes file read again while the loop runs, and applied
//! without dropping a connection.
//!
//! The file is read every `--reload-interval` (WASI has no signals; natively
//! SIGHUP asks for a read at once) and its text compared with the last one.
//! A new set of routes is checked whole before anything changes: it must
//! parse, group into listeners (`route::doors`), resolve and bind. Then:
//! - a listen address that stays keeps its listening socket (no client is
//!   ever refused during a reload); its routes are set afresh;
//! - a changed route (same address and names) is changed in place: new
//!   connections use the new pool and options, servers that stay keep their
//!   health and counts, open connections keep their upstream;
//! - a new address starts listening; an address no route uses any more
//!   closes its listener at once, and its open connections finish.
//!
//! Doors and routes are never removed from their tables, only retired, so
//! that every index a connection or a front holds stays valid.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::state::{Bound, Certs, Door, RouteState};
use super::Proxy;
use crate::cli;
use crate::log::{Level, Record};
use crate::route::{self, RouteSpec};
use crate::sys;

impl Proxy {
    /// Step 1: read the routes file when due (or natively after SIGHUP), and
    /// reload if its text changed.
    pub(super) fn check_reload(&mut self, now: Instant) {
        // A SIGHUP since the last pass: each watched file is read now, once.
        let hups = sys::reload_requests();
        let hup = hups != self.hups_seen;
        self.hups_seen = hups;
        self.check_secrets(hup, now);
        let Some(watch) = &mut self.watch else { return };
        if now < watch.next && !hup {
            return;
        }
        watch.next = now + watch.every;
        let text = match std::fs::read_to_string(&watch.path) {
            Ok(t) => t,
            Err(e) => {
                // Being rewritten, or gone for a moment: keep what runs.
                if watch.text.is_some() {
                    Record::new(Level::Warn, "reload-failed").str("file", &watch.path).str("error", sys::describe(&e)).str("action", "keeping the routes that run").emit();
                    watch.text = None;
                }
                return;
            }
        };
        if watch.text.as_ref() == Some(&text) {
            return;
        }
        watch.text = Some(text.clone());
        let (path, fixed) = (watch.path.clone(), watch.fixed.clone());
        match self.reload(&path, &text, fixed) {
            Ok(Some(line)) => {
                self.reloads.ok += 1;
                self.reloads.last_ok = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs());
                line.emit();
                self.settle_after_reload(now);
            }
            Ok(None) => {} // the same routes (a comment, a reordering)
            Err(why) => {
                self.reloads.failed += 1;
                Record::new(Level::Warn, "reload-failed").str("file", &path).str("error", why).str("action", "keeping the routes that run").emit();
            }
        }
    }

    /// Read the routes file now (a *forever* answer just wrote it).
    pub(super) fn reload_now(&mut self, now: Instant) {
        if let Some(watch) = &mut self.watch {
            watch.next = now;
        }
        self.check_reload(now);
    }

    /// Apply the routes of `text` (with the `fixed` ones), or change nothing
    /// and say why. `Ok(None)`: nothing to change.
    fn reload(&mut self, path: &str, text: &str, fixed: Vec<RouteSpec>) -> Result<Option<Record>, String> {
        let mut new = fixed;
        new.extend(cli::routes_in_file(path, text).map_err(|e| e.0)?);
        if new.is_empty() {
            return Err(format!("{path} has no route left (at least one is needed)"));
        }
        let groups = route::doors(&new)?;
        let old: Vec<RouteSpec> = self.specs.iter().map(|(s, _)| s.clone()).collect();
        let diff = route::diff(&old, &new);
        if diff.is_empty() {
            return Ok(None);
        }
        // Everything that can fail, before anything changes: resolve the
        // upstreams of new and changed routes, bind new addresses.
        let mut resolved: Vec<Option<Vec<Vec<SocketAddr>>>> = vec![None; new.len()];
        let mut certs: Vec<Option<Certs>> = (0..new.len()).map(|_| None).collect();
        for j in diff.added.iter().copied().chain(diff.changed.iter().map(|&(_, j)| j)) {
            let Some(spec) = new.get(j) else { continue };
            if let Some(slot) = certs.get_mut(j) {
                *slot = Some(spec.load_tls()?);
            }
            let mut addrs = Vec::new();
            for remote in &spec.upstreams {
                if remote.unix_path().is_some() {
                    addrs.push(vec![sys::UNIX_PEER]);
                    continue;
                }
                match self.resolver.upstream_now(&remote.host, remote.port) {
                    Ok(a) if !a.is_empty() => addrs.push(a),
                    Ok(_) => return Err(format!("{}: {:?} resolved to no address", spec.origin, remote.to_string())),
                    Err(e) => return Err(format!("{}: cannot resolve {:?}: {}", spec.origin, remote.to_string(), sys::describe(&e))),
                }
            }
            if let Some(slot) = resolved.get_mut(j) {
                *slot = Some(addrs);
            }
        }
        let mut bound: Vec<(usize, Bound)> = Vec::new();
        for group in &groups {
            let Some(spec) = group.first().and_then(|&j| new.get(j)) else { continue };
            match self.live_door(spec).and_then(|d| self.doors.get(d)) {
                None => {
                    let l = Door::bind(spec, self.backlog).map_err(|e| format!("{}: cannot listen on {}: {}", spec.origin, spec.place(), sys::describe(&e)))?;
                    bound.push((group.first().copied().unwrap_or_default(), l));
                }
                // Its sockets stay: a DNS server's UDP socket with them.
                Some(d) if d.dns.is_some() != spec.forward.as_ref().is_some_and(|f| f.dns) => {
                    return Err(format!("{}: {} would change between a DNS route and another kind; give the new route another address", spec.origin, spec.listen));
                }
                Some(_) => {}
            }
        }

        // Commit. Each new route's index: the old one's for a kept or changed
        // route, a new one otherwise (filled in below, once its door exists).
        let mut index: Vec<Option<usize>> = vec![None; new.len()];
        for &(i, j) in diff.kept.iter().chain(&diff.changed) {
            if let (Some(slot), Some((_, r))) = (index.get_mut(j), self.specs.get(i)) {
                *slot = Some(*r);
            }
        }
        for &(i, j) in &diff.changed {
            let (Some((_, r)), Some(spec)) = (self.specs.get(i), new.get(j)) else { continue };
            let addrs = resolved.get_mut(j).and_then(Option::take).unwrap_or_default();
            let tls = certs.get_mut(j).and_then(Option::take).unwrap_or_default();
            if let Some(state) = self.shared.routes.get_mut(*r) {
                state.reconfigure(spec, addrs, tls);
            }
        }
        for &i in &diff.removed {
            if let Some(state) = self.specs.get(i).and_then(|(_, r)| self.shared.routes.get_mut(*r)) {
                state.retired = true;
            }
        }
        let mut live = Vec::new();
        for group in &groups {
            let Some((&first, spec)) = group.first().and_then(|j| Some((j, new.get(*j)?))) else { continue };
            let door = match self.live_door(spec) {
                Some(d) => d,
                None => {
                    let Some(pos) = bound.iter().position(|(j, _)| *j == first) else { continue };
                    let (_, listener) = bound.swap_remove(pos);
                    // Its routes' indices are set below, once they exist.
                    let specs: Vec<(usize, &RouteSpec)> = group.iter().filter_map(|&j| Some((usize::MAX, new.get(j)?))).collect();
                    let Some(d) = Door::new(&specs, listener) else { continue };
                    self.doors.push(d);
                    self.doors.len() - 1
                }
            };
            live.push(door);
            let health = self.health;
            for &j in group {
                if index.get(j).copied().flatten().is_none() {
                    let (Some(spec), Some(d)) = (new.get(j), self.doors.get(door)) else { continue };
                    let addrs = resolved.get_mut(j).and_then(Option::take).unwrap_or_default();
                    let tls = certs.get_mut(j).and_then(Option::take).unwrap_or_default();
                    // A route removed earlier and now back: the same one
                    // again (its counters go on), else a new one.
                    let back = self.shared.routes.iter().position(|r| r.retired && r.place.same(&spec.place()) && r.matches == spec.matches && r.client.as_deref() == spec.client());
                    let r = match back {
                        Some(r) => {
                            if let Some(state) = self.shared.routes.get_mut(r) {
                                state.name = spec.forward.as_ref().map_or_else(|| d.name.clone(), |f| f.identity.label(&d.name));
                                state.reconfigure(spec, addrs, tls);
                            }
                            r
                        }
                        None => {
                            self.shared.routes.push(RouteState::new(spec, d, addrs, health, tls));
                            self.shared.routes.len() - 1
                        }
                    };
                    if let Some(slot) = index.get_mut(j) {
                        *slot = Some(r);
                    }
                }
            }
            let routes: Vec<(usize, &RouteSpec)> = group.iter().filter_map(|&j| Some((index.get(j).copied().flatten()?, new.get(j)?))).collect();
            if let Some(d) = self.doors.get_mut(door) {
                d.set_routes(&routes);
            }
        }
        // Addresses no route uses any more: stop accepting there at once.
        let mut closed = Vec::new();
        for i in 0..self.doors.len() {
            if self.doors.get(i).is_some_and(|d| d.is_open()) && !live.contains(&i) {
                self.close_udp_flows(Some(i), "reload");
                let Some(d) = self.doors.get_mut(i) else { continue };
                d.listener = None;
                d.dns = None; // its UDP socket and TCP clients close with it
                d.udp = None;
                closed.push(d.name.clone());
            }
        }
        // As logs call a route: NAME@LISTEN where client= tells it apart.
        let label = |s: &RouteSpec| {
            let place = s.client().map_or_else(|| s.place().to_string(), |name| format!("{name}@{}", s.place()));
            if s.matches.is_default() { place } else { format!("{place} {}", s.matches.label()) }
        };
        let names = |list: Vec<String>| if list.is_empty() { "-".to_string() } else { list.join(",") };
        let line = Record::always("reload") // as the start line: whatever the log level
            .str("file", path)
            .str("added", names(diff.added.iter().filter_map(|&j| new.get(j)).map(label).collect()))
            .str("removed", names(diff.removed.iter().filter_map(|&i| self.specs.get(i)).map(|(s, _)| label(s)).collect()))
            .str("changed", names(diff.changed.iter().filter_map(|&(_, j)| new.get(j)).map(label).collect()))
            .str("closed_listeners", names(closed))
            .num("open_connections", self.conns.len() as u64);
        self.specs = new.into_iter().zip(index).filter_map(|(s, i)| Some((s, i?))).collect();
        Ok(Some(line))
    }

    /// The secrets file, read again when due (as often as the routes file,
    /// or natively after SIGHUP): a changed one is swapped in whole, for the
    /// requests that come next (open connections stay); one that no longer
    /// loads leaves the secrets in force as they were, said once.
    fn check_secrets(&mut self, hup: bool, now: Instant) {
        let keys = &mut self.shared.keys;
        let (Some(file), Some(every)) = (keys.secrets_file.clone(), self.reload_every) else { return };
        if keys.secrets_next.is_some_and(|next| now < next) && !hup {
            return;
        }
        keys.secrets_next = Some(now + every);
        let Ok(text) = std::fs::read_to_string(&file) else { return };
        if keys.secrets_text.as_ref() == Some(&text) {
            return;
        }
        keys.secrets_text = Some(text);
        match crate::secrets::Secrets::load(&file, &|k| std::env::var(k).ok()) {
            Ok(secrets) => {
                let names: Vec<String> = secrets.placeholders().into_iter().map(|(n, _)| n).collect();
                keys.secrets = secrets;
                crate::log::redact(keys.redactions());
                Record::always("reload").str("file", &file).str("secrets", names.join(",")).num("open_connections", self.conns.len() as u64).emit();
            }
            Err(why) => Record::new(Level::Warn, "reload-failed").str("file", &file).str("error", why).str("action", "keeping the secrets in force").emit(),
        }
    }

    /// The door listening where `spec` says now, if any (port 0 never
    /// matches: it asks for a fresh port each time).
    fn live_door(&self, spec: &RouteSpec) -> Option<usize> {
        self.doors.iter().position(|d| d.serves(spec))
    }
}
