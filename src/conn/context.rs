//! What a connection borrows from the proxy on every call (`Context`):
//! its route's name, pool and learned shapes, and what all routes share.
//! A file of its own, below every phase of the connection, so that each
//! phase's file can take it without taking the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::coalesce::Shapes;
use crate::pool::{Outcome, Pool};
use crate::relay::Buffers;
use crate::settings::Dump;
use crate::tls;

/// What a connection borrows from the proxy on every call: its route's
/// name, pool and learned shapes, and what all routes share.
pub struct Context<'a> {
    pub route: &'a str,
    /// On a port routed by name: which of its routes (`sni=app.test`).
    pub backend: Option<&'a str>,
    pub upstreams: &'a mut Pool,
    pub buffers: &'a mut Buffers,
    pub connect_timeout: Duration,
    pub dump: Dump,
    /// TCP_NODELAY really works here: set it on every socket.
    pub nodelay: bool,
    /// The longest a direction may hold a piece (`coalesce`); `None`: never.
    pub coalesce: Option<Duration>,
    /// What the route learned of how its answers arrive, per direction.
    pub shapes: &'a mut Shapes,
    /// A terminating route (`cert=`): its TLS server configuration.
    pub tls: Option<&'a Arc<tls::ServerConfig>>,
    /// An originating route (`upstream-tls`): how to speak TLS to its upstreams.
    pub upstream_tls: Option<&'a tls::Origin>,
    /// The route's upstream is this Unix socket (natively): its pool holds
    /// one server at `sys::UNIX_PEER`.
    pub unix_upstream: Option<&'a std::path::Path>,
    /// What speaks TLS to the origins of opened tunnels (`open=`).
    pub opener: Option<&'a tls::Opener>,
    pub now: Instant,
}

impl Context<'_> {
    /// A connect to `addr` ended: the pool counts it, and what that changed
    /// in the upstream's health is logged.
    pub(super) fn record(&mut self, addr: SocketAddr, outcome: Outcome) {
        if let Some(change) = self.upstreams.record(addr, outcome, self.now) {
            change.log(self.route, addr);
        }
    }
}
