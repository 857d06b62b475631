//! Every setting, one entry each: its flag, variable, default, the form a
//! good value has, and its help (`--help` is printed from here and flags
//! are looked up here; `mod.rs` reads each into `Config`).

/// One setting.
pub struct Setting {
    pub(super) flag: &'static str,
    /// A one-letter alias (`-q`).
    pub(super) short: Option<char>,
    pub(super) env: &'static str,
    /// The value's name in --help (`DUR`); empty for a switch (a flag that
    /// takes no value: given, it means "on").
    pub(super) value: &'static str,
    /// As --help shows it; empty for none.
    pub(super) default: &'static str,
    /// What a good value looks like, for error messages.
    pub(super) expected: &'static str,
    /// --help's lines about it.
    pub(super) help: &'static str,
}

use crate::route::ROUTE_FORM;

pub(super) const DURATION_ABOVE_0: &str = "a duration above 0, e.g. 500ms, 5s or 1m";
pub(super) const BOOLEAN: &str = "1/0, true/false or yes/no";

pub(super) const LOCAL: Setting = Setting {
    flag: "--local",
    short: None,
    env: "LOCAL",
    value: "ADDR",
    default: "",
    expected: "[udp:]IP:PORT or IP:FIRST-LAST, e.g. 0.0.0.0:8080, [::]:8080, :8080, udp::5353 or 127.0.0.1:20000-20010",
    help: "Listen address, IP:PORT: 0.0.0.0:8080, [::]:8080, or :8080 for all IPv4;\nIP:FIRST-LAST for a range of ports (REMOTE HOST:FIRST-LAST of the same\nlength, or one port); udp:IP:PORT relays datagrams.",
};
pub(super) const REMOTE: Setting = Setting {
    flag: "--remote",
    short: None,
    env: "REMOTE",
    value: "TARGET",
    default: "",
    expected: "HOST:PORT[,HOST:PORT...][;OPTION...] with ports from 1 to 65535, e.g. backend:80, 127.0.0.1:6379 or [::1]:80",
    help: "Where LOCAL's clients go: HOST:PORT[,HOST:PORT...][;OPTION...]. A host\nis a name or an IP (IPv6 in brackets); a name's every address is used.",
};
pub(super) const ROUTE: Setting = Setting {
    flag: "--route",
    short: None,
    env: "WASITER_ROUTES",
    value: "ROUTE",
    default: "",
    expected: ROUTE_FORM,
    help: "LISTEN=TARGET, e.g. 0.0.0.0:8080=web1:80,web2:80;policy=round-robin\n(repeatable; the variable holds routes separated by spaces)",
};
pub(super) const ROUTES_FILE: Setting = Setting {
    flag: "--routes-file",
    short: None,
    env: "WASITER_ROUTES_FILE",
    value: "PATH",
    default: "",
    expected: "a readable file with one route per line",
    help: "One ROUTE per line; '#' starts a comment. (WasmEdge: --dir the folder.)",
};
pub(super) const CONNECT_TIMEOUT: Setting = Setting {
    flag: "--connect-timeout",
    short: None,
    env: "WASITER_CONNECT_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "How long one upstream connect may take before the next upstream.",
};
pub(super) const FAIL_THRESHOLD: Setting = Setting {
    flag: "--fail-threshold",
    short: None,
    env: "WASITER_FAIL_THRESHOLD",
    value: "N",
    default: "3",
    expected: "a whole number from 1 to 1000",
    help: "After this many failed connects in a row, an upstream is skipped...",
};
pub(super) const COOLDOWN: Setting = Setting {
    flag: "--cooldown",
    short: None,
    env: "WASITER_COOLDOWN",
    value: "DUR",
    default: "10s",
    expected: "a duration above 0, e.g. 500ms, 10s or 1m",
    help: "...for this long, then tried again.",
};
pub(super) const HEALTH_CHECK: Setting = Setting {
    flag: "--health-check",
    short: None,
    env: "WASITER_HEALTH_CHECK",
    value: "DUR",
    default: "0 (off)",
    expected: "a duration, e.g. 2s or 1m (0 turns it off)",
    help: "Also test every upstream with a TCP connect this often.",
};
pub(super) const RESOLVE_INTERVAL: Setting = Setting {
    flag: "--resolve-interval",
    short: None,
    env: "WASITER_RESOLVE_INTERVAL",
    value: "DUR",
    default: "30s",
    expected: "a duration, e.g. 30s or 5m (0: resolve only at start)",
    help: "Resolve upstream names again this often (0: only at start). A failed\nlookup keeps the last addresses. In the loop when there are nameservers\n(resolv.conf or --resolver); through getaddrinfo, which blocks, when not.",
};
pub(super) const PROXY_HEADER_TIMEOUT: Setting = Setting {
    flag: "--proxy-header-timeout",
    short: None,
    env: "WASITER_PROXY_HEADER_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "With accept-proxy, how long a client may take to send its header.",
};
pub(super) const PEEK_TIMEOUT: Setting = Setting {
    flag: "--peek-timeout",
    short: None,
    env: "WASITER_PEEK_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "On a port routed by name, how long a client may take to send its\nClientHello or request head.",
};
pub(super) const RESOLVER: Setting = Setting {
    flag: "--resolver",
    short: None,
    env: "WASITER_RESOLVER",
    value: "ADDRS",
    default: "resolv.conf",
    expected: "IP[:PORT][,IP[:PORT]...], e.g. 127.0.0.11 or 10.0.0.2:53,10.0.0.3",
    help: "The DNS servers for forward routes' destinations (default: the\nnameservers of /etc/resolv.conf; WasmEdge: --dir /etc). /etc/hosts wins.",
};
pub(super) const RESOLV_CONF: Setting = Setting {
    flag: "--resolv-conf",
    short: None,
    env: "WASITER_RESOLV_CONF",
    value: "PATH",
    default: "/etc/resolv.conf",
    expected: "a file path",
    help: "Where the nameservers, search list and options come from, if readable.",
};
pub(super) const HOSTS_FILE: Setting = Setting {
    flag: "--hosts-file",
    short: None,
    env: "WASITER_HOSTS_FILE",
    value: "PATH",
    default: "/etc/hosts",
    expected: "a file path",
    help: "Names that win over DNS, if readable.",
};
pub(super) const DNS_TIMEOUT: Setting = Setting {
    flag: "--dns-timeout",
    short: None,
    env: "WASITER_DNS_TIMEOUT",
    value: "DUR",
    default: "resolv.conf",
    expected: DURATION_ABOVE_0,
    help: "How long one DNS query waits for its answer before the next server\nis asked (default: resolv.conf's options timeout:, else 5s).",
};
pub(super) const DRAIN_TIMEOUT: Setting = Setting {
    flag: "--drain-timeout",
    short: None,
    env: "WASITER_DRAIN_TIMEOUT",
    value: "DUR",
    default: "10s",
    expected: "a duration, e.g. 10s or 1m (0: stop at once)",
    help: "On SIGTERM or SIGINT (native build): stop accepting, let open\nconnections finish for this long, then exit. A second signal exits at once.",
};
pub(super) const RELOAD_INTERVAL: Setting = Setting {
    flag: "--reload-interval",
    short: None,
    env: "WASITER_RELOAD_INTERVAL",
    value: "DUR",
    default: "1s",
    expected: "a duration, e.g. 1s or 10s (0: never)",
    help: "How often the routes file is read again; when its content changed, the\nroutes are reloaded without dropping a connection (natively SIGHUP too).",
};
pub(super) const IDLE_TIMEOUT: Setting = Setting {
    flag: "--idle-timeout",
    short: None,
    env: "WASITER_IDLE_TIMEOUT",
    value: "DUR",
    default: "10m",
    expected: "a duration, e.g. 30s, 10m or 1h (0 turns it off)",
    help: "Close a connection after this long with no byte in either direction;\n0 turns it off.",
};
pub(super) const MAX_CONNS: Setting = Setting {
    flag: "--max-conns",
    short: None,
    env: "WASITER_MAX_CONNS",
    value: "N",
    default: "fit",
    expected: "a whole number from 1 to 1000000",
    help: "At this many connections the listener stops accepting until one closes.\nDefault: as many as the descriptors fit (two each), at most 10000.",
};
pub(super) const BACKLOG: Setting = Setting {
    flag: "--backlog",
    short: None,
    env: "WASITER_BACKLOG",
    value: "N",
    default: "somaxconn",
    expected: "a whole number from 1 to 1000000",
    help: "Clients a listener's queue holds while none is accepted (listen's backlog;\nthe kernel caps it at net.core.somaxconn). Default: somaxconn, else 4096.",
};
pub(super) const BUFFER_SIZE: Setting = Setting {
    flag: "--buffer-size",
    short: None,
    env: "WASITER_BUFFER_SIZE",
    value: "SIZE",
    default: "256KiB",
    expected: "a size from 1KiB to 16MiB, e.g. 16384, 16k or 64KiB",
    help: "Buffer per direction, held only while it has bytes in it.",
};
pub(super) const UDP_BUFFER: Setting = Setting {
    flag: "--udp-buffer",
    short: None,
    env: "WASITER_UDP_BUFFER",
    value: "SIZE",
    default: "4MiB",
    expected: "a size from 4KiB to 512MiB, e.g. 4m or 16MiB",
    help: "The kernel buffer asked for each socket of a UDP route, both ways:\nroom for a burst of datagrams while the proxy is busy. The kernel\ncaps it at net.core.rmem_max/wmem_max; the start line says what it granted.",
};
pub(super) const COALESCE: Setting = Setting {
    flag: "--coalesce",
    short: None,
    env: "WASITER_COALESCE",
    value: "MODE",
    default: "auto",
    expected: "auto, off, or a duration from 1us to 40ms, e.g. 500us or 2ms",
    help: "Where the runtime cannot turn Nagle off (WasmEdge, wasmtime), an answer\n\
           written in two small pieces waits 40 ms for the second. auto: in a\n\
           direction seen to split, hold a small first piece until the rest\n\
           comes (at most 500us), only where TCP_NODELAY does not work; off:\n\
           never; a DURATION (e.g. 2ms): hold up to that long, on every runtime.",
};
pub(super) const LOG_LEVEL: Setting = Setting {
    flag: "--log-level",
    short: None,
    env: "WASITER_LOG_LEVEL",
    value: "LEVEL",
    default: "info",
    expected: "error, warn, info or debug",
    help: "error, warn, info (adds a line per connection opened and closed) or debug.",
};
pub(super) const LOG_FORMAT: Setting = Setting {
    flag: "--log-format",
    short: None,
    env: "WASITER_LOG_FORMAT",
    value: "FORMAT",
    default: "text",
    expected: "text or json",
    help: "text (key=value) or json (one JSON object per line).",
};
pub(super) const QUIET: Setting = Setting {
    flag: "--quiet",
    short: Some('q'),
    env: "WASITER_QUIET",
    value: "",
    default: "off",
    expected: BOOLEAN,
    help: "Same as --log-level warn: no per-connection lines (the start line stays).",
};
pub(super) const DUMP: Setting = Setting {
    flag: "--dump",
    short: None,
    env: "WASITER_DUMP",
    value: "MODE",
    default: "off",
    expected: "off, text or hex",
    help: "Log the bytes relayed, as socat -v/-x does: off, text or hex.",
};
pub(super) const DUMP_LIMIT: Setting = Setting {
    flag: "--dump-limit",
    short: None,
    env: "WASITER_DUMP_LIMIT",
    value: "SIZE",
    default: "64KiB",
    expected: "a size up to 16MiB, e.g. 4096, 64k or 1MiB",
    help: "At most this many dumped bytes per connection.",
};
pub(super) const METRICS: Setting = Setting {
    flag: "--metrics",
    short: None,
    env: "WASITER_METRICS",
    value: "ADDR",
    default: "off",
    expected: "IP:PORT or PORT (for 127.0.0.1:PORT), e.g. 127.0.0.1:9090, or off",
    help: "Serve Prometheus metrics at http://ADDR/metrics. IP:PORT, or a bare\nPORT for 127.0.0.1:PORT.",
};
pub(super) const ADMIN: Setting = Setting {
    flag: "--admin",
    short: None,
    env: "WASITER_ADMIN",
    value: "ADDR",
    default: "off",
    expected: "IP:PORT or PORT (for 127.0.0.1:PORT), e.g. 127.0.0.1:9091, or off",
    help: "Ask mode's page and JSON API at http://ADDR/ (may be the --metrics\naddress: one listener serves both). Needs --admin-token.",
};
pub(super) const ADMIN_TOKEN: Setting = Setting {
    flag: "--admin-token",
    short: None,
    env: "WASITER_ADMIN_TOKEN",
    value: "FILE",
    default: "",
    expected: "a file whose first line is the token (made at start, mode 0600, if absent)",
    help: "The admin API's bearer token: FILE's first line (16 characters at\nleast); made with a random one at start when FILE does not exist.",
};
pub(super) const SUMMARY_INTERVAL: Setting = Setting {
    flag: "--summary-interval",
    short: None,
    env: "WASITER_SUMMARY_INTERVAL",
    value: "DUR",
    default: "0 (off)",
    expected: "a duration, e.g. 10s or 1m (0 turns it off)",
    help: "Log a one-line summary (connections, bytes, rates) this often.",
};
pub(super) const TRACE: Setting = Setting {
    flag: "--trace",
    short: None,
    env: "WASITER_TRACE",
    value: "",
    default: "off",
    expected: BOOLEAN,
    help: "Log every socket call and poll wake-up: watch WASI sockets at work.",
};
pub(super) const CA: Setting = Setting {
    flag: "--ca",
    short: None,
    env: "WASITER_CA",
    value: "DIR",
    default: "",
    expected: "a folder for the CA's two files (made at start if absent)",
    help: "The sandbox's CA for open=: DIR/ca-key.pem (its key, mode 0600) and\nDIR/ca.pem (what the sandbox trusts); made at first start when absent.",
};
pub(super) const MAKE_CA: Setting = Setting {
    flag: "--make-ca",
    short: None,
    env: "WASITER_MAKE_CA",
    value: "DIR",
    default: "",
    expected: "a folder for the CA's two files",
    help: "Make the CA in DIR (ca-key.pem, ca.pem) and exit; an existing one is kept.",
};
pub(super) const UPSTREAM_CA: Setting = Setting {
    flag: "--upstream-ca",
    short: None,
    env: "WASITER_UPSTREAM_CA",
    value: "FILE",
    default: "the system's",
    expected: "a PEM file of CA certificates",
    help: "The roots opened names' origins are verified against (open=).",
};
pub(super) const SECRETS: Setting = Setting {
    flag: "--secrets",
    short: None,
    env: "WASITER_SECRETS",
    value: "FILE",
    default: "",
    expected: "a secrets file only the proxy's user can read (docs/egress.md)",
    help: "Credentials swapped in at the proxy: the sandbox holds placeholders only.",
};
pub(super) const PLACEHOLDERS: Setting = Setting {
    flag: "--placeholders",
    short: None,
    env: "WASITER_PLACEHOLDERS",
    value: "",
    default: "off",
    expected: BOOLEAN,
    help: "With --secrets: print NAME=PLACEHOLDER per entry (for the sandbox) and exit.",
};

/// Where clients come in and where they go.
pub const ROUTING: [&Setting; 4] = [&LOCAL, &REMOTE, &ROUTE, &ROUTES_FILE];
/// Everything else, in --help's order.
pub const TUNING: [&Setting; 34] = [
    &CONNECT_TIMEOUT,
    &FAIL_THRESHOLD,
    &COOLDOWN,
    &HEALTH_CHECK,
    &RESOLVE_INTERVAL,
    &PROXY_HEADER_TIMEOUT,
    &PEEK_TIMEOUT,
    &RESOLVER,
    &RESOLV_CONF,
    &HOSTS_FILE,
    &DNS_TIMEOUT,
    &DRAIN_TIMEOUT,
    &RELOAD_INTERVAL,
    &IDLE_TIMEOUT,
    &MAX_CONNS,
    &BACKLOG,
    &BUFFER_SIZE,
    &UDP_BUFFER,
    &COALESCE,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &QUIET,
    &DUMP,
    &DUMP_LIMIT,
    &METRICS,
    &ADMIN,
    &ADMIN_TOKEN,
    &SUMMARY_INTERVAL,
    &TRACE,
    &CA,
    &MAKE_CA,
    &UPSTREAM_CA,
    &SECRETS,
    &PLACEHOLDERS,
];
