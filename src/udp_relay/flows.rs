//! The UDP relay's flow table: one flow per client address, found by that
//! address, bounded by its route's `flows=`, and swept for flows silent
//! for `idle=`. A file of its own: the table's bookkeeping, apart from
//! what moves the datagrams (`mod.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::close::Side;
use crate::sys::Datagram;

/// One client address and the socket that carries its datagrams to one server.
pub struct Flow {
    /// Its number in logs and the dump (the loop's connection counter).
    pub id: u64,
    pub client: SocketAddr,
    pub upstream: SocketAddr,
    /// Connected to `upstream`: only its datagrams arrive here.
    pub socket: Datagram,
    pub opened: Instant,
    /// The last datagram either way.
    pub last: Instant,
    /// Datagrams and bytes passed: (to upstream, to client).
    pub datagrams: (u64, u64),
    pub bytes: (u64, u64),
    /// The dump's count per direction.
    pub dumped: (usize, usize),
    /// The server has answered at least once (the pool counts it then).
    pub answered: bool,
}

impl Flow {
    pub fn new(id: u64, client: SocketAddr, upstream: SocketAddr, socket: Datagram, now: Instant) -> Flow {
        Flow { id, client, upstream, socket, opened: now, last: now, datagrams: (0, 0), bytes: (0, 0), dumped: (0, 0), answered: false }
    }

    /// A datagram of `n` bytes went to `to`.
    pub fn passed(&mut self, to: Side, n: usize, now: Instant) {
        let (d, b) = match to {
            Side::Upstream => (&mut self.datagrams.0, &mut self.bytes.0),
            Side::Client => (&mut self.datagrams.1, &mut self.bytes.1),
        };
        *d += 1;
        *b += n as u64;
        self.last = now;
    }
}

#[derive(Default)]
pub struct Flows {
    flows: Slab<Flow>,
    by_client: HashMap<SocketAddr, usize>,
}

impl Flows {
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn find(&self, client: SocketAddr) -> Option<usize> {
        self.by_client.get(&client).copied()
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Flow> {
        self.flows.get_mut(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Flow)> {
        self.flows.iter()
    }

    pub fn keys(&self) -> Vec<usize> {
        self.flows.iter().map(|(k, _)| k).collect()
    }

    pub fn insert(&mut self, flow: Flow) -> usize {
        let client = flow.client;
        let key = self.flows.insert(flow);
        self.by_client.insert(client, key);
        key
    }

    /// Take flow `key` out (dropping it closes its socket).
    pub fn remove(&mut self, key: usize) -> Option<Flow> {
        let flow = self.flows.try_remove(key)?;
        self.by_client.remove(&flow.client);
        Some(flow)
    }

    /// The flow silent longest: the one a full table gives up. A scan, paid
    /// only when the table is full and a new client comes.
    pub fn idlest(&self) -> Option<usize> {
        self.flows.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k)
    }

    /// The flows silent for `idle` at `now`.
    pub fn idle_since(&self, now: Instant, idle: Duration) -> Vec<usize> {
        self.flows.iter().filter(|(_, f)| now.saturating_duration_since(f.last) >= idle).map(|(k, _)| k).collect()
    }
}
