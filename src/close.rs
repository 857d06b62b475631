//! Why a connection ended, and the one place its close record is written:
//! what the front (a client turned away before it is a connection) and the
//! connection itself (`conn`) both say, so that neither needs the other's.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::log::{Level, Record};
use crate::names::Asked;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// Why a connection ended: the `reason=` of its close line.
#[derive(Debug)]
pub enum Reason {
    /// Both directions finished; this side sent its FIN first.
    Closed(Side),
    /// A read or write on this side failed (a reset, mostly).
    Error(Side, io::Error),
    ConnectFailed(io::Error),
    ConnectTimeout,
    IdleTimeout,
    /// The route's allow/deny lists refused the client.
    Denied,
    /// Every upstream of the route is in its cool-down: nothing to try.
    NoUpstream(usize),
    /// accept-proxy: the client's PROXY header was malformed or missing.
    BadProxyHeader(String),
    /// A port routed by name: no route for the name asked (and no default).
    NoRoute,
    /// A port routed by name: the first bytes were not a ClientHello...
    BadClientHello(String),
    /// ...or not an HTTP/1.x request head...
    BadRequest(String),
    /// ...or larger than the peek takes...
    PeekTooLarge(String),
    /// ...or did not come in time (this many bytes had).
    PeekTimeout(usize),
    /// A forward route: the destination is not allowed (the rule that says so).
    Forbidden(String),
    /// A forward route: the client used its `budget=` for the name (before
    /// the request, or while its connection ran).
    OverBudget(String),
    /// A forward route with auth=: no login, or a wrong one.
    ProxyAuth(String),
    /// A forward route: a SOCKS greeting or request that is malformed, or
    /// asks for what is not served (BIND, UDP ASSOCIATE, SOCKS4).
    BadSocks(String),
    /// A forward route: the destination's name has no address, or DNS failed...
    DnsFailed(String),
    /// ...or no answer came in time (for this host).
    DnsTimeout(String),
    /// A forward route's parent proxy refused the tunnel (its status, if
    /// it answered) or failed, in words.
    Parent(Option<u16>, String),
    /// A forward proxy's plain request was answered, and its client goes on
    /// (its next request is checked on its own): this exchange's record.
    Answered,
    /// A CONNECT tunnel's first bytes asked for another name than the
    /// tunnel's (`bind`): both names.
    NameMismatch(String),
    /// A CONNECT tunnel to port 443 that did not start with TLS.
    NotTls(String),
    /// A tunnel to a port not in `opaque=` whose bytes are neither TLS nor
    /// an HTTP/1.x request that can be read.
    NotHttp(String),
    /// TLS failed on this side (a handshake, a certificate not trusted, a
    /// record that did not decrypt), with rustls' words for it.
    Tls(Side, String),
}

/// The kinds of close, without their details: the `reason=` values, and the
/// index of each one's counter (`metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    ClientClosed,
    UpstreamClosed,
    ClientError,
    UpstreamError,
    ConnectFailed,
    ConnectTimeout,
    IdleTimeout,
    Denied,
    NoUpstream,
    BadProxyHeader,
    NoRoute,
    BadClientHello,
    BadRequest,
    PeekTooLarge,
    PeekTimeout,
    Forbidden,
    ProxyAuth,
    BadSocks,
    DnsFailed,
    DnsTimeout,
    Parent,
    Tls,
    UpstreamTls,
    SniMismatch,
    TunnelNotTls,
    Answered,
    TunnelNotHttp,
    OverBudget,
}

impl Close {
    /// Every kind, in counter order.
    pub const ALL: [Close; 28] = [
        Close::ClientClosed,
        Close::UpstreamClosed,
        Close::ClientError,
        Close::UpstreamError,
        Close::ConnectFailed,
        Close::ConnectTimeout,
        Close::IdleTimeout,
        Close::Denied,
        Close::NoUpstream,
        Close::BadProxyHeader,
        Close::NoRoute,
        Close::BadClientHello,
        Close::BadRequest,
        Close::PeekTooLarge,
        Close::PeekTimeout,
        Close::Forbidden,
        Close::ProxyAuth,
        Close::BadSocks,
        Close::DnsFailed,
        Close::DnsTimeout,
        Close::Parent,
        Close::Tls,
        Close::UpstreamTls,
        Close::SniMismatch,
        Close::TunnelNotTls,
        Close::Answered,
        Close::TunnelNotHttp,
        Close::OverBudget,
    ];

    /// The `reason=` value.
    pub fn name(self) -> &'static str {
        match self {
            Close::ClientClosed => "client-closed",
            Close::UpstreamClosed => "upstream-closed",
            Close::ClientError => "client-error",
            Close::UpstreamError => "upstream-error",
            Close::ConnectFailed => "connect-failed",
            Close::ConnectTimeout => "connect-timeout",
            Close::IdleTimeout => "idle-timeout",
            Close::Denied => "denied",
            Close::NoUpstream => "no-upstream",
            Close::BadProxyHeader => "bad-proxy-header",
            Close::NoRoute => "no-route",
            Close::BadClientHello => "bad-client-hello",
            Close::BadRequest => "bad-request",
            Close::PeekTooLarge => "peek-too-large",
            Close::PeekTimeout => "peek-timeout",
            Close::Forbidden => "forbidden",
            Close::ProxyAuth => "proxy-auth",
            Close::BadSocks => "bad-socks",
            Close::DnsFailed => "dns-failed",
            Close::DnsTimeout => "dns-timeout",
            Close::Parent => "parent",
            Close::Tls => "tls",
            Close::UpstreamTls => "upstream-tls",
            Close::SniMismatch => "sni-mismatch",
            Close::OverBudget => "over-budget",
            Close::TunnelNotTls => "tunnel-not-tls",
            Close::Answered => "answered",
            Close::TunnelNotHttp => "tunnel-not-http",
        }
    }
}

impl Reason {
    pub fn kind(&self) -> Close {
        match self {
            Reason::Closed(Side::Client) => Close::ClientClosed,
            Reason::Closed(Side::Upstream) => Close::UpstreamClosed,
            Reason::Error(Side::Client, _) => Close::ClientError,
            Reason::Error(Side::Upstream, _) => Close::UpstreamError,
            Reason::ConnectFailed(_) => Close::ConnectFailed,
            Reason::ConnectTimeout => Close::ConnectTimeout,
            Reason::IdleTimeout => Close::IdleTimeout,
            Reason::Denied => Close::Denied,
            Reason::NoUpstream(_) => Close::NoUpstream,
            Reason::BadProxyHeader(_) => Close::BadProxyHeader,
            Reason::NoRoute => Close::NoRoute,
            Reason::BadClientHello(_) => Close::BadClientHello,
            Reason::BadRequest(_) => Close::BadRequest,
            Reason::PeekTooLarge(_) => Close::PeekTooLarge,
            Reason::PeekTimeout(_) => Close::PeekTimeout,
            Reason::Forbidden(_) => Close::Forbidden,
            Reason::OverBudget(_) => Close::OverBudget,
            Reason::ProxyAuth(_) => Close::ProxyAuth,
            Reason::BadSocks(_) => Close::BadSocks,
            Reason::DnsFailed(_) => Close::DnsFailed,
            Reason::DnsTimeout(_) => Close::DnsTimeout,
            Reason::Parent(..) => Close::Parent,
            Reason::Tls(Side::Client, _) => Close::Tls,
            Reason::Tls(Side::Upstream, _) => Close::UpstreamTls,
            Reason::NameMismatch(_) => Close::SniMismatch,
            Reason::NotTls(_) => Close::TunnelNotTls,
            Reason::Answered => Close::Answered,
            Reason::NotHttp(_) => Close::TunnelNotHttp,
        }
    }

    /// The `reason=` value.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// A forward policy's rule that this close carries out (a tunnel's
    /// first bytes refused), if any.
    pub fn rule(&self) -> Option<crate::forward::Rule> {
        match self {
            Reason::NameMismatch(_) => Some(crate::forward::Rule::SniMismatch),
            Reason::NotTls(_) => Some(crate::forward::Rule::NotTls),
            Reason::NotHttp(_) => Some(crate::forward::Rule::NotHttp),
            Reason::OverBudget(_) => Some(crate::forward::Rule::Budget),
            _ => None,
        }
    }

    /// Ended by a fault or a timeout rather than by both sides finishing:
    /// the sockets are reset, not closed gracefully, so that nothing waits
    /// in FIN_WAIT_2 or CLOSE_WAIT for a peer that may never answer.
    pub fn is_abort(&self) -> bool {
        matches!(self, Reason::Error(..) | Reason::IdleTimeout)
    }

    /// The `error=` of the close line, if any.
    pub fn error(&self) -> Option<String> {
        match self {
            Reason::Error(_, e) | Reason::ConnectFailed(e) => Some(crate::sys::describe(e)),
            Reason::NoUpstream(n) => Some(format!("all {n} upstream addresses are down (cooling down after failures)")),
            Reason::BadProxyHeader(why)
            | Reason::BadClientHello(why)
            | Reason::BadRequest(why)
            | Reason::PeekTooLarge(why)
            | Reason::Forbidden(why)
            | Reason::OverBudget(why)
            | Reason::ProxyAuth(why)
            | Reason::BadSocks(why)
            | Reason::DnsFailed(why)
            | Reason::Parent(_, why)
            | Reason::NameMismatch(why)
            | Reason::NotTls(why)
            | Reason::NotHttp(why)
            | Reason::Tls(_, why) => Some(why.clone()),
            Reason::DnsTimeout(host) => Some(format!("{host}: no DNS answer in time")),
            Reason::PeekTimeout(n) => Some(format!("no complete ClientHello or request head in time ({n} bytes read)")),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            Some(e) => write!(f, "{}: {e}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// Who a close (or open) record is about: the connection, its route (and
/// backend, on a port routed by name), its client, and the name it asked.
pub struct Who<'a> {
    pub id: u64,
    pub route: &'a str,
    pub backend: Option<&'a str>,
    pub client: SocketAddr,
    pub asked: Option<&'a Asked>,
}

impl Who<'_> {
    /// Start a record with these fields.
    pub fn record(&self, level: Level, event: &'static str) -> Record {
        let mut r = Record::new(level, event);
        if !r.is_on() {
            return r; // its fields would be formatted for nothing, per request
        }
        r = r.num("conn", self.id).str("route", self.route);
        if let Some(b) = self.backend {
            r = r.str("backend", b);
        }
        r = r.str("client", crate::sys::show(self.client));
        for (k, v) in self.asked.map(Asked::fields).unwrap_or_default() {
            r = r.str(k, v);
        }
        r
    }
}

/// The one place a close record is written, whether the connection got as
/// far as a `Conn` or was closed before (denied, no route, no upstream).
pub fn log_close(who: &Who<'_>, upstream: Option<SocketAddr>, (to_upstream, to_client): (u64, u64), duration: Duration, reason: &Reason) {
    let mut r = who
        .record(Level::Info, "close")
        .str("upstream", format_args!("{}", Upstream(upstream)))
        .num("to_upstream", to_upstream)
        .num("to_client", to_client)
        .str("duration", format_args!("{:.3}s", duration.as_secs_f64()))
        .str("reason", reason.name());
    if let Some(e) = reason.error() {
        r = r.str("error", e);
    }
    r.emit();
}

/// An upstream address, or `-` for a client that never got one (denied).
struct Upstream(Option<SocketAddr>);

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{}", crate::sys::show(a)),
            None => f.write_str("-"),
        }
    }
}
