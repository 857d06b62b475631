//! A tunnel through a parent proxy (`crate::forward::Parent`): once the
//! connect to the parent succeeds, ask it for the destination with a
//! CONNECT, and read its answer before the client hears anything. A 2xx
//! opens the tunnel (the client gets its own 200 or SOCKS5 reply, and the
//! tunnel's first bytes are bound to the name as on a direct tunnel); any
//! other answer, a close, or no answer in the connect timeout refuses the
//! client in its protocol, with the parent's status line in the reason.
//!
//! Only the answer's head is read, at most `MAX_ANSWER` bytes; what the
//! destination already sent past it (a server that speaks first) goes to
//! the client after the opening answer. The waiting tunnel's state is
//! here; the connection's steps through it are `connecting.rs`'s.

use std::net::SocketAddr;
use std::time::Instant;

use super::bind::Bind;
use crate::front::Speaks;

/// The longest answer head a parent may send to a CONNECT.
pub(super) const MAX_ANSWER: usize = 16 * 1024;

/// A tunnel waiting for its parent's answer.
pub(super) struct Chain {
    /// The parent's address, and its name for messages.
    pub(super) addr: SocketAddr,
    pub(super) parent: String,
    /// What the parent sent so far.
    pub(super) answer: Vec<u8>,
    /// When the parent's answer is too late (the connect timeout again).
    pub(super) deadline: Instant,
    pub(super) bind: Option<Box<Bind>>,
    pub(super) speaks: Speaks,
}

impl Chain {
    pub(super) fn new(addr: SocketAddr, parent: String, bind: Option<Box<Bind>>, speaks: Speaks, deadline: Instant) -> Chain {
        Chain { addr, parent, answer: Vec::new(), deadline, bind, speaks }
    }
}
