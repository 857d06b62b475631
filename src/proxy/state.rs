//! What the loop keeps per listen address (a `Door`: listener, who may
//! connect, how its routes are picked) and per route (pool, counters,
//! learned shapes), what every connection borrows from them on each call,
//! and its schedules (the summary line, the routes file watched).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::coalesce::Shapes;
use crate::conn::Context;
use crate::forward::Forward;
use crate::front::Rules;
use crate::ledger::Destinations;
use crate::metrics::Stats;
use crate::names::{Match, Table};
use crate::pool::{FailPolicy, Pool};
use crate::relay::Buffers;
use crate::route::{Acl, Place, ProxyVersion, RouteSpec};
use crate::settings::Dump;
use crate::dns_server::DnsServer;
use crate::udp_relay::UdpRelay;
use crate::sys::{Datagram, Listener};
use crate::secrets::Secrets;
use crate::tls;

/// One listen address at run time: its listener, and what its clients pass
/// before a route is picked (`front`).
pub struct Door {
    /// The address it really listens on (it may say port 0): the `route`
    /// of logs and metrics.
    pub(super) name: String,
    /// Where it listens, as configured (what a reload compares).
    pub(super) place: Place,
    /// `None` once a reload removed every route of this address: it stops
    /// accepting at once; what is open finishes.
    pub(super) listener: Option<Listener>,
    pub(super) acl: Acl,
    pub(super) accept_proxy: bool,
    /// Its routes, by what they serve.
    pub(super) table: Table,
    /// Forward routes: one policy each, for the clients each claims
    /// (`crate::forward::identity`); the door's only routes then.
    pub(super) forward: Vec<Policy>,
    /// Those of them chosen by a login (`client=` and `auth=` alone).
    pub(super) logins: Vec<crate::forward::identity::LoginPolicy>,
    /// `LISTEN=dns;...`: the allowlist DNS server, whose TCP clients the
    /// listener hands over and whose UDP socket is bound beside it.
    pub(super) dns: Option<DnsServer>,
    /// `udp:LISTEN=...`: the UDP relay, with no listener beside it.
    pub(super) udp: Option<UdpRelay>,
    /// On a port routed by name, what happened before a route was picked
    /// (accepted, denied, no route, ...). A plain port counts all of it on
    /// its one route.
    pub(super) stats: Stats,
}

impl Door {
    /// The door of `routes` (index and spec; they agree on the listener's
    /// options, as `route::doors` checked), listening on `listener`.
    pub fn new(routes: &[(usize, &RouteSpec)], bound: Bound) -> Option<Door> {
        let &(_, first) = routes.first()?;
        let Bound { listener, dns, udp } = bound;
        let name = match (&listener, &udp) {
            (Some(_), _) if first.unix.is_some() => first.place().to_string(),
            (Some(l), _) => l.local_addr().unwrap_or(first.listen).to_string(),
            (None, Some(u)) => format!("udp:{}", u.local_addr().unwrap_or(first.listen)),
            (None, None) => return None,
        };
        let mut door = Door {
            name,
            place: first.place(),
            listener,
            dns,
            udp,
            acl: Acl::default(),
            accept_proxy: false,
            table: Table::default(),
            forward: Vec::new(),
            logins: Vec::new(),
            stats: Stats::default(),
        };
        door.set_routes(routes);
        Some(door)
    }

    /// Take these routes (route index, spec): the listener's options, and
    /// the table that picks among them. At start, and on a reload.
    pub(super) fn set_routes(&mut self, routes: &[(usize, &RouteSpec)]) {
        if let Some(&(_, first)) = routes.first() {
            self.acl = first.acl.clone();
            self.accept_proxy = first.accept_proxy;
        }
        self.table = Table::new(routes.iter().map(|(i, r)| (r.matches.clone(), *i)));
        let name = &self.name;
        self.forward = routes
            .iter()
            .filter_map(|(i, r)| {
                let forward = r.forward.clone()?;
                Some(Policy { route: *i, label: forward.identity.label(name), forward })
            })
            .collect();
        self.logins = self
            .forward
            .iter()
            .enumerate()
            .filter(|(_, p)| p.forward.identity.login)
            .filter_map(|(_, p)| Some(crate::forward::identity::LoginPolicy { policy: p.route, login: p.forward.auth.clone()?, name: p.forward.identity.name.clone() }))
            .collect();
        if let (Some(relay), Some(settings)) = (self.udp.as_mut(), routes.first().and_then(|(_, r)| r.udp)) {
            relay.set(settings);
        }
    }

    /// It still takes clients (a reload has not removed its routes).
    pub(super) fn is_open(&self) -> bool {
        self.listener.is_some() || self.udp.is_some()
    }

    /// It listens where `spec` says, the same way (TCP or UDP).
    pub(super) fn serves(&self, spec: &RouteSpec) -> bool {
        self.is_open() && self.place.same(&spec.place())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Listen where `spec` says: its TCP listener, and for a DNS route the
    /// UDP socket on the same address and port; a UDP route's socket alone.
    /// `backlog`: how many clients a listener's queue holds (`--backlog`).
    pub fn bind(spec: &RouteSpec, backlog: u32) -> std::io::Result<Bound> {
        if let Some(u) = &spec.unix {
            let listener = Listener::bind_unix(std::path::Path::new(&u.path), u.mode, u.owner, backlog)?;
            return Ok(Bound { listener: Some(listener), dns: None, udp: None });
        }
        if let Some(settings) = spec.udp {
            let udp = UdpRelay::new(Datagram::bind(spec.listen)?, settings);
            return Ok(Bound { listener: None, dns: None, udp: Some(udp) });
        }
        let listener = Listener::bind(spec.listen, backlog)?;
        let dns = match spec.forward.as_ref().is_some_and(|f| f.dns) {
            true => Some(DnsServer::new(Datagram::bind(listener.local_addr()?)?)),
            false => None,
        };
        Ok(Bound { listener: Some(listener), dns, udp: None })
    }

    /// A UDP door's buffers as granted (receive, send), and whether the
    /// kernel's drops are counted on this platform.
    pub fn udp_buffers(&self) -> Option<(usize, usize, bool)> {
        let relay = self.udp.as_ref()?;
        let (rcv, snd) = relay.granted?;
        Some((rcv, snd, relay.kernel_dropped().is_some()))
    }

    /// What a client of the policy of route `policy` (`Front::policy`)
    /// passes through.
    pub(super) fn rules<'a>(&'a self, policy: usize, header_timeout: Duration, peek_timeout: Duration, keys: &'a Keys, asks: &'a crate::ask::Board) -> Rules<'a> {
        let chosen = self.policy(policy);
        let forward = chosen.map(|p| (p.route, &p.forward));
        let route = chosen.map_or(self.name.as_str(), |p| p.label.as_str());
        let unclaimed = !self.forward.is_empty() && chosen.is_none();
        Rules { acl: &self.acl, accept_proxy: self.accept_proxy, table: &self.table, forward, unclaimed, logins: &self.logins, header_timeout, peek_timeout, opener: keys.opener.as_ref(), secrets: &keys.secrets, asks, route }
    }

    /// Which of its forward policies a client gets, by what it cannot
    /// change: its address (a TCP peer's) and its uid (a Unix peer's).
    /// Its route index; `None`: a forward door with no policy for it
    /// (refused at once).
    pub(super) fn policy_for(&self, peer: SocketAddr, uid: Option<u32>) -> Option<usize> {
        let ip = (!matches!(self.place, Place::Unix(_))).then(|| peer.ip());
        let chosen = crate::forward::identity::choose(self.forward.iter().map(|p| &p.forward.identity), ip, uid)?;
        self.forward.get(chosen).map(|p| p.route)
    }

    /// The policy of forward route `route`, if this door has it. By route
    /// index, which a reload keeps for a route it keeps or changes, so a
    /// client waiting through a reload stays with its own policy (or, its
    /// route gone, with none).
    pub(super) fn policy(&self, route: usize) -> Option<&Policy> {
        self.forward.iter().find(|p| p.route == route)
    }

    /// Where this door counts a client (of forward policy `policy`) that
    /// has no route yet.
    pub(super) fn stats<'a>(&'a mut self, policy: usize, routes: &'a mut [RouteState]) -> Option<&'a mut Stats> {
        match self.counted_on(policy) {
            Counted::Door => Some(&mut self.stats),
            Counted::Route(r) => Some(&mut routes.get_mut(r?)?.stats),
        }
    }

    /// The clients it took (the summary line): a forward door's on each
    /// of its policies' routes.
    pub(super) fn accepted(&self, routes: &[RouteState]) -> u64 {
        let on = |c: Counted| match c {
            Counted::Door => self.stats.connections,
            Counted::Route(r) => r.and_then(|r| routes.get(r)).map_or(0, |r| r.stats.connections),
        };
        match self.forward.len() {
            0 => on(self.counted_on(0)),
            _ => self.forward.iter().map(|p| on(self.counted_on(p.route))).sum::<u64>() + self.stats.connections,
        }
    }

    /// A port routed by name counts its own clients until a route is
    /// picked; a plain port counts them on its one route.
    fn counted_on(&self, policy: usize) -> Counted {
        if !self.forward.is_empty() {
            // A client no policy claims is counted at the door.
            self.policy(policy).map_or(Counted::Door, |p| Counted::Route(Some(p.route)))
        } else if self.table.peeks() {
            Counted::Door
        } else {
            Counted::Route(self.table.default_route())
        }
    }
}

/// A forward route at its door: its route index, its policy, and what
/// logs and metrics call it (`NAME@LISTEN` with `client=NAME`).
pub struct Policy {
    pub(super) route: usize,
    pub(super) forward: Forward,
    pub(super) label: String,
}

/// A door's sockets, bound before it is made (so a start or reload that
/// cannot listen fails before it changes anything).
pub struct Bound {
    listener: Option<Listener>,
    dns: Option<DnsServer>,
    udp: Option<UdpRelay>,
}

/// Where a door counts the clients it has not routed yet.
enum Counted {
    Door,
    Route(Option<usize>),
}

/// One route at run time: its pool, rules and counters.
pub struct RouteState {
    /// Its listen address (as its door's name).
    pub(super) name: String,
    /// On a port routed by name, what it serves (`sni=app.test`).
    pub(super) backend: Option<String>,
    pub(super) pool: Pool,
    pub(super) stats: Stats,
    pub(super) send_proxy: Option<ProxyVersion>,
    /// A forward route: the hosts its clients asked for.
    pub(super) destinations: Option<Destinations>,
    /// Who it is, for a reload: where it listens as configured (a UDP
    /// route's pool gets no TCP health checks) and what it serves there.
    pub(super) place: Place,
    pub(super) matches: Match,
    /// A forward route's `client=`, which tells it from others on its address.
    pub(super) client: Option<String>,
    /// `...=unix:/path`: its one upstream is a Unix socket (no checks either).
    pub(super) unix_upstream: Option<std::path::PathBuf>,
    /// A reload removed it: it takes no new client (none can reach it) and
    /// is no longer checked or resolved; its open connections finish.
    pub(super) retired: bool,
    /// How answers arrive in each direction, as its connections learned it
    /// (`coalesce`).
    pub(super) shapes: Shapes,
    /// `cert=`: its TLS server configuration, certificate loaded.
    pub(super) tls: Option<Arc<tls::ServerConfig>>,
    /// `upstream-tls`: how it speaks TLS to its upstreams.
    pub(super) upstream_tls: Option<tls::Origin>,
}

/// A route's Unix-socket upstream, if that is what it has.
fn unix_upstream(spec: &RouteSpec) -> Option<std::path::PathBuf> {
    spec.upstreams.first().and_then(|u| u.unix_path()).map(std::path::PathBuf::from)
}

/// A route's TLS, both ways, loaded from its files (`RouteSpec::load_tls`).
pub type Certs = (Option<Arc<tls::ServerConfig>>, Option<tls::Origin>);

impl RouteState {
    /// A route of `door`; `resolved[i]` holds the addresses of `spec.upstreams[i]`.
    pub fn new(spec: &RouteSpec, door: &Door, resolved: Vec<Vec<SocketAddr>>, health: FailPolicy, (tls, upstream_tls): Certs) -> RouteState {
        RouteState {
            name: spec.forward.as_ref().map_or_else(|| door.name.clone(), |f| f.identity.label(&door.name)),
            client: spec.client().map(str::to_string),
            backend: door.table.peeks().then(|| spec.matches.label()),
            pool: Pool::new(spec.upstreams.clone(), resolved, spec.policy, health),
            stats: Stats::default(),
            send_proxy: spec.send_proxy,
            destinations: spec.forward.as_ref().map(|_| Destinations::default()),
            place: spec.place(),
            matches: spec.matches.clone(),
            unix_upstream: unix_upstream(spec),
            retired: false,
            shapes: Shapes::default(),
            tls,
            upstream_tls,
        }
    }

    /// A reload changed this route (the same listen address and names):
    /// new upstreams and options for new connections; servers that stay
    /// keep their state; open connections keep their upstream.
    pub(super) fn reconfigure(&mut self, spec: &RouteSpec, resolved: Vec<Vec<SocketAddr>>, (tls, upstream_tls): Certs) {
        self.pool.reconfigure(spec.upstreams.clone(), resolved, spec.policy);
        self.unix_upstream = unix_upstream(spec);
        self.send_proxy = spec.send_proxy;
        self.tls = tls;
        self.upstream_tls = upstream_tls;
        if spec.forward.is_some() && self.destinations.is_none() {
            self.destinations = Some(Destinations::default());
        }
        self.retired = false;
    }

    /// What it serves on a port routed by name (`sni=app.test`), else `None`.
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// Every upstream address, comma-separated, for the start line.
    pub fn upstream_list(&self) -> String {
        let addrs: Vec<String> = self.pool.servers.iter().map(|s| crate::sys::show(s.addr).to_string()).collect();
        addrs.join(",")
    }
}

/// What every connection borrows, kept apart from the connection table so
/// both can be borrowed at once.
pub(super) struct Shared {
    pub(super) routes: Vec<RouteState>,
    pub(super) buffers: Buffers,
    pub(super) connect_timeout: Duration,
    pub(super) dump: Dump,
    pub(super) nodelay: bool,
    pub(super) coalesce: Option<Duration>,
    pub(super) keys: Keys,
}

impl Keys {
    /// What no log line may carry: each value, as text and as the hex dump
    /// writes it, with its placeholder written instead (`log::redact`).
    pub(super) fn redactions(&self) -> Vec<(String, String)> {
        use crate::dump::hex;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.secrets.entries().iter().flat_map(|e| [(text(&e.value), text(&e.placeholder)), (hex(&e.value), hex(&e.placeholder))]).collect()
    }
}

/// What keeps credentials out of the sandbox: the CA that opens TLS for
/// `open=` names, and the secrets swapped in (`crate::secrets`), read again
/// from their file by a reload.
#[derive(Default)]
pub struct Keys {
    pub opener: Option<tls::Opener>,
    pub secrets: Secrets,
    pub secrets_file: Option<String>,
    /// The secrets file's text when last read, and when to look again.
    pub(super) secrets_text: Option<String>,
    pub(super) secrets_next: Option<Instant>,
}

impl Shared {
    /// What a connection of `route` borrows, and the route's counters.
    pub(super) fn context(&mut self, route: usize, now: Instant) -> Option<(Context<'_>, &mut Stats)> {
        let r = self.routes.get_mut(route)?;
        let cx = Context {
            route: &r.name,
            backend: r.backend.as_deref(),
            upstreams: &mut r.pool,
            buffers: &mut self.buffers,
            connect_timeout: self.connect_timeout,
            dump: self.dump,
            nodelay: self.nodelay,
            coalesce: self.coalesce,
            shapes: &mut r.shapes,
            tls: r.tls.as_ref(),
            upstream_tls: r.upstream_tls.as_ref(),
            unix_upstream: r.unix_upstream.as_deref(),
            opener: self.keys.opener.as_ref(),
            now,
        };
        Some((cx, &mut r.stats))
    }
}

/// The periodic summary line (`--summary-interval`).
/// The metrics and admin listeners (one, when they share an address), what
/// each serves, and the admin side's gate (`admin.rs`).
#[derive(Default)]
pub struct Served {
    pub listeners: Vec<(Listener, crate::served::Serves)>,
    pub admin: Option<crate::ask::admin::Gate>,
}

pub(super) struct Summary {
    pub(super) every: Duration,
    pub(super) next: Instant,
    /// Byte counters at the last summary, for the rates.
    pub(super) last: (u64, u64),
}

/// The routes file, watched.
pub(super) struct Watch {
    pub(super) path: String,
    pub(super) every: Duration,
    pub(super) next: Instant,
    /// The text last read (applied or not): a reload happens when it
    /// changes. `None` while the file cannot be read (said once).
    pub(super) text: Option<String>,
    /// Routes given by flags or environment, which a reload keeps as they are.
    pub(super) fixed: Vec<RouteSpec>,
}

/// For the start: how a Proxy watches its routes file.
pub(super) fn watch(path: Option<&str>, every: Option<Duration>, routes: &[RouteSpec], now: Instant) -> Option<Watch> {
    let (path, every) = (path?, every?);
    let text = std::fs::read_to_string(path).ok();
    let prefix = format!("{path}, line ");
    let fixed = routes.iter().filter(|r| !r.origin.starts_with(&prefix)).cloned().collect();
    Some(Watch { path: path.to_string(), every, next: now + every, text, fixed })
}
