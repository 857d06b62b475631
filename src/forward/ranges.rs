//! The addresses a name may not lead to unless `to-net=` names them, and
//! the forms an address hides in: what `Forward::permits` and
//! `Forward::check_host` ask of an address or a host.

use std::net::IpAddr;

use ipnet::IpNet;

/// Ranges a name may not lead to unless `to-net=` names them: this host
/// (loopback), link-local (cloud metadata at 169.254.169.254), the private
/// networks around the container (RFC 1918, CGNAT, ULA, site-local, the
/// benchmark range), and addresses that are no host at all.
pub(super) const GUARDED: [&str; 17] = [
    "127.0.0.0/8", "::1/128", // loopback
    "169.254.0.0/16", "fe80::/10", // link-local
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // private (RFC 1918)
    "100.64.0.0/10", // shared address space (CGNAT, RFC 6598)
    "fc00::/7", "fec0::/10", // unique local, site-local
    "198.18.0.0/15", "192.0.0.0/24", // benchmarking, IETF protocol assignments
    "0.0.0.0/8", "::/128", // this network, unspecified
    "224.0.0.0/3", "ff00::/8", // multicast, reserved, broadcast
    "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): its IPv4 part can sit anywhere
];

pub(super) fn guarded(ip: IpAddr) -> bool {
    // Parsed once, not on every address of every request.
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| GUARDED.iter().filter_map(|g| g.parse().ok()).collect()).iter().any(|n| n.contains(&ip))
}

/// The IPv4 address inside an IPv6 address of a form that translates or
/// tunnels to it: NAT64's well-known prefix 64:ff9b::/96 (RFC 6052), 6to4
/// 2002::/16 (RFC 3056), Teredo 2001::/32 (RFC 4380: the client, inverted,
/// in the last 32 bits), and IPv4-compatible ::a.b.c.d. (IPv4-mapped
/// ::ffff:a.b.c.d is turned into IPv4 before any check.)
pub(super) fn embedded_v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        [0x2001, 0, _, _, _, _, hi, lo] => Some(v4(!hi, !lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A host that a URL parser or `inet_aton` would read as an IPv4 address
/// although it is not dotted-quad: its last label all digits (127.1,
/// 2130706433, 0177.0.0.1) or hexadecimal with 0x (0x7f.1).
pub(super) fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) && last.get(2..).is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || hex
}

