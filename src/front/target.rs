//! A forward proxy client's destination, as its request (HTTP or SOCKS5)
//! named it and the resolver and the policy completed it. Below the front,
//! which keeps one per client.

use std::net::SocketAddr;

use crate::forward::Parent;
use crate::http1::Exchange;

/// A forward proxy client's destination.
#[derive(Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// CONNECT (answer 200 once connected), or a plain HTTP request.
    pub tunnel: bool,
    /// Its addresses, once resolved and allowed.
    pub addrs: Vec<SocketAddr>,
    /// A plain request: its framing, and what the client sent after it.
    pub exchange: Option<Box<Exchange>>,
    /// The parent proxy it goes through (`addrs` are then the parent's).
    pub parent: Option<Parent>,
    /// A request inside a tunnel the proxy opened (`open=`): it goes to the
    /// destination over TLS of the proxy's own, for the name `host`.
    pub opened: bool,
}
