//! Work the loop does on a schedule rather than for a client: active health
//! checks (`--health-check`) and DNS re-resolution (`--resolve-interval`).
//!
//! A health check is a plain TCP connect, watched by the same loop as every
//! client: writable means it finished, and its outcome is fed to the pool
//! exactly like a client's connect would be. Resolution, by contrast, is a
//! blocking call on every runtime (WasmEdge's sock_getaddrinfo, getaddrinfo
//! natively): it runs here, off every connection's path, once per interval,
//! and only for upstreams given by name.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::log::{Level, Record};
use crate::pool::{Outcome, Pool};
use crate::sys::{self, Stream};

/// One health-check connect in flight.
pub struct Check {
    pub route: usize,
    pub addr: SocketAddr,
    pub stream: Stream,
    pub deadline: Instant,
}

/// Start a check of every server of `pool` that has none in flight yet.
/// A connect that fails at once counts as a failed check there and then.
pub fn start_checks(route: usize, name: &str, pool: &mut Pool, in_flight: &[(usize, SocketAddr)], timeout: Duration, now: Instant) -> Vec<Check> {
    let mut started = Vec::new();
    let addrs: Vec<SocketAddr> = pool.servers.iter().map(|s| s.addr).collect();
    for addr in addrs {
        if in_flight.contains(&(route, addr)) {
            continue;
        }
        match Stream::connect(addr) {
            Ok(stream) => started.push(Check { route, addr, stream, deadline: now + timeout }),
            Err(e) if sys::out_of_descriptors(&e) => break, // ours, not the upstream's: next round
            Err(e) => checked(name, pool, addr, Err(e.to_string()), now),
        }
    }
    started
}

/// A check of `addr` ended (`Err` says why it failed): log a failure, feed
/// the outcome to the pool, and log what that changed in its health.
pub fn checked(route: &str, pool: &mut Pool, addr: SocketAddr, result: Result<(), String>, now: Instant) {
    if let Err(error) = &result {
        Record::new(Level::Debug, "check-failed").str("route", route).str("upstream", addr).str("error", error).emit();
    }
    let outcome = if result.is_ok() { Outcome::Reached } else { Outcome::Failed };
    if let Some(change) = pool.record(addr, outcome, now) {
        change.log(route, addr);
    }
}

/// Resolve every named upstream of `pool` again with the runtime's
/// getaddrinfo (where no resolver of ours has servers to ask: it blocks).
/// A lookup that fails, or finds nothing, keeps the addresses the pool has,
/// with a warning.
pub fn re_resolve(name: &str, pool: &mut Pool) {
    for i in 0..pool.remotes.len() {
        let Some(remote) = pool.remotes.get(i).cloned() else { continue };
        if remote.is_fixed() {
            continue; // a literal address never changes
        }
        resolved(name, pool, i, sys::resolve(&remote.host, remote.port).map_err(|e| e.to_string()));
    }
}

/// Upstream `i` of `pool` resolved again to `result`: use the addresses, or
/// keep the last ones with a warning.
pub fn resolved(name: &str, pool: &mut Pool, i: usize, result: Result<Vec<SocketAddr>, String>) {
    let Some(remote) = pool.remotes.get(i).cloned() else { return };
    match result {
        Ok(addrs) if !addrs.is_empty() => {
            let changed = pool.set_addrs(i, &addrs);
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            Record::new(if changed { Level::Info } else { Level::Debug }, "resolved")
                .str("route", name)
                .str("upstream", &remote)
                .str("addrs", list.join(","))
                .str("changed", if changed { "yes" } else { "no" })
                .emit();
        }
        Ok(_) => warn_kept(name, &remote.to_string(), "no address"),
        Err(e) => warn_kept(name, &remote.to_string(), &e),
    }
}

fn warn_kept(route: &str, remote: &str, error: &str) {
    Record::new(Level::Warn, "resolve-failed")
        .str("route", route)
        .str("upstream", remote)
        .str("error", error)
        .str("action", "keeping the last addresses")
        .emit();
}
