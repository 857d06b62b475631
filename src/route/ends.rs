//! The two ends of a route as written: where it listens and where it sends.
//! (The options after `;` are `mod.rs`'s.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::spec::{Remote, UNIX_LISTEN};

/// `IP:PORT`, `[IPv6]:PORT`, or `:PORT` for every IPv4 address.
pub fn parse_local(s: &str) -> Option<SocketAddr> {
    if let Some(port) = s.strip_prefix(':') {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.parse().ok()?));
    }
    s.parse().ok()
}

/// `HOST:PORT` where HOST is a name, an IPv4 address or a bracketed IPv6 one.
pub fn parse_remote(s: &str) -> Option<Remote> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let v6 = inner.strip_suffix(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            v6
        }
        // A name or an IPv4 address: letters, digits, dots, dashes.
        None if !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
        {
            host
        }
        None => return None,
    };
    Some(Remote { host: host.to_string(), port })
}


/// How many ports one rule with a range may open (listeners, one each):
/// a Kubernetes NodePort range is 2,768 ports; a dev cluster's few dozen.
/// Past it, the rule is refused: thousands of listeners is a mistake more
/// often than a plan, and each costs a descriptor.
pub const MAX_RANGE: u16 = 1024;

/// The left-hand side of a route: `[udp:]HOST:PORT[-LAST]` or `unix:/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `unix:/path`: a Unix socket (natively); `addr` then means nothing.
    pub unix: Option<String>,
    /// `udp:`: datagrams, not connections.
    pub udp: bool,
    /// Its address with the first port of the range.
    pub addr: SocketAddr,
    /// How many ports, from `addr`'s: 1 without a range.
    pub ports: u16,
}

impl Listen {
    /// `udp:0.0.0.0:5353`, `127.0.0.1:20000-20010`, `[::]:8080`, `:80`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') || path.len() > 107 {
                return Err(format!("bad listen address {s:?} (unix:/ABSOLUTE/PATH, at most 107 bytes)"));
            }
            return Ok(Listen { unix: Some(path.to_string()), udp: false, addr: UNIX_LISTEN, ports: 1 });
        }
        let (udp, addr) = match s.strip_prefix("udp:") {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix("tcp:").unwrap_or(s)),
        };
        let bad = || format!("bad listen address {s:?} (HOST:PORT, HOST:FIRST-LAST for a range, udp:HOST:PORT for datagrams)");
        let (host, ports) = addr.rsplit_once(':').ok_or_else(bad)?;
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, Some(b.parse::<u16>().map_err(|_| bad())?)),
            None => (ports.parse::<u16>().map_err(|_| bad())?, None),
        };
        let addr = parse_local(&format!("{host}:{first}")).ok_or_else(bad)?;
        let ports = match last {
            None => 1,
            Some(last) => range_len(first, last, s)?,
        };
        Ok(Listen { unix: None, udp, addr, ports })
    }
}

/// FIRST-LAST: how many ports, or why not.
fn range_len(first: u16, last: u16, written: &str) -> Result<u16, String> {
    if first == 0 || last < first {
        return Err(format!("bad port range in {written:?} (FIRST-LAST, 1 to 65535, FIRST no more than LAST)"));
    }
    let n = u32::from(last - first) + 1;
    if n > u32::from(MAX_RANGE) {
        return Err(format!("the range in {written:?} would open {n} listeners; one rule may open at most {MAX_RANGE} (split it into several rules)"));
    }
    Ok(n as u16)
}

/// The upstream list of the route at offset `k` of a range of `n` ports:
/// an upstream written with a range of its own (`backend:9000-9010`) gets
/// the port at the same offset; one with a single port keeps it (a range
/// to one port).
pub fn upstreams_at(list: &str, k: u16, n: u16) -> Result<String, String> {
    let mut out = Vec::new();
    for u in list.split(',').map(str::trim) {
        let shifted = match u.rsplit_once(':') {
            Some((host, ports)) if ports.contains('-') => {
                let (a, b) = ports.split_once('-').unwrap_or_default();
                let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                    return Err(format!("bad upstream range {u:?} (HOST:FIRST-LAST)"));
                };
                let m = range_len(a, b, u)?;
                if m != n {
                    return Err(format!("the upstream range {u:?} has {m} ports and the listen range {n}: give both the same length, or one upstream port for the whole range"));
                }
                format!("{host}:{}", a + k)
            }
            _ => u.to_string(),
        };
        out.push(shifted);
    }
    Ok(out.join(","))
}
