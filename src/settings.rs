//! The settings wasiter runs with: what `cli` made of the command line and
//! the environment, and what the rest of the crate reads. Nothing here
//! parses; `main` and the fuzz harness are the only users of `cli`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::coalesce::Coalesce;
use crate::log::{Format, Level};
use crate::route::RouteSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub routes: Vec<RouteSpec>,
    pub connect_timeout: Duration,
    pub fail_threshold: u32,
    pub cooldown: Duration,
    pub health_check: Option<Duration>,
    pub resolve_interval: Option<Duration>,
    pub proxy_header_timeout: Duration,
    /// How long a client of a port routed by name may take to say the name.
    pub peek_timeout: Duration,
    /// DNS servers for the in-loop resolver; `None`: resolv.conf's.
    pub resolver: Option<Vec<SocketAddr>>,
    /// How long one DNS query waits; `None`: resolv.conf's.
    pub dns_timeout: Option<Duration>,
    /// Where resolv.conf and the hosts file are read from.
    pub resolv_conf: String,
    pub hosts_file: String,
    pub idle_timeout: Option<Duration>,
    /// After a stop request, how long open connections may finish.
    pub drain_timeout: Duration,
    /// The routes file, if routes come from one, and how often it is read
    /// again for a reload (`None`: never).
    pub routes_file: Option<String>,
    pub reload_interval: Option<Duration>,
    /// `None`: as many as the descriptors fit (`crate::fds`).
    pub max_conns: Option<usize>,
    /// A listener's backlog; `None`: the kernel's somaxconn (`sys::somaxconn`), else 4096.
    pub backlog: Option<u32>,
    pub buffer_size: usize,
    /// `--udp-buffer`: the kernel buffer asked for each UDP relay socket.
    pub udp_buffer: usize,
    pub coalesce: Coalesce,
    pub log_level: Level,
    pub log_format: Format,
    pub dump: Dump,
    pub metrics: Option<SocketAddr>,
    /// `--admin`: ask mode's page and API, and `--admin-token`: its token file.
    pub admin: Option<(SocketAddr, String)>,
    pub summary_interval: Option<Duration>,
    pub trace: bool,
    /// `--ca DIR`: the sandbox's CA, for routes that open TLS (`open=`).
    pub ca: Option<String>,
    /// `--upstream-ca FILE`: roots for opened names' origins; `None`: the system's.
    pub upstream_ca: Option<String>,
    /// `--secrets FILE`: credentials swapped in at the proxy (`crate::secrets`).
    pub secrets: Option<String>,
}

/// Traffic dump: which form, and the cap per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dump {
    pub mode: DumpMode,
    pub limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpMode {
    Off,
    Text,
    Hex,
}
