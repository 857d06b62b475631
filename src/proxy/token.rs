//! What the poller hands back with each ready socket: whose it is.
//!
//! A `Token` is a `Kind` packed into one word for the poller: the kind's tag
//! in the top four bits, its index (a slab key or a route number) below.

use crate::close::Side;

const TAG_SHIFT: u32 = usize::BITS - 4;
const INDEX_MASK: usize = (1 << TAG_SHIFT) - 1;

/// Whose socket it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One side of connection `key` (its slab key).
    Conn(usize, Side),
    /// The listener of door `index`.
    Listener(usize),
    /// The metrics and admin listeners (`--metrics`, `--admin`).
    Metrics,
    /// A metrics or admin request in progress (its slab key).
    Scrape(usize),
    /// A client still in its front: a PROXY header or the name it asks
    /// for still arriving (its slab key).
    Front(usize),
    /// A health-check connect (its slab key).
    Check(usize),
    /// A DNS query of the resolver (its key there).
    Dns(usize),
    /// A socket of door `door`'s allowlist DNS server (`dns_server::Sub`'s
    /// index): the door in the top `DOOR_BITS` of the index.
    Answering(usize, usize),
    /// A socket of door `door`'s UDP relay (0 its listen socket, else a
    /// flow's: `udp_relay::sub_of_flow`), packed as `Answering`.
    Udp(usize, usize),
}

/// Doors fit in these bits (`route::MAX_DOORS` of them); a DNS server's or
/// UDP relay's sockets in the rest (16 bits on wasm32: `route::MAX_FLOWS`).
const DOOR_BITS: u32 = 12;
const _: () = assert!(crate::route::MAX_DOORS <= 1 << DOOR_BITS);
const _: () = assert!(crate::route::MAX_FLOWS < 1 << SUB_BITS);
const SUB_BITS: u32 = usize::BITS - 4 - DOOR_BITS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(usize);

impl Token {
    pub fn new(kind: Kind) -> Token {
        let (tag, index) = match kind {
            Kind::Conn(key, Side::Client) => (0, key),
            Kind::Conn(key, Side::Upstream) => (1, key),
            Kind::Listener(i) => (2, i),
            Kind::Metrics => (3, 0),
            Kind::Scrape(key) => (4, key),
            Kind::Front(key) => (5, key),
            Kind::Check(key) => (6, key),
            Kind::Dns(key) => (7, key),
            Kind::Answering(door, sub) => (8, pack(door, sub)),
            Kind::Udp(door, sub) => (9, pack(door, sub)),
        };
        Token((tag << TAG_SHIFT) | (index & INDEX_MASK))
    }

    /// What the poller is given.
    pub fn raw(self) -> usize {
        self.0
    }

    /// Back from what the poller returned; `None` for a word no `Token`
    /// makes (it cannot come back from a poller we fed).
    pub fn kind(raw: usize) -> Option<Kind> {
        let index = raw & INDEX_MASK;
        Some(match raw >> TAG_SHIFT {
            0 => Kind::Conn(index, Side::Client),
            1 => Kind::Conn(index, Side::Upstream),
            2 => Kind::Listener(index),
            3 => Kind::Metrics,
            4 => Kind::Scrape(index),
            5 => Kind::Front(index),
            6 => Kind::Check(index),
            7 => Kind::Dns(index),
            8 => Kind::Answering(index >> SUB_BITS, index & ((1 << SUB_BITS) - 1)),
            9 => Kind::Udp(index >> SUB_BITS, index & ((1 << SUB_BITS) - 1)),
            _ => return None,
        })
    }
}

/// A door and one of its sockets, in one index.
fn pack(door: usize, sub: usize) -> usize {
    (door << SUB_BITS) | (sub & ((1 << SUB_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_back_as_it_went() {
        let big = INDEX_MASK;
        for kind in [
            Kind::Conn(0, Side::Client),
            Kind::Conn(big, Side::Upstream),
            Kind::Listener(3),
            Kind::Metrics,
            Kind::Scrape(7),
            Kind::Front(9),
            Kind::Check(big),
            Kind::Dns(5),
            Kind::Answering(3, 0),
            Kind::Answering((1 << DOOR_BITS) - 1, 65),
            Kind::Udp(crate::route::MAX_DOORS - 1, crate::route::MAX_FLOWS),
        ] {
            assert_eq!(Token::kind(Token::new(kind).raw()), Some(kind));
        }
        assert_eq!(Token::kind(usize::MAX), None);
    }
}
