//! Where names come from, as a container expects: `/etc/resolv.conf`
//! (nameservers, `search`, `options ndots: timeout: attempts:`) and
//! `/etc/hosts`, read the way glibc reads them. Parsing is pure; `main`
//! reads the files (on WasmEdge only with `--dir /etc`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What resolv.conf says, with glibc's defaults for what it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as given first.
    pub ndots: usize,
    /// How long one query waits for its answer.
    pub timeout: Duration,
    /// How many times each nameserver is asked.
    pub attempts: usize,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf { nameservers: Vec::new(), search: Vec::new(), ndots: 1, timeout: Duration::from_secs(5), attempts: 2 }
    }
}

/// glibc uses at most three nameservers and six search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 6;

impl ResolvConf {
    /// Parse resolv.conf text. Unknown lines and options are ignored, as
    /// glibc ignores them; a later `search` or `domain` line replaces an
    /// earlier one.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // An IPv6 address may carry a zone (fe80::1%eth0): not supported, skipped.
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        if conf.nameservers.len() < MAX_NAMESERVERS {
                            conf.nameservers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    conf.search = words.take(MAX_SEARCH).map(|d| d.trim_end_matches('.').to_ascii_lowercase()).filter(|d| !d.is_empty()).collect();
                }
                Some("options") => {
                    for opt in words {
                        let (key, value) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = value.parse::<u64>().ok();
                        match (key, n) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => conf.timeout = Duration::from_secs(n.clamp(1, 30)),
                            ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5) as usize,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The names to ask for, in order, for `name` (lower case, no trailing
    /// dot unless it is absolute): with fewer than `ndots` dots the search
    /// domains come first, as glibc does; an absolute name is only itself.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

/// `/etc/hosts`: names to addresses, first in the file first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    entries: Vec<(String, IpAddr)>,
}

impl Hosts {
    pub fn parse(text: &str) -> Hosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else { continue };
            for name in words {
                entries.push((name.trim_end_matches('.').to_ascii_lowercase(), ip));
            }
        }
        Hosts { entries }
    }

    /// Every address listed for `name` (normalized), in file order.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for (n, ip) in &self.entries {
            if n == name && !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }

    /// The first name listed for `ip` (a reverse lookup of this host's own
    /// addresses).
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.entries.iter().find(|(_, a)| *a == ip).map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_reads_like_glibc() {
        let c = ResolvConf::parse(
            "# Docker\nnameserver 127.0.0.11\nnameserver ::1 # six\nnameserver fe80::1%eth0\nsearch team.svc.cluster.local svc.cluster.local cluster.local\n\
             options ndots:5 timeout:2 attempts:3 rotate\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n",
        );
        assert_eq!(c.nameservers, vec!["127.0.0.11:53".parse().unwrap(), "[::1]:53".parse().unwrap(), "10.0.0.1:53".parse().unwrap()], "at most three");
        assert_eq!(c.search, ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"]);
        assert_eq!((c.ndots, c.timeout, c.attempts), (5, Duration::from_secs(2), 3));
        let empty = ResolvConf::parse("");
        assert_eq!(empty, ResolvConf::default());
        assert_eq!(ResolvConf::parse("search a.\ndomain b").search, ["b"], "the last one wins");
    }

    #[test]
    fn search_and_ndots_order_the_candidates() {
        let k8s = ResolvConf { search: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()], ndots: 5, ..ResolvConf::default() };
        assert_eq!(k8s.candidates("api"), ["api.ns.svc.cluster.local", "api.svc.cluster.local", "api"]);
        assert_eq!(k8s.candidates("api.team"), ["api.team.ns.svc.cluster.local", "api.team.svc.cluster.local", "api.team"]);
        assert_eq!(k8s.candidates("example.com."), ["example.com"], "absolute");
        let plain = ResolvConf { search: vec!["corp.test".into()], ..ResolvConf::default() };
        assert_eq!(plain.candidates("pypi.org"), ["pypi.org", "pypi.org.corp.test"], "ndots 1: as given first");
        assert_eq!(plain.candidates("db"), ["db.corp.test", "db"]);
    }

    #[test]
    fn hosts_map_names_in_file_order() {
        let h = Hosts::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.1.2.3 DB.internal db # compose\nbad line\n");
        assert_eq!(h.lookup("localhost"), vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(h.lookup("db.internal"), vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert!(h.lookup("nope").is_empty());
        assert_eq!(h.len(), 5);
    }
}
