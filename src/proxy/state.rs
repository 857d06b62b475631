//! What the loop keeps per route (listener, pool, rules, counters, learned
//! shapes), and what every connection borrows from it on each call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::coalesce::Shapes;
use crate::conn::Context;
use crate::metrics::Stats;
use crate::pool::{FailPolicy, Pool};
use crate::relay::Buffers;
use crate::route::{Acl, ProxyVersion, RouteSpec};
use crate::settings::Dump;
use crate::sys::Listener;

/// One route at run time: its listener, pool, rules and counters.
pub struct RouteState {
    pub(super) name: String,
    pub(super) listener: Listener,
    pub(super) pool: Pool,
    pub(super) stats: Stats,
    pub(super) acl: Acl,
    pub(super) send_proxy: Option<ProxyVersion>,
    pub(super) accept_proxy: bool,
    /// How answers arrive in each direction, as its connections learned it
    /// (`coalesce`).
    pub(super) shapes: Shapes,
}

impl RouteState {
    /// `resolved[i]` holds the addresses of `spec.upstreams[i]`.
    pub fn new(spec: &RouteSpec, listener: Listener, resolved: Vec<Vec<SocketAddr>>, health: FailPolicy) -> RouteState {
        // A route is named by the address it really listens on (it may say port 0).
        let name = listener.local_addr().unwrap_or(spec.listen).to_string();
        RouteState {
            name,
            listener,
            pool: Pool::new(spec.upstreams.clone(), resolved, spec.policy, health),
            stats: Stats::default(),
            acl: spec.acl.clone(),
            send_proxy: spec.send_proxy,
            accept_proxy: spec.accept_proxy,
            shapes: Shapes::default(),
        }
    }

    /// The address it listens on, as a string: its name in logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every upstream address, comma-separated, for the start line.
    pub fn upstream_list(&self) -> String {
        let addrs: Vec<String> = self.pool.servers.iter().map(|s| s.addr.to_string()).collect();
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
}

impl Shared {
    /// What a connection of `route` borrows, and the route's counters.
    pub(super) fn context(&mut self, route: usize, now: Instant) -> Option<(Context<'_>, &mut Stats)> {
        let r = self.routes.get_mut(route)?;
        let cx = Context {
            route: &r.name,
            upstreams: &mut r.pool,
            buffers: &mut self.buffers,
            connect_timeout: self.connect_timeout,
            dump: self.dump,
            nodelay: self.nodelay,
            coalesce: self.coalesce,
            shapes: &mut r.shapes,
            now,
        };
        Some((cx, &mut r.stats))
    }
}
