//! The PROXY protocol (HAProxy's spec, v1 text and v2 binary), through the
//! `ppp` crate: the header wasiter sends upstream (`send-proxy=v1|v2`), and
//! the one it expects from a load balancer in front (`accept-proxy`).
//!
//! Reading is careful not to swallow the client's first bytes: a v2 header
//! says its length after 16 bytes, so exactly that much is read; a v1 header
//! ends at CRLF within 107 bytes, so at most that much is read and whatever
//! came after the CRLF is handed on as the start of the stream.

use std::net::{IpAddr, SocketAddr};

use ppp::v2;

use crate::route::ProxyVersion;

/// The longest v1 header, by the spec.
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v2 header accepted (addresses plus TLVs); the spec allows
/// 64 KiB, load balancers send a few hundred bytes at most.
const V2_MAX: usize = 2048;

/// The header for a connection from `client` that arrived at `local`.
pub fn encode(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(client, local);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from((src, dst)).to_string().into_bytes(),
        ProxyVersion::V2 => {
            let addrs = match (src, dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => v2::Addresses::IPv4(v2::IPv4::new(*s.ip(), *d.ip(), s.port(), d.port())),
                (SocketAddr::V6(s), SocketAddr::V6(d)) => v2::Addresses::IPv6(v2::IPv6::new(*s.ip(), *d.ip(), s.port(), d.port())),
                _ => v2::Addresses::Unspecified, // not reached: same_family
            };
            v2::Builder::with_addresses(v2::Version::Two | v2::Command::Proxy, v2::Protocol::Stream, addrs)
                .build()
                .unwrap_or_default()
        }
    }
}

/// Both addresses in one family: an IPv4-mapped address is IPv4; a mix of
/// IPv4 and IPv6 (a dual-stack listener) goes as IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |s: SocketAddr| SocketAddr::new(s.ip().to_canonical(), s.port());
    let (a, b) = (canon(a), canon(b));
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

/// The crate's messages quote "\r\n" literally: keep a reason on one line.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().escape_debug().to_string()
}

/// The length field of a v2 header (bytes 14 and 15, big-endian).
fn v2_len(b: &[u8]) -> usize {
    match b.get(14..16) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]) as usize,
        _ => 0,
    }
}

/// What a complete header said.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    /// The original (client, destination), or None for a LOCAL or UNKNOWN
    /// header (a health check from the load balancer itself): the
    /// connection's own addresses count then.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// Bytes read past the header: the start of the client's stream.
    pub rest: Vec<u8>,
}

/// Collects a header from the client, a read at a time.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// How many more bytes to ask for (never past the header's end for v2,
    /// never past the v1 maximum).
    pub fn want(&self) -> usize {
        let have = self.buf.len();
        if have < 16 {
            return 16 - have;
        }
        if self.buf.starts_with(V2_SIGNATURE) {
            return (16 + v2_len(&self.buf)).saturating_sub(have).max(1);
        }
        V1_MAX.saturating_sub(have).max(1)
    }

    /// Add what was read. Ok(None): more is needed. Err: not a valid header.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Received>, String> {
        self.buf.extend_from_slice(bytes);
        let b = &self.buf;
        let maybe_v2 = V2_SIGNATURE.starts_with(b.get(..b.len().min(12)).unwrap_or_default());
        let maybe_v1 = b"PROXY ".starts_with(b.get(..b.len().min(6)).unwrap_or_default());
        if !maybe_v1 && !maybe_v2 {
            return Err("no PROXY protocol header (the client spoke first?)".into());
        }
        if maybe_v2 && b.len() >= 16 {
            let total = 16 + v2_len(b);
            if total > V2_MAX {
                return Err(format!("a v2 header of {total} bytes (at most {V2_MAX} accepted)"));
            }
            if b.len() < total {
                return Ok(None);
            }
            let header = v2::Header::try_from(b.get(..total).unwrap_or_default()).map_err(|e| format!("bad v2 header: {}", one_line(&e)))?;
            let addrs = match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => Some((
                    SocketAddr::new(a.source_address.into(), a.source_port),
                    SocketAddr::new(a.destination_address.into(), a.destination_port),
                )),
                (_, v2::Addresses::IPv6(a)) => Some((
                    SocketAddr::new(a.source_address.into(), a.source_port),
                    SocketAddr::new(a.destination_address.into(), a.destination_port),
                )),
                (_, _) => None, // UNSPEC or UNIX: keep the real peer
            };
            return Ok(Some(Received { addrs, rest: b.get(total..).unwrap_or_default().to_vec() }));
        }
        if maybe_v1 {
            let Some(end) = b.windows(2).position(|w| w == b"\r\n").map(|i| i + 2) else {
                return if b.len() >= V1_MAX { Err(format!("no CRLF in the first {V1_MAX} bytes")) } else { Ok(None) };
            };
            let line = b.get(..end).unwrap_or_default();
            let header = ppp::v1::Header::try_from(line).map_err(|e| format!("bad v1 header: {}", one_line(&e)))?;
            let addrs = match header.addresses {
                ppp::v1::Addresses::Tcp4(a) => Some((
                    SocketAddr::new(a.source_address.into(), a.source_port),
                    SocketAddr::new(a.destination_address.into(), a.destination_port),
                )),
                ppp::v1::Addresses::Tcp6(a) => Some((
                    SocketAddr::new(a.source_address.into(), a.source_port),
                    SocketAddr::new(a.destination_address.into(), a.destination_port),
                )),
                ppp::v1::Addresses::Unknown => None,
            };
            return Ok(Some(Received { addrs, rest: b.get(end..).unwrap_or_default().to_vec() }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Feed `bytes` in pieces no larger than the reader asks for.
    fn read_all(bytes: &[u8]) -> Result<Option<Received>, String> {
        let mut r = Reader::default();
        let mut at = 0;
        while at < bytes.len() {
            let n = r.want().min(bytes.len() - at);
            let got = r.push(&bytes[at..at + n])?;
            at += n;
            if got.is_some() {
                return Ok(got);
            }
        }
        Ok(None)
    }

    #[test]
    fn v1_round_trips_and_keeps_what_follows() {
        let h = encode(ProxyVersion::V1, a("192.0.2.7:5555"), a("10.0.0.1:8080"));
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 8080\r\n");
        let mut input = h.clone();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let got = read_all(&input).unwrap().unwrap();
        assert_eq!(got.addrs, Some((a("192.0.2.7:5555"), a("10.0.0.1:8080"))));
        assert_eq!(got.rest, b"GET / HTTP/1.1\r\n", "read past the CRLF is handed on");
        let h6 = encode(ProxyVersion::V1, a("[2001:db8::1]:1"), a("[::1]:2"));
        assert_eq!(h6, b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
        assert_eq!(read_all(b"PROXY UNKNOWN\r\n").unwrap().unwrap().addrs, None);
    }

    #[test]
    fn v2_round_trips_exactly() {
        for (src, dst) in [("192.0.2.7:5555", "10.0.0.1:8080"), ("[2001:db8::1]:1", "[::1]:2")] {
            let h = encode(ProxyVersion::V2, a(src), a(dst));
            assert!(h.starts_with(V2_SIGNATURE));
            let mut input = h.clone();
            input.extend_from_slice(b"hello");
            let mut r = Reader::default();
            let mut at = 0;
            let got = loop {
                let n = r.want();
                let got = r.push(&input[at..at + n]).unwrap();
                at += n;
                if let Some(g) = got {
                    break g;
                }
            };
            assert_eq!(at, h.len(), "not a byte past the header was asked for");
            assert_eq!((got.addrs, got.rest.len()), (Some((a(src), a(dst))), 0));
        }
    }

    #[test]
    fn mixed_families_go_as_ipv6_and_mapped_as_ipv4() {
        assert_eq!(encode(ProxyVersion::V1, a("[::ffff:127.0.0.2]:9"), a("127.0.0.1:80")), b"PROXY TCP4 127.0.0.2 127.0.0.1 9 80\r\n");
        assert_eq!(encode(ProxyVersion::V1, a("127.0.0.2:9"), a("[::1]:80")), b"PROXY TCP6 ::ffff:127.0.0.2 ::1 9 80\r\n");
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(read_all(b"GET / HTTP/1.1\r\n").unwrap_err().contains("no PROXY protocol header"));
        assert!(read_all(b"PROXY TCP4 1.2.3.4\r\n").unwrap_err().starts_with("bad v1 header"));
        assert!(read_all(&[b'P', b'R', b'O', b'X', b'Y', b' '].repeat(20)).unwrap_err().contains("no CRLF"));
        let mut long = V2_SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(read_all(&long).unwrap_err().contains("at most"));
        assert_eq!(read_all(b"PROXY TCP4 1.2.3.4 5.6").unwrap(), None, "incomplete: wait");
        // Found by fuzzing: the crate's message has a real CR LF in it.
        let e = read_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 808\r0\nGET / HTTP/1.1\r\n").unwrap_err();
        assert!(e.starts_with("bad v1 header") && !e.contains('\n') && !e.contains('\r'), "{e:?}");
    }
}
