//! Routes grouped by where they listen (a door: one listener, its routes
//! told apart by name), and what a reload changes between two route sets.
//! A file of its own: it reads whole route sets, where `mod.rs` reads one.

use super::spec::RouteSpec;
use crate::forward::Forward;

/// The most listen addresses the proxy keeps at once (each a listener).
pub const MAX_DOORS: usize = 4096;

/// Group routes into doors: the routes on one listen address share one
/// listener and are told apart by name (`sni=`, `alpn=`, `host=`). Returns
/// each door's route indices, doors in the order first given. Port 0 asks
/// for a free port, so such routes never share.
pub fn doors(routes: &[RouteSpec]) -> Result<Vec<Vec<usize>>, String> {
    let mut doors: Vec<Vec<usize>> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if let Some(f) = &r.forward {
            // No accidental open proxy: an empty allowlist is fine on loopback only.
            // A Unix socket is as local as loopback: its file's mode says who reaches it.
            let local = r.listen.ip().is_loopback() || r.unix.is_some();
            if f.report && f.auth.is_none() && !local {
                return Err(format!("{}: report lets every name through: on {} it would be an open proxy; listen on loopback, or add auth=", r.origin, r.listen));
            }
            // In ask mode an empty list lets nothing by without a person.
            if f.to.is_empty() && f.to_nets.is_empty() && f.ask.is_none() && !local {
                return Err(format!(
                    "{}: a forward route on {} with no to= would be an open proxy; list the names it may reach (to=pypi.org,*.github.com), or to=* on purpose",
                    r.origin, r.listen
                ));
            }
            if !r.matches.is_default() {
                return Err(format!("{}: a forward route takes no sni=, alpn= or host=", r.origin));
            }
            if !f.identity.uids.is_empty() && r.unix.is_none() {
                return Err(format!("{}: uid= picks clients of a Unix listener (unix:/PATH=forward;...), whose peer's uid the kernel tells; a TCP client has none: use from=", r.origin));
            }
            if !f.identity.from.is_empty() && r.accept_proxy {
                return Err(format!("{}: from= picks a policy by the TCP peer's address, before any PROXY header is read; use it without accept-proxy", r.origin));
            }
        }
        let door = doors.iter_mut().find(|d| d.first().and_then(|&f| routes.get(f)).is_some_and(|f| f.same_place(r)));
        let Some(door) = door else {
            doors.push(vec![i]);
            continue;
        };
        for other in door.iter().filter_map(|&o| routes.get(o)) {
            let addr = r.listen;
            if let (Some(a), Some(b)) = (&other.forward, &r.forward) {
                shared_forward((other, a), (r, b))?;
                continue;
            }
            if other.matches == r.matches {
                let (a, b) = (&other.origin, &r.origin);
                return Err(if r.matches.is_default() {
                    format!("two routes listen on {addr} and neither says what it serves ({a} and {b}); give each route its own address, or tell them apart with sni=, alpn= or host=")
                } else {
                    format!("two routes on {addr} both serve {} ({a} and {b}); each name needs one route", r.matches.label())
                });
            }
            if other.forward.is_some() || r.forward.is_some() {
                return Err(format!("{} and {}: a forward route needs a listen address of its own ({addr})", other.origin, r.origin));
            }
            if other.acl != r.acl || other.accept_proxy != r.accept_proxy {
                return Err(format!(
                    "the routes on {addr} ({} and {}) differ in allow=, deny= or accept-proxy; they share one listener, so give each the same",
                    other.origin, r.origin
                ));
            }
        }
        door.push(i);
    }
    if doors.len() > MAX_DOORS {
        return Err(format!("the routes listen on {} addresses; wasiter keeps at most {MAX_DOORS} listeners", doors.len()));
    }
    Ok(doors)
}

/// Two forward routes on one listen address: one policy each, told apart
/// by who the client is (`crate::forward::identity`), never by what it sends.
fn shared_forward((a, fa): (&RouteSpec, &Forward), (b, fb): (&RouteSpec, &Forward)) -> Result<(), String> {
    let (ia, ib, addr) = (&fa.identity, &fb.identity, b.place());
    if fa.dns || fb.dns {
        return Err(format!("{} and {}: a DNS route needs a listen address of its own ({addr}); give each client's DNS route its own, with allow=", a.origin, b.origin));
    }
    if ia.name.is_none() || ib.name.is_none() || ia.name == ib.name {
        return Err(format!(
            "{} and {}: forward routes that share {addr} are one policy per client: give each its own client=NAME (and from=CIDR or uid=N to say whose it is)",
            a.origin, b.origin
        ));
    }
    if ia.login && ib.login && fa.auth == fb.auth {
        return Err(format!("{} and {}: two forward routes on {addr} with the same auth=: a login must tell their clients apart", a.origin, b.origin));
    }
    if ia.is_default() && ib.is_default() {
        return Err(format!("{} and {}: two forward routes on {addr} with neither from= nor uid=: only one may be the default for every other client", a.origin, b.origin));
    }
    if a.acl != b.acl || a.accept_proxy != b.accept_proxy || fa.transparent.is_some() != fb.transparent.is_some() {
        return Err(format!("the forward routes on {addr} ({} and {}) differ in allow=, deny=, accept-proxy or transparent=; they share one listener, so give each the same", a.origin, b.origin));
    }
    Ok(())
}

/// What changed between two route sets, by identity: a route is its listen
/// address and what it serves there (`matches`); anything else about it
/// (upstreams, policy, options) may change in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Indices into the new set.
    pub added: Vec<usize>,
    /// Indices into the old set.
    pub removed: Vec<usize>,
    /// (old, new) pairs with the same identity and some other difference.
    pub changed: Vec<(usize, usize)>,
    /// (old, new) pairs that are the same.
    pub kept: Vec<(usize, usize)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Routes on port 0 ask for a fresh port each time: never the same route.
/// UDP and TCP on one port are two routes.
/// Forward routes sharing an address are told apart by their `client=`.
fn same_route(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.same_place(b) && a.matches == b.matches && a.client() == b.client()
}

/// The difference from `old` to `new` (`origin` does not count: a route
/// moved to another line of the file is the same route).
pub fn diff(old: &[RouteSpec], new: &[RouteSpec]) -> Diff {
    let mut d = Diff::default();
    for (j, n) in new.iter().enumerate() {
        match old.iter().position(|o| same_route(o, n)) {
            Some(i) => {
                let same = old.get(i).is_some_and(|o| RouteSpec { origin: n.origin.clone(), ..o.clone() } == *n);
                if same {
                    d.kept.push((i, j));
                } else {
                    d.changed.push((i, j));
                }
            }
            None => d.added.push(j),
        }
    }
    d.removed = (0..old.len()).filter(|i| !d.kept.iter().chain(&d.changed).any(|(o, _)| o == i)).collect();
    d
}

