//! The command line and the environment (flags win), read into `Config`.
//!
//! Every setting is one entry of one table ([`ROUTING`] and [`TUNING`]): its
//! flag, variable, default, the form a good value has, and its help. `--help`
//! is printed from the table and flags are looked up in it, so a new setting
//! is an entry there and one line in `parse`. Every bad value becomes one line
//! that names the setting, quotes what was given and says what was expected;
//! `main` prints it and exits 2.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::coalesce::Coalesce;
use crate::log::{Format, Level};
use crate::route::{self, parse_local, parse_route, parse_target, RouteSpec, ROUTE_FORM};
use crate::settings::{Config, Dump, DumpMode};

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--check`: the settings and routes parse; exit without binding.
    Check(Box<Config>),
    Help,
    Version,
}

/// A one-line, user-facing reason the configuration was rejected.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One setting.
pub struct Setting {
    flag: &'static str,
    /// A one-letter alias (`-q`).
    short: Option<char>,
    env: &'static str,
    /// The value's name in --help (`DUR`); empty for a switch (a flag that
    /// takes no value: given, it means "on").
    value: &'static str,
    /// As --help shows it; empty for none.
    default: &'static str,
    /// What a good value looks like, for error messages.
    expected: &'static str,
    /// --help's lines about it.
    help: &'static str,
}

const DURATION_ABOVE_0: &str = "a duration above 0, e.g. 500ms, 5s or 1m";
const BOOLEAN: &str = "1/0, true/false or yes/no";

const LOCAL: Setting = Setting {
    flag: "--local",
    short: None,
    env: "LOCAL",
    value: "ADDR",
    default: "",
    expected: "IP:PORT, e.g. 0.0.0.0:8080, [::]:8080 or :8080",
    help: "Listen address, IP:PORT: 0.0.0.0:8080, [::]:8080, or :8080 for all IPv4.",
};
const REMOTE: Setting = Setting {
    flag: "--remote",
    short: None,
    env: "REMOTE",
    value: "TARGET",
    default: "",
    expected: "HOST:PORT[,HOST:PORT...][;OPTION...] with ports from 1 to 65535, e.g. backend:80, 127.0.0.1:6379 or [::1]:80",
    help: "Where LOCAL's clients go: HOST:PORT[,HOST:PORT...][;OPTION...]. A host\nis a name or an IP (IPv6 in brackets); a name's every address is used.",
};
const ROUTE: Setting = Setting {
    flag: "--route",
    short: None,
    env: "WASITER_ROUTES",
    value: "ROUTE",
    default: "",
    expected: ROUTE_FORM,
    help: "LISTEN=TARGET, e.g. 0.0.0.0:8080=web1:80,web2:80;policy=round-robin\n(repeatable; the variable holds routes separated by spaces)",
};
const ROUTES_FILE: Setting = Setting {
    flag: "--routes-file",
    short: None,
    env: "WASITER_ROUTES_FILE",
    value: "PATH",
    default: "",
    expected: "a readable file with one route per line",
    help: "One ROUTE per line; '#' starts a comment. (WasmEdge: --dir the folder.)",
};
const CONNECT_TIMEOUT: Setting = Setting {
    flag: "--connect-timeout",
    short: None,
    env: "WASITER_CONNECT_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "How long one upstream connect may take before the next upstream.",
};
const FAIL_THRESHOLD: Setting = Setting {
    flag: "--fail-threshold",
    short: None,
    env: "WASITER_FAIL_THRESHOLD",
    value: "N",
    default: "3",
    expected: "a whole number from 1 to 1000",
    help: "After this many failed connects in a row, an upstream is skipped...",
};
const COOLDOWN: Setting = Setting {
    flag: "--cooldown",
    short: None,
    env: "WASITER_COOLDOWN",
    value: "DUR",
    default: "10s",
    expected: "a duration above 0, e.g. 500ms, 10s or 1m",
    help: "...for this long, then tried again.",
};
const HEALTH_CHECK: Setting = Setting {
    flag: "--health-check",
    short: None,
    env: "WASITER_HEALTH_CHECK",
    value: "DUR",
    default: "0 (off)",
    expected: "a duration, e.g. 2s or 1m (0 turns it off)",
    help: "Also test every upstream with a TCP connect this often.",
};
const RESOLVE_INTERVAL: Setting = Setting {
    flag: "--resolve-interval",
    short: None,
    env: "WASITER_RESOLVE_INTERVAL",
    value: "DUR",
    default: "30s",
    expected: "a duration, e.g. 30s or 5m (0: resolve only at start)",
    help: "Resolve upstream names again this often (0: only at start). A failed\nlookup keeps the last addresses. In the loop when there are nameservers\n(resolv.conf or --resolver); through getaddrinfo, which blocks, when not.",
};
const PROXY_HEADER_TIMEOUT: Setting = Setting {
    flag: "--proxy-header-timeout",
    short: None,
    env: "WASITER_PROXY_HEADER_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "With accept-proxy, how long a client may take to send its header.",
};
const PEEK_TIMEOUT: Setting = Setting {
    flag: "--peek-timeout",
    short: None,
    env: "WASITER_PEEK_TIMEOUT",
    value: "DUR",
    default: "5s",
    expected: DURATION_ABOVE_0,
    help: "On a port routed by name, how long a client may take to send its\nClientHello or request head.",
};
const RESOLVER: Setting = Setting {
    flag: "--resolver",
    short: None,
    env: "WASITER_RESOLVER",
    value: "ADDRS",
    default: "resolv.conf",
    expected: "IP[:PORT][,IP[:PORT]...], e.g. 127.0.0.11 or 10.0.0.2:53,10.0.0.3",
    help: "The DNS servers for forward routes' destinations (default: the\nnameservers of /etc/resolv.conf; WasmEdge: --dir /etc). /etc/hosts wins.",
};
const RESOLV_CONF: Setting = Setting {
    flag: "--resolv-conf",
    short: None,
    env: "WASITER_RESOLV_CONF",
    value: "PATH",
    default: "/etc/resolv.conf",
    expected: "a file path",
    help: "Where the nameservers, search list and options come from, if readable.",
};
const HOSTS_FILE: Setting = Setting {
    flag: "--hosts-file",
    short: None,
    env: "WASITER_HOSTS_FILE",
    value: "PATH",
    default: "/etc/hosts",
    expected: "a file path",
    help: "Names that win over DNS, if readable.",
};
const DNS_TIMEOUT: Setting = Setting {
    flag: "--dns-timeout",
    short: None,
    env: "WASITER_DNS_TIMEOUT",
    value: "DUR",
    default: "resolv.conf",
    expected: DURATION_ABOVE_0,
    help: "How long one DNS query waits for its answer before the next server\nis asked (default: resolv.conf's options timeout:, else 5s).",
};
const DRAIN_TIMEOUT: Setting = Setting {
    flag: "--drain-timeout",
    short: None,
    env: "WASITER_DRAIN_TIMEOUT",
    value: "DUR",
    default: "10s",
    expected: "a duration, e.g. 10s or 1m (0: stop at once)",
    help: "On SIGTERM or SIGINT (native build): stop accepting, let open\nconnections finish for this long, then exit. A second signal exits at once.",
};
const RELOAD_INTERVAL: Setting = Setting {
    flag: "--reload-interval",
    short: None,
    env: "WASITER_RELOAD_INTERVAL",
    value: "DUR",
    default: "1s",
    expected: "a duration, e.g. 1s or 10s (0: never)",
    help: "How often the routes file is read again; when its content changed, the\nroutes are reloaded without dropping a connection (natively SIGHUP too).",
};
const IDLE_TIMEOUT: Setting = Setting {
    flag: "--idle-timeout",
    short: None,
    env: "WASITER_IDLE_TIMEOUT",
    value: "DUR",
    default: "10m",
    expected: "a duration, e.g. 30s, 10m or 1h (0 turns it off)",
    help: "Close a connection after this long with no byte in either direction;\n0 turns it off.",
};
const MAX_CONNS: Setting = Setting {
    flag: "--max-conns",
    short: None,
    env: "WASITER_MAX_CONNS",
    value: "N",
    default: "10000",
    expected: "a whole number from 1 to 1000000",
    help: "At this many connections the listener stops accepting until one closes.",
};
const BUFFER_SIZE: Setting = Setting {
    flag: "--buffer-size",
    short: None,
    env: "WASITER_BUFFER_SIZE",
    value: "SIZE",
    default: "256KiB",
    expected: "a size from 1KiB to 16MiB, e.g. 16384, 16k or 64KiB",
    help: "Buffer per direction, held only while it has bytes in it.",
};
const COALESCE: Setting = Setting {
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
const LOG_LEVEL: Setting = Setting {
    flag: "--log-level",
    short: None,
    env: "WASITER_LOG_LEVEL",
    value: "LEVEL",
    default: "info",
    expected: "error, warn, info or debug",
    help: "error, warn, info (adds a line per connection opened and closed) or debug.",
};
const LOG_FORMAT: Setting = Setting {
    flag: "--log-format",
    short: None,
    env: "WASITER_LOG_FORMAT",
    value: "FORMAT",
    default: "text",
    expected: "text or json",
    help: "text (key=value) or json (one JSON object per line).",
};
const QUIET: Setting = Setting {
    flag: "--quiet",
    short: Some('q'),
    env: "WASITER_QUIET",
    value: "",
    default: "off",
    expected: BOOLEAN,
    help: "Same as --log-level warn: no per-connection lines (the start line stays).",
};
const DUMP: Setting = Setting {
    flag: "--dump",
    short: None,
    env: "WASITER_DUMP",
    value: "MODE",
    default: "off",
    expected: "off, text or hex",
    help: "Log the bytes relayed, as socat -v/-x does: off, text or hex.",
};
const DUMP_LIMIT: Setting = Setting {
    flag: "--dump-limit",
    short: None,
    env: "WASITER_DUMP_LIMIT",
    value: "SIZE",
    default: "64KiB",
    expected: "a size up to 16MiB, e.g. 4096, 64k or 1MiB",
    help: "At most this many dumped bytes per connection.",
};
const METRICS: Setting = Setting {
    flag: "--metrics",
    short: None,
    env: "WASITER_METRICS",
    value: "ADDR",
    default: "off",
    expected: "IP:PORT or PORT (for 127.0.0.1:PORT), e.g. 127.0.0.1:9090, or off",
    help: "Serve Prometheus metrics at http://ADDR/metrics. IP:PORT, or a bare\nPORT for 127.0.0.1:PORT.",
};
const SUMMARY_INTERVAL: Setting = Setting {
    flag: "--summary-interval",
    short: None,
    env: "WASITER_SUMMARY_INTERVAL",
    value: "DUR",
    default: "0 (off)",
    expected: "a duration, e.g. 10s or 1m (0 turns it off)",
    help: "Log a one-line summary (connections, bytes, rates) this often.",
};
const TRACE: Setting = Setting {
    flag: "--trace",
    short: None,
    env: "WASITER_TRACE",
    value: "",
    default: "off",
    expected: BOOLEAN,
    help: "Log every socket call and poll wake-up: watch WASI sockets at work.",
};

/// Where clients come in and where they go.
pub const ROUTING: [&Setting; 4] = [&LOCAL, &REMOTE, &ROUTE, &ROUTES_FILE];
/// Everything else, in --help's order.
pub const TUNING: [&Setting; 25] = [
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
    &BUFFER_SIZE,
    &COALESCE,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &QUIET,
    &DUMP,
    &DUMP_LIMIT,
    &METRICS,
    &SUMMARY_INTERVAL,
    &TRACE,
];

const INTRO: &str = "wasiter: a TCP proxy for WebAssembly runtimes and Linux\n\nUSAGE:\n";

/// How this build is started, as the usage shows it: each runtime passes a
/// module only the variables it is told about, flags after the module.
fn usage() -> &'static str {
    match crate::sys::RUNTIME {
        "wasmedge" => "    wasmedge --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasmedge --run-mode=aot wasiter.aot.wasm --local 0.0.0.0:8080 --remote backend:80
    wasmedge wasiter.wasm --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin' --route :6379=cache:6379
",
        "wasmtime" => "    wasmtime run -S inherit-network -S allow-ip-name-lookup --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasmtime run -S inherit-network wasiter.wasm --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin'
",
        _ => "    wasiter --local 0.0.0.0:8080 --remote backend:80
    LOCAL=0.0.0.0:8080 REMOTE=backend:80 wasiter
    wasiter --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin' --route :6379=cache:6379
",
    }
}

const ROUTES_HEADER: &str = "\nROUTES (at least one: LOCAL with REMOTE, or --route, or a routes file):\n";

const ROUTE_OPTIONS: &str = "  OPTIONs, after the upstreams, each after a ';':
        policy=failover|round-robin|least-conn   how an upstream is picked
                                                 (default failover: in order)
        allow=CIDR,...  deny=CIDR,...            who may connect (deny wins;
                                                 an allow list admits only itself)
        send-proxy=v1|v2                         PROXY protocol to the upstream
        accept-proxy                             expect a PROXY header (v1 or v2)
                                                 from the client (a load balancer)
        sni=NAME,...  alpn=PROTO,...             serve the TLS clients asking for
                                                 these (bytes relayed unchanged)
        host=NAME,...                            serve the plain HTTP clients whose
                                                 first request names these hosts
        cert=PEM;key=PEM                         terminate TLS with this certificate
                                                 chain and key: the upstream gets plain
                                                 bytes (with sni=: the cert for those
                                                 names; alpn=: the protocols offered)
  Routes with these may share one listen address; a route there without
  them is its default. NAME: app.test, *.app.test (any subdomain, one label
  or more) or *. The most specific name wins, then the client's preferred
  ALPN, then the order given. No match and no default: TLS clients get an
  unrecognized_name alert, HTTP ones a 421. For example, on one port:
        --route ':8443=127.0.0.1:3000;sni=app.test'
        --route ':8443=127.0.0.1:8000;sni=api.test,*.api.test'
        --route ':8443=127.0.0.1:9000'
  A forward proxy (HTTP CONNECT and absolute URLs, and SOCKS5 on the same
  port), its clients naming where to go: LISTEN=forward;OPTION...
        to=NAME,...  not-to=NAME,...             names allowed (* for any) and refused;
                                                 no to= only on a loopback address
        ports=PORT,...                           default 443 for CONNECT, 80 for HTTP
        to-net=CIDR,...                          addresses a name may resolve to
                                                 (default: not loopback, link-local
                                                 or private networks)
        auth=USER:PASS                           ask for a login (407 without)
        report                                   let unlisted names through as
                                                 would-deny; draft the list on stop
        parent=http://[USER:PASS@]HOST:PORT      go out through this proxy (after
                                                 the list is checked)...
        direct=NAME,...                          ...except to these names
        transparent=PORT                         for connections redirected from PORT:
                                                 the name from SNI or Host
        --route '127.0.0.1:3128=forward;to=pypi.org,*.github.com'
";

const OUTRO: &str = "\
    --check                read the settings and routes (the routes file too),
                           say whether they are valid, and exit: nothing is bound
                           or resolved (as nginx -t, haproxy -c)
    -h, --help             this text
    -V, --version          the version

DUR is 500ms, 10s, 5m, 1h, 300us or plain seconds. SIZE is bytes, or with KiB/MiB (k/m).
Flags also take the form --name=value.";

/// The text of --help, from the table.
pub fn help() -> String {
    let mut out = String::from(INTRO);
    out.push_str(usage());
    out.push_str(ROUTES_HEADER);
    let entry = |out: &mut String, s: &Setting| {
        let mut left = match s.short {
            Some(c) => format!("-{c}, {}", s.flag),
            None => s.flag.to_string(),
        };
        if !s.value.is_empty() {
            left = format!("{left} {}", s.value);
        }
        let line = format!("    {left:<22} {:<24} {}", s.env, s.default);
        let _ = writeln!(out, "{}", line.trim_end());
        for line in s.help.lines() {
            let _ = writeln!(out, "        {}", line.trim_start());
        }
    };
    for s in ROUTING {
        entry(&mut out, s);
    }
    out.push_str(ROUTE_OPTIONS);
    out.push_str("\nSETTINGS (flag, environment variable, default):\n");
    for s in TUNING {
        entry(&mut out, s);
    }
    out.push_str(OUTRO);
    out
}

/// A raw value and where it came from, for the error message.
struct Given {
    value: String,
    from_flag: bool,
}

/// The flags as given, and the environment: what each setting reads from.
struct Sources<E> {
    flags: Vec<(&'static str, String)>,
    env: E,
}

impl Setting {
    fn error(&self, given: &Given) -> ConfigError {
        let name = if given.from_flag { self.flag } else { self.env };
        ConfigError(format!("{name}: {:?} is not valid; expected {}", given.value, self.expected))
    }

    fn missing(&self) -> ConfigError {
        ConfigError(format!("{} is not set; set it or pass {}, as {}", self.env, self.flag, self.expected))
    }

    /// A value that has the right form but says something wrong.
    fn invalid(&self, given: &Given, why: &str) -> ConfigError {
        let name = if given.from_flag { self.flag } else { self.env };
        ConfigError(format!("{name}: {:?} is not valid: {why}; expected {}", given.value, self.expected))
    }

    /// The flag's value if given, else the environment's.
    fn pick<E: Fn(&str) -> Option<String>>(&self, src: &Sources<E>) -> Option<Given> {
        match src.flags.iter().rev().find(|(f, _)| *f == self.flag) {
            Some((_, v)) => Some(Given { value: v.clone(), from_flag: true }),
            None => (src.env)(self.env).map(|value| Given { value, from_flag: false }),
        }
    }

    fn parse<T, E: Fn(&str) -> Option<String>>(&self, src: &Sources<E>, default: T, parse: impl Fn(&str) -> Option<T>) -> Result<T, ConfigError> {
        match self.pick(src) {
            None => Ok(default),
            Some(given) => parse(given.value.trim()).ok_or_else(|| self.error(&given)),
        }
    }
}

/// Parse flags (without the program name) and the environment.
pub fn parse(args: impl IntoIterator<Item = OsString>, env: impl Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let all = || ROUTING.iter().chain(TUNING.iter());
    let mut check = false;
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(ConfigError(format!("{e}; see --help"))),
        };
        let setting = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("check") => {
                check = true;
                continue;
            }
            Short(c) => all().find(|s| s.short == Some(c)),
            Long(name) => all().find(|s| s.flag.strip_prefix("--") == Some(name)),
            Value(_) => None,
        };
        let Some(setting) = setting else {
            return Err(ConfigError(format!("{}; see --help", arg.unexpected())));
        };
        if setting.value.is_empty() {
            flags.push((setting.flag, "1".to_string())); // a switch
            continue;
        }
        let value = parser
            .value()
            .map_err(|_| ConfigError(format!("{} needs a value: {}", setting.flag, setting.expected)))?;
        let value = value
            .into_string()
            .map_err(|v| ConfigError(format!("{}: {:?} is not valid UTF-8", setting.flag, v)))?;
        flags.push((setting.flag, value));
    }

    let src = Sources { flags, env };
    let positive = |s: &str| parse_duration(s).filter(|d| !d.is_zero());
    let off_if_zero = |s: &str| parse_duration(s).map(|d| Some(d).filter(|d| !d.is_zero()));
    let quiet = QUIET.parse(&src, false, parse_bool)?;
    let log_level = LOG_LEVEL.parse(&src, Level::Info, Level::parse)?;
    let config = Box::new(Config {
        routes: routes(&src)?,
        connect_timeout: CONNECT_TIMEOUT.parse(&src, Duration::from_secs(5), positive)?,
        fail_threshold: FAIL_THRESHOLD.parse(&src, 3, |s| s.parse().ok().filter(|n| (1..=1000).contains(n)))?,
        cooldown: COOLDOWN.parse(&src, Duration::from_secs(10), positive)?,
        health_check: HEALTH_CHECK.parse(&src, None, off_if_zero)?,
        resolve_interval: RESOLVE_INTERVAL.parse(&src, Some(Duration::from_secs(30)), off_if_zero)?,
        proxy_header_timeout: PROXY_HEADER_TIMEOUT.parse(&src, Duration::from_secs(5), positive)?,
        peek_timeout: PEEK_TIMEOUT.parse(&src, Duration::from_secs(5), positive)?,
        resolver: RESOLVER.parse(&src, None, |s| {
            let each = s.split(',').map(str::trim).map(|a| a.parse::<SocketAddr>().ok().or_else(|| Some(SocketAddr::new(a.parse::<IpAddr>().ok()?, 53))));
            each.collect::<Option<Vec<_>>>().filter(|v| !v.is_empty()).map(Some)
        })?,
        dns_timeout: DNS_TIMEOUT.parse(&src, None, |s| positive(s).map(Some))?,
        resolv_conf: RESOLV_CONF.parse(&src, "/etc/resolv.conf".to_string(), |s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))?,
        hosts_file: HOSTS_FILE.parse(&src, "/etc/hosts".to_string(), |s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))?,
        idle_timeout: IDLE_TIMEOUT.parse(&src, Some(Duration::from_secs(600)), off_if_zero)?,
        drain_timeout: DRAIN_TIMEOUT.parse(&src, Duration::from_secs(10), parse_duration)?,
        reload_interval: RELOAD_INTERVAL.parse(&src, Some(Duration::from_secs(1)), off_if_zero)?,
        routes_file: ROUTES_FILE.pick(&src).map(|f| f.value.trim().to_string()),
        max_conns: MAX_CONNS.parse(&src, 10_000, |s| s.parse().ok().filter(|n| (1..=1_000_000).contains(n)))?,
        buffer_size: BUFFER_SIZE.parse(&src, 256 * 1024, |s| parse_size(s).filter(|n| (1024..=16 << 20).contains(n)))?,
        coalesce: COALESCE.parse(&src, Coalesce::Auto, |s| match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Coalesce::Auto),
            "off" | "0" => Some(Coalesce::Off),
            // Holding longer than a delayed ACK (40 ms) could only cost more than the stall it avoids.
            _ => humantime::parse_duration(s).ok().filter(|d| !d.is_zero() && *d <= Duration::from_millis(40)).map(Coalesce::UpTo),
        })?,
        log_level: if quiet { log_level.min(Level::Warn) } else { log_level },
        log_format: LOG_FORMAT.parse(&src, Format::Text, |s| match s.to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        })?,
        dump: Dump {
            mode: DUMP.parse(&src, DumpMode::Off, |s| match s.to_ascii_lowercase().as_str() {
                "off" | "0" | "" => Some(DumpMode::Off),
                "text" => Some(DumpMode::Text),
                "hex" => Some(DumpMode::Hex),
                _ => None,
            })?,
            limit: DUMP_LIMIT.parse(&src, 64 * 1024, |s| parse_size(s).filter(|n| *n <= 16 << 20))?,
        },
        metrics: METRICS.parse(&src, None, |s| match s {
            "off" | "" => Some(None),
            _ => match s.parse::<u16>() {
                Ok(port) => Some(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))),
                Err(_) => s.parse().ok().map(Some),
            },
        })?,
        summary_interval: SUMMARY_INTERVAL.parse(&src, None, off_if_zero)?,
        trace: TRACE.parse(&src, false, parse_bool)?,
    });
    Ok(if check { Command::Check(config) } else { Command::Run(config) })
}

/// Every route, from LOCAL+REMOTE, --route / WASITER_ROUTES and the routes
/// file, in that order. Two routes may not listen on the same address.
fn routes<E: Fn(&str) -> Option<String>>(src: &Sources<E>) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes = Vec::new();
    match (LOCAL.pick(src), REMOTE.pick(src)) {
        (Some(local), Some(remote)) => {
            let listen = parse_local(local.value.trim()).ok_or_else(|| LOCAL.error(&local))?;
            let mut route = parse_target(listen, remote.value.trim()).map_err(|why| REMOTE.invalid(&remote, &why))?;
            route.origin = if remote.from_flag { REMOTE.flag } else { REMOTE.env }.to_string();
            routes.push(route);
        }
        (Some(_), None) => return Err(REMOTE.missing()),
        (None, Some(_)) => return Err(LOCAL.missing()),
        (None, None) => {}
    }
    // Every --route flag counts (they add up); without one, the variable.
    let given: Vec<Given> = match src.flags.iter().filter(|(f, _)| *f == ROUTE.flag).map(|(_, v)| v.clone()).collect::<Vec<_>>() {
        from_flags if !from_flags.is_empty() => from_flags.into_iter().map(|value| Given { value, from_flag: true }).collect(),
        _ => (src.env)(ROUTE.env)
            .map(|v| v.split_whitespace().map(|r| Given { value: r.to_string(), from_flag: false }).collect())
            .unwrap_or_default(),
    };
    for g in &given {
        let mut route = parse_route(g.value.trim()).map_err(|why| ROUTE.invalid(g, &why))?;
        route.origin = if g.from_flag { ROUTE.flag } else { ROUTE.env }.to_string();
        routes.push(route);
    }
    if let Some(file) = ROUTES_FILE.pick(src) {
        let name = if file.from_flag { ROUTES_FILE.flag } else { ROUTES_FILE.env };
        let text = std::fs::read_to_string(file.value.trim()).map_err(|e| {
            ConfigError(format!("{name}: cannot read {:?}: {e} (under WasmEdge or wasmtime, pass its folder with --dir)", file.value))
        })?;
        routes.extend(routes_in_file(file.value.trim(), &text)?);
    }
    if routes.is_empty() {
        return Err(ConfigError(format!(
            "LOCAL is not set; set LOCAL and REMOTE (or pass --local and --remote), or give routes with --route, WASITER_ROUTES or --routes-file, as {ROUTE_FORM}"
        )));
    }
    // Routes on one address share its listener: they must be told apart.
    route::doors(&routes).map_err(ConfigError)?;
    Ok(routes)
}

/// The routes of a routes file's text (`path` names it in messages): one
/// per line, `#` comments. Each route's origin is "PATH, line N". Also what
/// a reload reads.
pub fn routes_in_file(path: &str, text: &str) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if !line.is_empty() {
            let origin = format!("{path}, line {}", n + 1);
            let mut route = parse_route(line).map_err(|why| ConfigError(format!("{origin}: {line:?} is not valid: {why}; expected {ROUTE_FORM}")))?;
            route.origin = origin;
            routes.push(route);
        }
    }
    Ok(routes)
}

/// `500ms`, `10s`, `5m`, `1h`, `1m 30s`, or plain seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).ok()
}

/// Bytes, or with a binary suffix: `16k`, `64KiB`, `1m`, `1MiB`.
fn parse_size(s: &str) -> Option<usize> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Remote;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match parse(args.iter().map(OsString::from), |k| env.get(k).cloned())? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn err(args: &[&str], env: &[(&str, &str)]) -> String {
        run(args, env).expect_err("should be rejected").0
    }

    const BASE: [(&str, &str); 2] = [("LOCAL", "0.0.0.0:8080"), ("REMOTE", "backend:80")];

    #[test]
    fn env_alone_is_enough_and_defaults_apply() {
        let c = run(&[], &BASE).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.routes[0].upstreams, vec![Remote { host: "backend".into(), port: 80 }]);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!((c.fail_threshold, c.cooldown), (3, Duration::from_secs(10)));
        assert_eq!((c.health_check, c.resolve_interval), (None, Some(Duration::from_secs(30))));
        assert_eq!(c.proxy_header_timeout, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!((c.max_conns, c.buffer_size, c.log_level), (10_000, 256 * 1024, Level::Info));
        assert_eq!((c.log_format, c.dump.mode, c.metrics, c.summary_interval, c.trace), (Format::Text, DumpMode::Off, None, None, false));
    }

    #[test]
    fn flags_win_over_env() {
        let c = run(&["--local", "127.0.0.1:9000", "--remote=10.0.0.1:6379", "-q"], &BASE).unwrap();
        assert_eq!(c.routes[0].listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.routes[0].upstreams[0].to_string(), "10.0.0.1:6379");
        assert_eq!(c.log_level, Level::Warn, "--quiet is --log-level warn");
    }

    #[test]
    fn every_setting_parses() {
        let c = run(
            &["--connect-timeout", "250ms", "--idle-timeout", "0", "--max-conns", "3", "--buffer-size", "16k"],
            &[("LOCAL", ":9"), ("REMOTE", "[::1]:443"), ("WASITER_QUIET", "yes")],
        )
        .unwrap();
        assert_eq!(c.routes[0].listen, "0.0.0.0:9".parse().unwrap());
        assert_eq!(c.routes[0].upstreams, vec![Remote { host: "::1".into(), port: 443 }]);
        assert_eq!(c.routes[0].upstreams[0].to_string(), "[::1]:443");
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.idle_timeout, None);
        assert_eq!((c.max_conns, c.buffer_size, c.log_level), (3, 16384, Level::Warn));
        assert_eq!(run(&["--idle-timeout", "1m 30s"], &BASE).unwrap().idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(run(&["--buffer-size", "1MiB"], &BASE).unwrap().buffer_size, 1 << 20);
    }

    #[test]
    fn help_lists_every_setting_and_every_flag_parses() {
        let text = help();
        for s in ROUTING.iter().chain(TUNING.iter()) {
            assert!(text.contains(s.flag) && text.contains(s.env), "{} missing from --help", s.flag);
        }
        assert!(!text.lines().any(|l| l.ends_with(' ')), "no trailing blanks");
        // Every flag of the table is known to the parser (a switch takes no value).
        for s in TUNING {
            let args: Vec<&str> = if s.value.is_empty() { vec![s.flag] } else { vec![s.flag, "x"] };
            let err = run(&args, &BASE).err().map(|e| e.0).unwrap_or_default();
            assert!(!err.contains("unexpected"), "{}: {err}", s.flag);
        }
    }

    #[test]
    fn coalesce_is_auto_off_or_a_duration() {
        assert_eq!(run(&[], &BASE).unwrap().coalesce, Coalesce::Auto);
        assert_eq!(run(&["--coalesce", "off"], &BASE).unwrap().coalesce, Coalesce::Off);
        assert_eq!(run(&["--coalesce=2ms"], &BASE).unwrap().coalesce, Coalesce::UpTo(Duration::from_millis(2)));
        let env = [("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_COALESCE", "300us")];
        assert_eq!(run(&[], &env).unwrap().coalesce, Coalesce::UpTo(Duration::from_micros(300)));
    }

    #[test]
    fn observability_settings_parse() {
        let c = run(
            &["--log-format", "json", "--dump", "hex", "--dump-limit", "1k", "--metrics", "9090", "--trace"],
            &[("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_LOG_LEVEL", "debug"), ("WASITER_SUMMARY_INTERVAL", "10s")],
        )
        .unwrap();
        assert_eq!((c.log_level, c.log_format), (Level::Debug, Format::Json));
        assert_eq!(c.dump, Dump { mode: DumpMode::Hex, limit: 1024 });
        assert_eq!(c.metrics, Some("127.0.0.1:9090".parse().unwrap()), "a bare port is loopback");
        assert_eq!((c.summary_interval, c.trace), (Some(Duration::from_secs(10)), true));
        let c = run(&["--metrics", "0.0.0.0:9100"], &BASE).unwrap();
        assert_eq!(c.metrics, Some("0.0.0.0:9100".parse().unwrap()), "told otherwise");
        assert_eq!(run(&["--metrics", "off"], &BASE).unwrap().metrics, None);
    }

    #[test]
    fn routes_add_up_from_every_source() {
        let dir = std::env::temp_dir().join(format!("wasiter-routes-{}", std::process::id()));
        std::fs::write(&dir, "# the file\n127.0.0.1:7001=f:1 # trailing\n\n[::1]:7002=g:2;policy=rr\n").unwrap();
        let c = run(
            &["--route", ":7003=a:1,b:2;policy=least-conn", "--route=:7004=c:3", "--routes-file", dir.to_str().unwrap()],
            &[("LOCAL", ":7000"), ("REMOTE", "x:1,y:2;send-proxy=v1"), ("WASITER_ROUTES", ":7999=ignored:1")],
        )
        .unwrap();
        let listens: Vec<String> = c.routes.iter().map(|r| r.listen.to_string()).collect();
        assert_eq!(listens, ["0.0.0.0:7000", "0.0.0.0:7003", "0.0.0.0:7004", "127.0.0.1:7001", "[::1]:7002"], "flags replace the variable");
        assert_eq!(c.routes[0].upstreams.len(), 2);
        assert_eq!(c.routes[0].send_proxy, Some(crate::route::ProxyVersion::V1));
        assert_eq!(c.routes[1].policy, crate::route::Policy::LeastConn);
        let c = run(&[], &[("WASITER_ROUTES", " :7001=a:1\n :7002=b:2 ")]).unwrap();
        assert_eq!(c.routes.len(), 2, "the variable holds routes separated by white space");
        std::fs::write(&dir, "ok:1\n").unwrap();
        let e = err(&["--routes-file", dir.to_str().unwrap()], &[]);
        assert!(e.contains(", line 1: \"ok:1\" is not valid: no '='"), "{e}");
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn missing_settings_name_the_variable() {
        let e = err(&[], &[("REMOTE", "a:1")]);
        assert!(e.starts_with("LOCAL is not set"), "{e}");
        let e = err(&[], &[("LOCAL", ":1")]);
        assert!(e.starts_with("REMOTE is not set"), "{e}");
    }

    #[test]
    fn bad_values_name_the_setting_the_value_and_the_form() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str); // args, env, error start
        let cases: &[Case] = &[
            (&[], &[("LOCAL", "8080"), ("REMOTE", "a:1")], "LOCAL: \"8080\" is not valid; expected IP:PORT"),
            (&[], &[("LOCAL", "localhost:80"), ("REMOTE", "a:1")], "LOCAL: \"localhost:80\""),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "backend")], "REMOTE: \"backend\" is not valid: bad upstream \"backend\"; expected HOST:PORT"),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "backend:0")], "REMOTE: \"backend:0\""),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "backend:99999")], "REMOTE: \"backend:99999\""),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "::1:80")], "REMOTE: \"::1:80\""),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "ba d:80")], "REMOTE: \"ba d:80\""),
            (&[], &[("LOCAL", ":1"), ("REMOTE", ":80")], "REMOTE: \":80\""),
            (&["--remote", "x"], &BASE, "--remote: \"x\" is not valid"),
            (&["--connect-timeout", "soon"], &BASE, "--connect-timeout: \"soon\" is not valid; expected a duration"),
            (&["--connect-timeout", "0"], &BASE, "--connect-timeout: \"0\""),
            (&["--idle-timeout", "-1"], &BASE, "--idle-timeout: \"-1\""),
            (&["--max-conns", "0"], &BASE, "--max-conns: \"0\" is not valid; expected a whole number"),
            (&["--coalesce", "1s"], &BASE, "--coalesce: \"1s\" is not valid; expected auto, off, or a duration"),
            (&["--coalesce", "sometimes"], &BASE, "--coalesce: \"sometimes\" is not valid; expected auto"),
            (&["--buffer-size", "10"], &BASE, "--buffer-size: \"10\" is not valid; expected a size"),
            (&["--buffer-size", "64q"], &BASE, "--buffer-size: \"64q\""),
            (&["--log-level", "loud"], &BASE, "--log-level: \"loud\" is not valid; expected error, warn, info or debug"),
            (&["--log-format", "xml"], &BASE, "--log-format: \"xml\""),
            (&["--dump", "raw"], &BASE, "--dump: \"raw\""),
            (&["--metrics", "localhost:9090"], &BASE, "--metrics: \"localhost:9090\""),
            (&["--summary-interval", "often"], &BASE, "--summary-interval: \"often\""),
            (&["--route", ":80="], &[], "--route: \":80=\" is not valid: no upstream (an empty pool); expected LISTEN="),
            (&["--route", ":80=a:1;allow=10.0.0.0/33"], &[], "--route: \":80=a:1;allow=10.0.0.0/33\" is not valid: bad CIDR"),
            (&[], &[("WASITER_ROUTES", ":80=a:1 :81")], "WASITER_ROUTES: \":81\" is not valid: no '='"),
            (&[], &[("LOCAL", ":1"), ("REMOTE", "a:1;deny=x")], "REMOTE: \"a:1;deny=x\" is not valid: bad CIDR \"x\""),
            (&["--route", ":80=a:1", "--route", "0.0.0.0:80=b:1"], &[], "two routes listen on 0.0.0.0:80 and neither says what it serves"),
            (&["--fail-threshold", "0"], &BASE, "--fail-threshold: \"0\""),
            (&["--cooldown", "0"], &BASE, "--cooldown: \"0\""),
            (&["--health-check", "often"], &BASE, "--health-check: \"often\""),
            (&["--resolve-interval", "x"], &BASE, "--resolve-interval: \"x\""),
            (&["--proxy-header-timeout", "0"], &BASE, "--proxy-header-timeout: \"0\""),
            (&["--routes-file", "/nonexistent/routes"], &[], "--routes-file: cannot read \"/nonexistent/routes\": No such file"),
        ];
        for (args, env, want) in cases {
            let e = err(args, env);
            assert!(e.starts_with(want), "got {e:?}, want it to start with {want:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
        let e = err(&[], &[("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_MAX_CONNS", "many")]);
        assert!(e.starts_with("WASITER_MAX_CONNS: \"many\""), "{e}");
    }

    #[test]
    fn unknown_flags_and_stray_arguments_are_rejected() {
        assert!(err(&["--frobnicate"], &BASE).contains("--frobnicate"));
        assert!(err(&["extra"], &BASE).contains("extra"));
        assert!(err(&["--local"], &BASE).starts_with("--local needs a value"));
    }

    #[test]
    fn check_parses_everything_and_stops_there() {
        let got = parse(["--check".into(), "--route".into(), ":8080=db:5432".into()], |_| None);
        assert!(matches!(got, Ok(Command::Check(c)) if c.routes.len() == 1));
        let bad = parse(["--check".into(), "--route".into(), "8080=db:5432".into()], |_| None);
        assert!(matches!(bad, Err(ConfigError(m)) if m.contains("bad listen address")));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["--help".into()], |_| None), Ok(Command::Help)));
        assert!(matches!(parse(["-V".into()], |_| None), Ok(Command::Version)));
    }
}
