//! A forward route's client that speaks SOCKS5 (`socks.rs` has the wire
//! format): told from an HTTP client by its first byte, walked through the
//! greeting, the login when the route has `auth=`, and its CONNECT
//! request, which is then checked, looked up and refused exactly as an
//! HTTP client's CONNECT is (`egress.rs`): one policy, two fronts. The
//! tunnel it opens is bound to the name it asked for (`conn::bind`), and
//! opened with a SOCKS5 reply instead of `200` (`Speaks`).
//!
//! SOCKS4 and 4a are refused with their own reply (request rejected): they
//! have no login and their 4a form cannot be told from a bare address
//! without more parsing than refusing costs.

use std::io;
use std::time::Instant;

use super::socks::{self, Stage, LOGIN, NO_AUTH};
use super::target::Target;
use super::{tell, Front, Phase, Rules, Speaks, Step};
use crate::close::{Reason, Side};
use crate::dns::Resolver;

impl Front {
    /// A forward route's new client: HTTP, SOCKS5, or SOCKS4 (refused), by
    /// its first byte.
    pub(super) fn first_bytes(&mut self, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        let ended = match self.read_more() {
            Ok(ended) => ended,
            Err(e) => return self.close(Reason::Error(Side::Client, e)),
        };
        match self.read.first() {
            None if ended => self.close(Reason::Closed(Side::Client)),
            None => Step::Wait,
            Some(&socks::VERSION) => {
                self.speaks = Speaks::Socks5;
                self.phase = Phase::Socks(Stage::Greeting);
                self.socks(rules, resolver, now)
            }
            Some(&socks::SOCKS4) => {
                tell(&self.client, &socks::SOCKS4_REJECTED);
                self.close(Reason::BadSocks("SOCKS4 is not served here: use SOCKS5 (socks5h://)".into()))
            }
            Some(_) => {
                self.phase = Phase::Request;
                self.request(rules, resolver, now)
            }
        }
    }

    /// Go through the SOCKS5 messages the client has sent so far.
    pub(super) fn socks(&mut self, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        let ended = match self.read_more() {
            Ok(ended) => ended,
            Err(e) => return self.close(Reason::Error(Side::Client, e)),
        };
        let Some((_, forward)) = rules.forward else { return Step::Close };
        loop {
            let Phase::Socks(stage) = self.phase else { return Step::Close };
            // Each message moves the stage on, or ends the client, or waits.
            let next = match stage {
                Stage::Greeting => match socks::greeting(&self.read) {
                    Ok(None) => return self.incomplete(ended, "greeting"),
                    Err(why) => return self.close(Reason::BadSocks(why)),
                    Ok(Some((offers, used))) => {
                        // A login may open another policy of this address.
                        let by_login = offers.login && !forward.identity.by_socket() && !rules.logins.is_empty();
                        let method = offers.choose(forward.asks_login() || by_login);
                        if let Err(e) = self.say(&[socks::VERSION, method], used) {
                            return self.close(Reason::Error(Side::Client, e));
                        }
                        match method {
                            NO_AUTH => Stage::Request,
                            LOGIN => Stage::Login,
                            _ => {
                                let _ = self.client.shutdown_write();
                                return self.close(Reason::ProxyAuth("the SOCKS5 client offers no username/password login, which this route asks for".into()));
                            }
                        }
                    }
                },
                Stage::Login => match socks::login(&self.read) {
                    Ok(None) => return self.incomplete(ended, "login"),
                    Err(why) => return self.close(Reason::BadSocks(why)),
                    Ok(Some(((user, pass), used))) => {
                        let (user, pass) = (user.to_vec(), pass.to_vec());
                        if self.log_in_to(rules, |l| l.check_pair(&user, &pass).is_ok()) {
                            // Its policy's login: the loop reads on under it.
                            if let Err(e) = self.say(&[1, 0], used) {
                                return self.close(Reason::Error(Side::Client, e));
                            }
                            self.phase = Phase::Socks(Stage::Request);
                            return Step::Wait;
                        }
                        let (user, pass) = (user.as_slice(), pass.as_slice());
                        // Without auth=, a client that offered only a login
                        // may give any: there is nothing to check.
                        let checked = if forward.asks_login() { forward.check_login(user, pass) } else { Ok(()) };
                        let status = if checked.is_ok() { 0 } else { 1 };
                        if let Err(e) = self.say(&[1, status], used) {
                            return self.close(Reason::Error(Side::Client, e));
                        }
                        if let Err(why) = checked {
                            let _ = self.client.shutdown_write();
                            return self.close(Reason::ProxyAuth(why));
                        }
                        Stage::Request
                    }
                },
                Stage::Request => return self.socks_request(ended, rules, resolver, now),
            };
            self.phase = Phase::Socks(next);
        }
    }

    /// The CONNECT request: checked and looked up as an HTTP client's CONNECT.
    fn socks_request(&mut self, ended: bool, rules: &Rules<'_>, resolver: &mut Resolver, now: Instant) -> Step {
        let (req, used) = match socks::request(&self.read) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return self.incomplete(ended, "request"),
            Err((rep, why)) => {
                tell(&self.client, &socks::reply(rep, None));
                return self.close(Reason::BadSocks(why));
            }
        };
        if let Err(step) = self.decide(&req.host, req.port, true, rules, now) {
            return step;
        }
        // What the client sent past its request is the tunnel's first bytes
        // (checked against the name by conn's bind, as after a CONNECT).
        self.read.drain(..used.min(self.read.len()));
        if let Some(step) = self.tunnel_checks((&req.host, req.port), (req.host.as_bytes(), "in the name asked", 0), rules) {
            return step;
        }
        let parent = rules.forward.and_then(|(_, f)| f.parent_for(&req.host)).cloned();
        self.look_up(Target { host: req.host, port: req.port, tunnel: true, addrs: Vec::new(), exchange: None, parent, opened: false }, rules, resolver, now)
    }

    /// Answer one SOCKS5 message (`used` bytes of what was read) with a few
    /// bytes: they fit an empty socket buffer, so a short write is a fault.
    fn say(&mut self, answer: &[u8], used: usize) -> io::Result<()> {
        self.read.drain(..used.min(self.read.len()));
        match self.client.write(answer) {
            Ok(n) if n == answer.len() => Ok(()),
            Ok(_) => Err(io::Error::new(io::ErrorKind::WriteZero, "a short write of a SOCKS5 answer")),
            Err(e) => Err(e),
        }
    }

    /// A message is not complete yet: wait, unless the client has closed.
    fn incomplete(&mut self, ended: bool, what: &str) -> Step {
        match ended {
            false => Step::Wait,
            true if self.read.is_empty() => self.close(Reason::Closed(Side::Client)),
            true => self.close(Reason::BadSocks(format!("the client closed in the middle of its SOCKS5 {what} ({} bytes)", self.read.len()))),
        }
    }
}
