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
//! the client after the opening answer.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use super::bind::Bind;
use super::{Conn, Context, Phase};
use crate::close::{Reason, Side};
use crate::front::{self, Speaks};

/// The longest answer head a parent may send to a CONNECT.
const MAX_ANSWER: usize = 16 * 1024;

/// A tunnel waiting for its parent's answer.
pub(super) struct Chain {
    /// The parent's address, and its name for messages.
    pub(super) addr: SocketAddr,
    parent: String,
    /// What the parent sent so far.
    answer: Vec<u8>,
    /// When the parent's answer is too late (the connect timeout again).
    pub(super) deadline: Instant,
    bind: Option<Box<Bind>>,
    pub(super) speaks: Speaks,
}

impl Chain {
    pub(super) fn new(addr: SocketAddr, parent: String, bind: Option<Box<Bind>>, speaks: Speaks, deadline: Instant) -> Chain {
        Chain { addr, parent, answer: Vec::new(), deadline, bind, speaks }
    }
}

impl Conn {
    /// Connected to the parent: send it `request` (a CONNECT: a few hundred
    /// bytes into an empty socket buffer, so a short write is a fault) and
    /// wait for its answer.
    pub(super) fn ask_parent(&mut self, chain: Chain, request: &[u8]) -> Result<(), Reason> {
        match self.upstream.write(request) {
            Ok(n) if n == request.len() => {}
            Ok(_) => return Err(Reason::Error(Side::Upstream, io::Error::new(io::ErrorKind::WriteZero, "a short write of the CONNECT to the parent"))),
            Err(e) => return Err(Reason::Error(Side::Upstream, e)),
        }
        self.phase = Phase::Chaining(Box::new(chain));
        Ok(())
    }

    /// The parent sent something: once its answer's head is complete, a
    /// 2xx opens the tunnel and anything else refuses the client.
    pub(super) fn parent_answered(&mut self, cx: &mut Context<'_>) -> Result<(), Reason> {
        let Phase::Chaining(chain) = &mut self.phase else { return Ok(()) };
        let ended = front::read_up_to(&self.upstream, &mut chain.answer, MAX_ANSWER).map_err(|e| Reason::Error(Side::Upstream, e))?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        let parent = chain.parent.as_str();
        let len = match head.parse(&chain.answer) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if ended => return Err(Reason::Parent(None, format!("the parent {parent} closed before it answered the CONNECT"))),
            Ok(httparse::Status::Partial) if chain.answer.len() > MAX_ANSWER => return Err(Reason::Parent(None, format!("the parent {parent} answered the CONNECT with a head over {MAX_ANSWER} bytes"))),
            Ok(httparse::Status::Partial) => return Ok(()),
            Err(e) => return Err(Reason::Parent(None, format!("the parent {parent} answered the CONNECT with no HTTP answer ({e})"))),
        };
        let code = head.code.unwrap_or(0);
        if !(200..300).contains(&code) {
            let text = head.reason.unwrap_or("").escape_debug().to_string();
            return Err(Reason::Parent(Some(code), format!("the parent {parent} answered the CONNECT with {code} {text}")));
        }
        let early = chain.answer.split_off(len);
        let (addr, bind, speaks) = (chain.addr, chain.bind.take(), chain.speaks);
        self.relay_from(addr, (bind, None, speaks), &early, cx)
    }
}
