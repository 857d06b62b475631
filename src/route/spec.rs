//! A route's parts once read: where it listens, its upstreams (`Remote`),
//! how a pool picks (`Policy`), who may connect (`Acl`), its UDP and Unix
//! options, and the route itself (`RouteSpec`). A file of its own, below
//! the parser (`mod.rs`), the ends (`ends.rs`) and the route sets
//! (`doors.rs`), which all take these types.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::forward::Forward;
use crate::names::Match;

/// An upstream as the user wrote it: resolved later, by the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub port: u16,
}

impl Remote {
    /// A literal IP needs no resolving (and no re-resolving).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `unix:/path`: a Unix socket (natively), written as the host with port 0.
    pub fn unix_path(&self) -> Option<&str> {
        self.host.strip_prefix("unix:")
    }

    /// Nothing to look up: a literal IP or a Unix socket's path.
    pub fn is_fixed(&self) -> bool {
        self.ip().is_some() || self.unix_path().is_some()
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unix_path().is_some() {
            f.write_str(&self.host)
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How a pool picks an upstream for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The first healthy upstream in the order given.
    Failover,
    /// Each healthy upstream in turn.
    RoundRobin,
    /// The healthy upstream with the fewest open connections.
    LeastConn,
}

impl Policy {
    /// As written in a route.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::RoundRobin => "round-robin",
            Policy::LeastConn => "least-conn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

/// Who may connect: deny wins; a non-empty allow list admits only its ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl Acl {
    pub fn permits(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let hit = |list: &[IpNet]| list.iter().any(|net| net.contains(&ip));
        !hit(&self.deny) && (self.allow.is_empty() || hit(&self.allow))
    }

    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Where it was given (REMOTE, --route, a file and line), for messages.
    pub origin: String,
    pub listen: SocketAddr,
    pub upstreams: Vec<Remote>,
    pub policy: Policy,
    pub acl: Acl,
    pub send_proxy: Option<ProxyVersion>,
    pub accept_proxy: bool,
    /// What it serves on a shared port; empty: everything else.
    pub matches: Match,
    /// `forward`: a forward proxy, the client names the destination.
    pub forward: Option<Forward>,
    /// `cert=` and `key=`: TLS is terminated here (see `tls`).
    pub tls: Option<TlsFiles>,
    /// `upstream-tls` and its options: TLS is spoken to the upstreams.
    pub upstream_tls: Option<UpstreamTls>,
    /// `udp:`: a datagram relay, with its flows' bounds.
    pub udp: Option<Udp>,
    /// `unix:/path=...`: it listens on a Unix socket (natively), and
    /// `listen` is `UNIX_LISTEN`.
    pub unix: Option<UnixListen>,
}

/// `cert=` and `key=`: a terminating route's certificate chain and key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

/// `upstream-tls` and its options: `upstream-ca=`, `upstream-name=`,
/// `upstream-insecure` (each implies `upstream-tls`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    pub ca: Option<String>,
    pub name: Option<String>,
    pub insecure: bool,
}

/// A Unix socket to listen on, with its file's mode and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixListen {
    pub path: String,
    /// `mode=0660` (octal), else what the umask gives.
    pub mode: Option<u32>,
    /// `owner=UID[:GID]` (numbers), else the proxy's.
    pub owner: Option<(u32, Option<u32>)>,
}

/// What `listen` says for a route on a Unix socket (no IP address: port 0,
/// so it never shares a door by address; its identity is its path).
pub const UNIX_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

impl RouteSpec {
    /// Where it listens, and how: its identity for doors and reloads, and
    /// in messages `IP:PORT`, `udp:IP:PORT` or `unix:/path`.
    pub fn place(&self) -> Place {
        match (&self.unix, self.udp) {
            (Some(u), _) => Place::Unix(u.path.clone()),
            (None, Some(_)) => Place::Udp(self.listen),
            (None, None) => Place::Tcp(self.listen),
        }
    }

    /// Listens where `other` does, the same way (a reload keeps its door).
    pub fn same_place(&self, other: &RouteSpec) -> bool {
        self.place().same(&other.place())
    }

    /// A forward route's `client=` name: what tells it from the others on
    /// its address (`crate::forward::identity`).
    pub fn client(&self) -> Option<&str> {
        self.forward.as_ref().and_then(|f| f.identity.name.as_deref())
    }
}

/// Where a route listens: a TCP or UDP address, or a Unix socket's path.
/// UDP and TCP on one port are two places.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(String),
}

impl Place {
    /// The same place as `other`; never for port 0, which asks for a fresh
    /// port each time.
    pub fn same(&self, other: &Place) -> bool {
        self == other && !matches!(self, Place::Tcp(a) | Place::Udp(a) if a.port() == 0)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Tcp(a) => write!(f, "{a}"),
            Place::Udp(a) => write!(f, "udp:{a}"),
            Place::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}

/// A UDP relay route's flows (one per client address, each with its own
/// upstream socket): how long a silent one lives and how many there may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp {
    /// `idle=`: a flow with no datagram either way for this long closes.
    /// 30 s, as Linux conntrack keeps an unanswered UDP flow; a DNS relay
    /// wants a few seconds (`idle=5s`), a game or media server minutes.
    pub idle: Duration,
    /// `flows=`: past it, the flow idle longest is closed for the new one.
    pub flows: usize,
}

impl Default for Udp {
    fn default() -> Udp {
        Udp { idle: Duration::from_secs(30), flows: 1024 }
    }
}

/// The most flows one UDP route may keep (each is a socket).
pub const MAX_FLOWS: usize = 65_000;

impl RouteSpec {
    /// Its TLS, both ways, its files read now: the server side if it
    /// terminates TLS, the client side if it originates it. The error names
    /// the route.
    pub fn load_tls(&self) -> Result<(Option<std::sync::Arc<crate::tls::ServerConfig>>, Option<crate::tls::Origin>), String> {
        let server = match &self.tls {
            None => None,
            Some(files) => Some(crate::tls::server_config(&files.cert, &files.key, &self.matches.alpn).map_err(|e| format!("{}: {e}", self.origin))?),
        };
        let origin = match &self.upstream_tls {
            None => None,
            Some(up) => {
                let options = crate::tls::Upstream { ca: up.ca.as_deref(), name: up.name.as_deref(), insecure: up.insecure };
                Some(crate::tls::origin(&self.origin, &options, self.upstreams.first().map(|r| r.host.as_str()))?)
            }
        };
        Ok((server, origin))
    }
}
