//! A route as the user writes it: where to listen, where to send, and how.
//!
//! ```text
//! LISTEN=UPSTREAM[,UPSTREAM...][;OPTION...]
//!   0.0.0.0:8080=web1:80,web2:80;policy=round-robin;allow=10.0.0.0/8;send-proxy=v2
//! ```
//! `REMOTE` takes the right-hand side (`UPSTREAM,...;OPTION...`) for the route
//! that `LOCAL` listens on. Options:
//! - `policy=failover|round-robin|least-conn` (default failover: in order)
//! - `allow=CIDR,...` and `deny=CIDR,...` (an address alone is /32 or /128)
//! - `send-proxy=v1|v2`: a PROXY protocol header to the upstream first
//! - `accept-proxy`: expect a PROXY header (v1 or v2) from the client first
//! - `sni=NAME,...`, `alpn=PROTO,...`, `host=NAME,...`: serve only clients
//!   that ask for these (TLS server name, TLS ALPN, plain HTTP Host). Several
//!   routes may then share one listen address; see `names` and `doors`.
//!
//! A route may also relay datagrams (`udp:LISTEN=...`, options `idle=` and
//! `flows=`: see `Udp`), and one rule may name a range of ports on both
//! sides (`127.0.0.1:20000-20010=backend:20000-20010`): it becomes one
//! route per port (`parse_rule`), each reloaded as any other.
//!
//! Parsing here is pure: names are resolved later, by the platform. The
//! route's types (`spec.rs`), its ends (`ends.rs`) and route sets
//! (`doors.rs`) have files of their own.

mod doors;
mod ends;
mod spec;

pub use doors::{diff, doors, Diff, MAX_DOORS};
pub use ends::{parse_local, parse_remote, Listen, MAX_RANGE};
pub use spec::{Acl, Place, Policy, ProxyVersion, Remote, RouteSpec, TlsFiles, Udp, UnixListen, UpstreamTls, MAX_FLOWS, UNIX_LISTEN};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::forward::Forward;
use crate::names::{Match, Pattern};

pub const ROUTE_FORM: &str =
    "LISTEN=HOST:PORT[,HOST:PORT...][;policy=failover|round-robin|least-conn][;allow=CIDR,...][;deny=CIDR,...][;send-proxy=v1|v2][;accept-proxy][;sni=NAME,...][;alpn=PROTO,...][;host=NAME,...][;cert=PEM;key=PEM][;upstream-tls][;upstream-ca=PEM][;upstream-name=NAME][;upstream-insecure], or LISTEN=forward;to=NAME,...[;not-to=NAME,...][;to-net=CIDR,...][;ports=PORT,...][;auth=USER:PASS][;report|ask[;ask-timeout=60s]][;underscore][;parent=http://HOST:PORT][;direct=NAME,...][;transparent=PORT][;open=NAME,...][;allow-http=HOST/PATH:METHODS,...][;budget=NAME[+NAME]:200req,5MiB-up,50MiB-down/1h][;client=NAME[;from=CIDR,...|;uid=N,...]], or LISTEN=dns;to=NAME,...[;not-to=NAME,...][;to-net=CIDR,...][;report|ask[;ask-timeout=60s]][;underscore], or udp:LISTEN=HOST:PORT[,HOST:PORT...][;policy=...][;allow=CIDR,...][;deny=CIDR,...][;idle=30s][;flows=1024], or unix:/PATH=UPSTREAMS[;mode=0660][;owner=UID:GID] and LISTEN=unix:/PATH (natively); LISTEN may be HOST:FIRST-LAST (a range, an upstream HOST:FIRST-LAST of the same length or one port), e.g. 0.0.0.0:8080=web1:80,web2:80;policy=round-robin";

/// `LISTEN=UPSTREAMS;OPTIONS`: one route, or one per port of a range. The
/// error says what part was wrong.
pub fn parse_rule(s: &str) -> Result<Vec<RouteSpec>, String> {
    let (listen, rest) = s.split_once('=').ok_or("no '=' between the listen address and the upstreams")?;
    routes_for(Listen::parse(listen)?, rest)
}

/// The routes of `listen` (`LOCAL`, or a rule's left-hand side) and the
/// right-hand side `s` (`REMOTE`, or the rest of the rule).
pub fn routes_for(listen: Listen, s: &str) -> Result<Vec<RouteSpec>, String> {
    if let Some(path) = &listen.unix {
        return Ok(vec![parse_target(UNIX_LISTEN, false, Some(path), s)?]);
    }
    if listen.ports == 1 {
        return Ok(vec![parse_target(listen.addr, listen.udp, None, s)?]);
    }
    let (list, options) = s.split_once(';').unwrap_or((s, ""));
    if matches!(list.trim(), "forward" | "dns") {
        return Err(format!("a port range applies to relay routes, not to {} (it listens on one port)", list.trim()));
    }
    (0..listen.ports)
        .map(|k| {
            let addr = SocketAddr::new(listen.addr.ip(), listen.addr.port() + k);
            parse_target(addr, listen.udp, None, &format!("{};{options}", ends::upstreams_at(list, k, listen.ports)?))
        })
        .collect()
}

/// The right-hand side of a route: `UPSTREAM,...;OPTION...`.
fn parse_target(listen: SocketAddr, udp: bool, unix: Option<&str>, s: &str) -> Result<RouteSpec, String> {
    let mut parts = s.split(';');
    let upstreams = parts.next().unwrap_or_default().trim();
    if upstreams.is_empty() {
        return Err("no upstream (an empty pool)".into());
    }
    // `dns`: the allowlist DNS server, with a forward route's policy.
    let forward = match upstreams {
        "forward" => Some(Forward::default()),
        "dns" => Some(Forward { dns: true, ..Forward::default() }),
        _ => None,
    };
    let upstreams = match forward {
        Some(_) => Vec::new(),
        None if upstreams.starts_with("unix:") => {
            let path = upstreams.trim_start_matches("unix:");
            if !path.starts_with('/') || path.contains(',') {
                return Err(format!("bad upstream {upstreams:?} (unix:/ABSOLUTE/PATH, alone: a Unix socket is one server)"));
            }
            vec![Remote { host: upstreams.to_string(), port: 0 }]
        }
        None => upstreams
            .split(',')
            .map(|u| parse_remote(u.trim()).ok_or_else(|| format!("bad upstream {:?}", u.trim())))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mut route = RouteSpec {
        origin: String::new(),
        listen,
        upstreams,
        policy: Policy::Failover,
        acl: Acl::default(),
        send_proxy: None,
        accept_proxy: false,
        matches: Match::default(),
        forward,
        tls: None,
        upstream_tls: None,
        udp: udp.then(Udp::default),
        unix: unix.map(|path| UnixListen { path: path.to_string(), mode: None, owner: None }),
    };
    if udp && route.forward.is_some() {
        return Err("udp: relays datagrams to upstreams; forward and dns are TCP routes (a DNS route listens on UDP by itself)".into());
    }
    let (mut cert, mut key_file) = (None, None);
    for option in parts.map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let value = value.trim();
        match key.trim() {
            "policy" => {
                route.policy = match value {
                    "failover" | "first" => Policy::Failover,
                    "round-robin" | "roundrobin" | "rr" => Policy::RoundRobin,
                    "least-conn" | "leastconn" => Policy::LeastConn,
                    _ => return Err(format!("bad policy {value:?} (failover, round-robin or least-conn)")),
                }
            }
            "allow" => route.acl.allow.extend(parse_cidrs(value)?),
            "deny" => route.acl.deny.extend(parse_cidrs(value)?),
            "send-proxy" => {
                route.send_proxy = Some(match value {
                    "v1" | "1" => ProxyVersion::V1,
                    "v2" | "2" => ProxyVersion::V2,
                    _ => return Err(format!("bad send-proxy {value:?} (v1 or v2)")),
                })
            }
            "accept-proxy" => {
                route.accept_proxy = match value {
                    "" | "yes" | "true" | "1" | "on" => true,
                    "no" | "false" | "0" | "off" => false,
                    _ => return Err(format!("bad accept-proxy {value:?} (yes or no)")),
                }
            }
            "sni" => route.matches.sni.extend(parse_names(value)?),
            "host" => route.matches.host.extend(parse_names(value)?),
            "alpn" => {
                for p in value.split(',').map(str::trim) {
                    if p.is_empty() || p.len() > 255 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!("bad alpn {p:?} (protocol names such as h2 or http/1.1)"));
                    }
                    route.matches.alpn.push(p.to_string());
                }
            }
            "to" | "not-to" | "to-net" | "ports" | "opaque" | "auth" | "report" | "ask" | "ask-timeout" | "underscore" | "parent" | "direct" | "transparent" | "open" | "allow-http" | "budget" | "client" | "from" | "uid" => {
                let Some(f) = route.forward.as_mut() else {
                    return Err(format!("{} applies to a forward route (LISTEN=forward;...)", key.trim()));
                };
                if f.dns && !matches!(key.trim(), "to" | "not-to" | "to-net" | "report" | "ask" | "ask-timeout" | "underscore") {
                    return Err(format!("{} does not apply to a DNS route (it takes to=, not-to=, to-net=, report, ask, ask-timeout=, underscore, allow= and deny=)", key.trim()));
                }
                match key.trim() {
                    "to" => {
                        // A network in to= (10.1.2.0/24) names the IP-literal
                        // destinations in it; everything else is a name.
                        let (nets, names): (Vec<&str>, Vec<&str>) = value.split(',').map(str::trim).partition(|n| n.contains('/'));
                        // Presets (`@python`): their names, and which were asked for.
                        let (presets, names): (Vec<&str>, Vec<&str>) = names.into_iter().partition(|n| n.starts_with('@'));
                        for preset in presets {
                            f.to.extend(crate::presets::expand(preset)?);
                            f.presets.push(preset.to_string());
                        }
                        if !nets.is_empty() {
                            f.to_nets.extend(parse_cidrs(&nets.join(","))?);
                        }
                        if !names.is_empty() {
                            f.to.extend(parse_names(&names.join(","))?);
                        }
                    }
                    "not-to" => {
                        for item in value.split(',').map(str::trim) {
                            if item.starts_with('@') {
                                f.not_to.extend(crate::presets::expand(item)?);
                            } else {
                                f.not_to.push(crate::names::Pattern::parse(item)?);
                            }
                        }
                    }
                    "open" => f.open.extend(parse_names(value)?),
                    "allow-http" => {
                        for item in value.split(',').map(str::trim) {
                            f.http.push(crate::forward::http_rules::parse(item)?);
                        }
                    }
                    "to-net" => f.nets.extend(parse_cidrs(value)?),
                    "budget" => f.budgets.push(crate::forward::budget::Budget::parse(value)?),
                    "client" => f.identity.set_name(value)?,
                    "from" => f.identity.from.extend(parse_cidrs(value)?),
                    "uid" => f.identity.add_uids(value)?,
                    "auth" => f.set_auth(value)?,
                    "report" => f.report = true,
                    "ask" => f.ask = Some(f.ask.unwrap_or(crate::ask::DEFAULT_TIMEOUT)),
                    "ask-timeout" => {
                        let t = humantime::parse_duration(value).ok().or_else(|| value.parse().ok().map(Duration::from_secs)).filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600));
                        f.ask = Some(t.ok_or_else(|| format!("bad ask-timeout {value:?} (how long a client is held for an answer: 30s, 5m; at most 1h)"))?);
                    }
                    "underscore" => f.underscore = true,
                    "parent" => f.parent = Some(crate::forward::Parent::parse(value)?),
                    "direct" => f.direct.extend(parse_names(value)?),
                    "transparent" => f.transparent = Some(value.parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("bad transparent port {value:?} (the port the redirected connections were made to, 1 to 65535)"))?),
                    key => {
                        let list = if key == "opaque" { &mut f.opaque } else { &mut f.ports };
                        for p in value.split(',').map(str::trim) {
                            list.push(p.parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("bad port {p:?} in {key}= (1 to 65535)"))?);
                        }
                    }
                }
            }
            "cert" | "key" if value.is_empty() => return Err(format!("{}= needs a PEM file's path", key.trim())),
            "cert" => cert = Some(value.to_string()),
            "upstream-tls" => {
                route.upstream_tls.get_or_insert_with(Default::default);
            }
            "upstream-ca" | "upstream-name" if value.is_empty() => return Err(format!("{}= needs a value", key.trim())),
            "upstream-ca" => route.upstream_tls.get_or_insert_with(Default::default).ca = Some(value.to_string()),
            "upstream-name" => route.upstream_tls.get_or_insert_with(Default::default).name = Some(value.to_string()),
            "upstream-insecure" => route.upstream_tls.get_or_insert_with(Default::default).insecure = true,
            "key" => key_file = Some(value.to_string()),
            "mode" | "owner" => {
                let Some(u) = route.unix.as_mut() else {
                    return Err(format!("{} applies to a route that listens on a Unix socket (unix:/path=...)", key.trim()));
                };
                if key.trim() == "mode" {
                    u.mode = Some(u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("bad mode {value:?} (octal, e.g. 0660)"))?);
                } else {
                    let (uid, gid) = value.split_once(':').map_or((value, None), |(u, g)| (u, Some(g)));
                    let num = |n: &str| n.parse::<u32>().map_err(|_| format!("bad owner {value:?} (UID[:GID], numbers, e.g. 1000:1000)"));
                    u.owner = Some((num(uid)?, gid.map(num).transpose()?));
                }
            }
            "idle" | "flows" => {
                let Some(u) = route.udp.as_mut() else {
                    return Err(format!("{} applies to a UDP route (udp:LISTEN=...)", key.trim()));
                };
                if key.trim() == "idle" {
                    u.idle = humantime::parse_duration(value).ok().or_else(|| value.parse().ok().map(Duration::from_secs)).filter(|d| !d.is_zero()).ok_or_else(|| format!("bad idle {value:?} (how long a silent flow lives: 5s, 2m, 500ms)"))?;
                } else {
                    u.flows = value.parse().ok().filter(|n| (1..=MAX_FLOWS).contains(n)).ok_or_else(|| format!("bad flows {value:?} (how many client flows at once, 1 to {MAX_FLOWS})"))?;
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    // A forward route may listen on a Unix socket: its clients are told
    // apart by uid= (the kernel's SO_PEERCRED), not by address.
    let unix_forward_ok = route.forward.as_ref().is_none_or(|f| !f.dns && f.transparent.is_none());
    if route.unix.is_some() && (!route.acl.is_open() || !unix_forward_ok || !route.matches.is_default()) {
        return Err("a route on a Unix socket relays to upstreams or is a forward proxy; allow=, deny=, dns, transparent=, sni=, alpn= and host= need a TCP listener".into());
    }
    if route.udp.is_some() && route.upstreams.iter().any(|u| u.unix_path().is_some()) {
        return Err("a UDP route relays to UDP servers, not to a Unix socket".into());
    }
    if route.udp.is_some() && (route.send_proxy.is_some() || route.accept_proxy || !route.matches.is_default() || cert.is_some() || key_file.is_some() || route.upstream_tls.is_some()) {
        return Err("a UDP route takes policy=, allow=, deny=, idle= and flows= only (datagrams carry no PROXY header, name or TLS here)".into());
    }
    if route.forward.as_ref().is_some_and(|f| f.dns) && (route.send_proxy.is_some() || route.accept_proxy || !route.matches.is_default() || cert.is_some() || key_file.is_some()) {
        return Err("a DNS route takes to=, not-to=, to-net=, report, ask, ask-timeout=, underscore, allow= and deny= only".into());
    }
    if let Some(p) = route.forward.as_ref().filter(|f| !f.underscore).and_then(|f| f.to.iter().find(|p| p.to_string().contains('_'))) {
        return Err(format!("to={p} holds '_', which names are refused for unless the route says underscore (add ;underscore)"));
    }
    if route.forward.as_ref().is_some_and(|f| f.report && f.ask.is_some()) {
        return Err("report and ask both decide what an unlisted name gets (let through, or held for a person): choose one".into());
    }
    if route.forward.as_ref().is_some_and(|f| f.transparent.is_some() && f.auth.is_some()) {
        return Err("auth= asks proxy clients to log in; a transparent listener's clients do not know it is there".into());
    }
    if route.forward.as_ref().is_some_and(|f| !f.direct.is_empty() && f.parent.is_none()) {
        return Err("direct= names what skips the parent: it needs parent=http://HOST:PORT".into());
    }
    if route.upstream_tls.is_some() && route.forward.is_some() {
        return Err("upstream-tls applies to a relay route, not a forward route (its clients bring their own TLS)".into());
    }
    route.tls = match (cert, key_file) {
        (None, None) => None,
        (Some(_), None) => return Err("cert= without key= (the certificate's private key, PEM)".into()),
        (None, Some(_)) => return Err("key= without cert= (the certificate chain, PEM)".into()),
        (Some(cert), Some(key)) if route.forward.is_none() && route.matches.host.is_empty() => Some(TlsFiles { cert, key }),
        (Some(_), Some(_)) if route.forward.is_some() => return Err("cert= and key= apply to a relay route, not a forward route".into()),
        (Some(_), Some(_)) => return Err("host= reads plain HTTP; a route that terminates TLS (cert=) is chosen by sni=".into()),
    };
    Ok(route)
}

/// `app.test,*.app.test`: names to route by.
fn parse_names(s: &str) -> Result<Vec<Pattern>, String> {
    s.split(',').map(|n| Pattern::parse(n.trim())).collect()
}

/// `10.0.0.0/8,::1,fd00::/8`: a bare address is one host.
fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    if s.is_empty() {
        return Err("an empty address list".into());
    }
    s.split(',')
        .map(str::trim)
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| format!("bad CIDR {c:?} (an address or ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8)"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
