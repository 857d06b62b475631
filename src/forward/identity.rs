//! Whose policy a client gets, from what the client cannot change.
//!
//! ```text
//! 0.0.0.0:3128=forward;client=app;from=172.18.0.2;to=@python
//! 0.0.0.0:3128=forward;client=agent;from=172.18.0.3;to=@node;budget=*:200req/1h
//! 0.0.0.0:3128=forward;client=others;to=          (the default: nothing)
//! unix:/run/wasiter/agent.sock=forward;client=agent;uid=1001;to=@rust
//! ```
//!
//! Several forward routes may share one listen address, one policy each
//! (`crate::route::doors` checks that they can be told apart). A client
//! gets the first policy whose `from=` holds its address or whose `uid=`
//! holds its Unix peer's uid (natively: `SO_PEERCRED`, which the kernel
//! fills in, never the client); else the one with neither, the default;
//! else it is refused at once (its close line says `reason=denied`),
//! before a byte is read. Nothing a client sends chooses: no header, no
//! login name, no name in a request. The address is the TCP peer's: a
//! sandbox cannot take another's address on a container network without
//! NET_ADMIN (docs/egress.md says what to deny it).
//!
//! `client=NAME` names the policy: logs and metrics call its route
//! `NAME@LISTEN` (bounded: one per route), refusals say it, ask's
//! grants and budgets are kept per route, so per client.

use std::net::IpAddr;

use ipnet::IpNet;

/// The most characters in a `client=` name.
pub const NAME_MAX: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// `client=NAME`: what logs, metrics and refusals call it.
    pub name: Option<String>,
    /// `from=CIDR,...`: the client addresses this policy is for.
    pub from: Vec<IpNet>,
    /// `uid=N,...`: a Unix listener's peers (natively) this policy is for.
    pub uids: Vec<u32>,
    /// `client=` and `auth=` without `from=` or `uid=`: the clients that
    /// log in with its `auth=` (a proxy login is a secret the sandbox
    /// holds: the weakest of the three, for where the others do not fit).
    pub login: bool,
}

/// A policy on a shared address chosen by its login: which one (its
/// route's index), the login, and its `client=` name.
#[derive(Clone, Debug)]
pub struct LoginPolicy {
    pub policy: usize,
    pub login: super::Login,
    pub name: Option<String>,
}

impl Identity {
    /// `client=NAME` (`check_name`).
    pub fn set_name(&mut self, value: &str) -> Result<(), String> {
        check_name(value)?;
        self.name = Some(value.to_string());
        Ok(())
    }

    /// `uid=N,...`: numeric uids (a name would be looked up in a file the
    /// wasm builds cannot read; `id -u NAME` gives the number).
    pub fn add_uids(&mut self, value: &str) -> Result<(), String> {
        for item in value.split(',').map(str::trim) {
            let uid = item.parse::<u32>().map_err(|_| format!("bad uid {item:?} in uid= (a number, e.g. uid=1000; `id -u NAME` prints it)"))?;
            self.uids.push(uid);
        }
        Ok(())
    }

    /// No `from=`, no `uid=` and no login of its own: the policy of every
    /// client no other policy on its address claims.
    pub fn is_default(&self) -> bool {
        self.from.is_empty() && self.uids.is_empty() && !self.login
    }

    /// Claimed by what the client is (its address or uid), which a login
    /// may not change; a default or login policy's client may log in to
    /// another login policy.
    pub fn by_socket(&self) -> bool {
        !self.from.is_empty() || !self.uids.is_empty()
    }

    /// It claims a client at `ip` (the TCP peer; `None` for a Unix peer)
    /// with Unix peer uid `uid` (`None` where unknown).
    pub fn claims(&self, ip: Option<IpAddr>, uid: Option<u32>) -> bool {
        let ip = ip.map(|ip| match ip {
            // ::ffff:a.b.c.d is a.b.c.d: a dual-stack listener's IPv4 client.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        });
        ip.is_some_and(|ip| self.from.iter().any(|net| net.contains(&ip))) || uid.is_some_and(|u| self.uids.contains(&u))
    }

    /// What a log line calls the route: `NAME@LISTEN`, or the address alone.
    pub fn label(&self, listen: &str) -> String {
        match &self.name {
            Some(name) => format!("{name}@{listen}"),
            None => listen.to_string(),
        }
    }

    /// Who chooses it, for an error that has to tell two apart.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.from.iter().map(|n| format!("from={n}")).collect();
        parts.extend(self.uids.iter().map(|u| format!("uid={u}")));
        if parts.is_empty() {
            "every other client (the default)".into()
        } else {
            parts.join(" ")
        }
    }
}

/// A client's name (`client=`, a secret's `clients=`): letters, digits,
/// `-`, `_` and `.`, at most 32.
pub fn check_name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty() && value.len() <= NAME_MAX && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match ok {
        true => Ok(()),
        false => Err(format!("bad client name {value:?} (1 to {NAME_MAX} letters, digits, '-', '_' or '.', e.g. client=agent-1)")),
    }
}

/// Which of these policies (identities in order) a client gets: the first
/// that claims it, else the default (no `from=`, no `uid=`, no login),
/// else the first chosen by login (its login then decides which), else none.
pub fn choose<'a>(policies: impl Iterator<Item = &'a Identity> + Clone, ip: Option<IpAddr>, uid: Option<u32>) -> Option<usize> {
    let mut all = policies.clone();
    all.position(|id| id.claims(ip, uid))
        .or_else(|| policies.clone().position(Identity::is_default))
        .or_else(|| policies.into_iter().position(|id| id.login))
}

/// The login policy (of a shared address) a client's login opens, by
/// `check` (HTTP's `Proxy-Authorization`, or SOCKS5's pair).
pub fn by_login(logins: &[LoginPolicy], check: impl Fn(&super::Login) -> bool) -> Option<&LoginPolicy> {
    logins.iter().find(|l| check(&l.login))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(from: &[&str], uids: &[u32]) -> Identity {
        Identity { name: None, from: from.iter().map(|n| n.parse().unwrap()).collect(), uids: uids.to_vec(), login: false }
    }

    #[test]
    fn the_first_that_claims_a_client_else_the_default_else_none() {
        let a = id(&["10.0.0.2/32"], &[]);
        let b = id(&["10.0.0.0/24"], &[1001]);
        let default = id(&[], &[]);
        let all = [a.clone(), b.clone(), default];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(choose(all.iter(), ip("10.0.0.2"), None), Some(0));
        assert_eq!(choose(all.iter(), ip("10.0.0.3"), None), Some(1));
        assert_eq!(choose(all.iter(), None, Some(1001)), Some(1));
        assert_eq!(choose(all.iter(), ip("10.0.1.3"), Some(7)), Some(2));
        // Without a default, an unclaimed client has no policy.
        let two = [a, b];
        assert_eq!(choose(two.iter(), ip("192.168.0.1"), None), None);
        assert_eq!(choose(two.iter(), None, None), None);
        // A dual-stack listener's mapped IPv4 client is its IPv4 address.
        assert_eq!(choose(two.iter(), ip("::ffff:10.0.0.2"), None), Some(0));
    }

    #[test]
    fn names_and_uids_are_checked() {
        let mut id = Identity::default();
        assert!(id.set_name("agent-1").is_ok());
        assert_eq!(id.label("0.0.0.0:3128"), "agent-1@0.0.0.0:3128");
        for bad in ["", "a b", "a@b", "x".repeat(33).as_str(), "a\"b"] {
            assert!(id.set_name(bad).unwrap_err().contains("bad client name"), "{bad:?}");
        }
        assert!(id.add_uids("1000, 1001").is_ok());
        assert_eq!(id.uids, vec![1000, 1001]);
        assert!(id.add_uids("root").unwrap_err().contains("id -u NAME"));
        assert!(id.add_uids("-1").is_err());
    }
}
