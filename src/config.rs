//! Settings, from the environment and from flags (flags win).
//!
//! Every bad value becomes one line that names the setting, quotes what was
//! given and says what was expected; `main` prints it and exits 2.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::time::Duration;

use crate::coalesce::Coalesce;
use crate::log::{Format, Level};
use crate::route::{parse_local, parse_route, parse_target, RouteSpec, ROUTE_FORM};
pub use crate::route::Remote;

pub const HELP: &str = "\
wasiter: a TCP proxy for WebAssembly runtimes and Linux

USAGE:
    wasmedge --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasiter --local 0.0.0.0:8080 --remote backend:80
    wasiter --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin' --route :6379=cache:6379

ROUTES (at least one: LOCAL with REMOTE, or --route, or a routes file):
    --local ADDR           LOCAL
        Listen address, IP:PORT: 0.0.0.0:8080, [::]:8080, or :8080 for all IPv4.
    --remote TARGET        REMOTE
        Where LOCAL's clients go: HOST:PORT[,HOST:PORT...][;OPTION...]. A host
        is a name or an IP (IPv6 in brackets); a name's every address is used.
    --route ROUTE          WASITER_ROUTES           (repeatable; the variable
        holds routes separated by spaces)
        LISTEN=TARGET, e.g. 0.0.0.0:8080=web1:80,web2:80;policy=round-robin
    --routes-file PATH     WASITER_ROUTES_FILE
        One ROUTE per line; '#' starts a comment. (WasmEdge: --dir the folder.)
  OPTIONs, after the upstreams, each after a ';':
        policy=failover|round-robin|least-conn   how an upstream is picked
                                                 (default failover: in order)
        allow=CIDR,...  deny=CIDR,...            who may connect (deny wins;
                                                 an allow list admits only itself)
        send-proxy=v1|v2                         PROXY protocol to the upstream
        accept-proxy                             expect a PROXY header (v1 or v2)
                                                 from the client (a load balancer)

SETTINGS (flag, environment variable, default):
    --connect-timeout DUR  WASITER_CONNECT_TIMEOUT  5s
        How long one upstream connect may take before the next upstream.
    --fail-threshold N     WASITER_FAIL_THRESHOLD   3
        After this many failed connects in a row, an upstream is skipped...
    --cooldown DUR         WASITER_COOLDOWN         10s
        ...for this long, then tried again.
    --health-check DUR     WASITER_HEALTH_CHECK     0 (off)
        Also test every upstream with a TCP connect this often.
    --resolve-interval DUR WASITER_RESOLVE_INTERVAL 30s
        Resolve upstream names again this often (0: only at start). A failed
        lookup keeps the last addresses. It blocks the loop while it runs.
    --proxy-header-timeout DUR WASITER_PROXY_HEADER_TIMEOUT 5s
        With accept-proxy, how long a client may take to send its header.
    --idle-timeout DUR     WASITER_IDLE_TIMEOUT     10m
        Close a connection after this long with no byte in either direction;
        0 turns it off.
    --max-conns N          WASITER_MAX_CONNS        10000
        At this many connections the listener stops accepting until one closes.
    --buffer-size SIZE     WASITER_BUFFER_SIZE      256KiB
        Buffer per direction, held only while it has bytes in it.
    --coalesce MODE        WASITER_COALESCE         auto
        Where the runtime cannot turn Nagle off (WasmEdge, wasmtime), an answer
        written in two small pieces waits 40 ms for the second. auto: in a
        direction seen to split, hold a small first piece until the rest
        comes (at most 500us), only where TCP_NODELAY does not work; off:
        never; a DURATION (e.g. 2ms): hold up to that long, on every runtime.
    --log-level LEVEL      WASITER_LOG_LEVEL        info
        error, warn, info (adds a line per connection opened and closed) or debug.
    --log-format FORMAT    WASITER_LOG_FORMAT       text
        text (key=value) or json (one JSON object per line).
    -q, --quiet            WASITER_QUIET            off
        Same as --log-level warn: no per-connection lines (the start line stays).
    --dump MODE            WASITER_DUMP             off
        Log the bytes relayed, as socat -v/-x does: off, text or hex.
    --dump-limit SIZE      WASITER_DUMP_LIMIT       64KiB
        At most this many dumped bytes per connection.
    --metrics ADDR         WASITER_METRICS          off
        Serve Prometheus metrics at http://ADDR/metrics. IP:PORT, or a bare
        PORT for 127.0.0.1:PORT.
    --summary-interval DUR WASITER_SUMMARY_INTERVAL 0 (off)
        Log a one-line summary (connections, bytes, rates) this often.
    --trace                WASITER_TRACE            off
        Log every socket call and poll wake-up: watch WASI sockets at work.
    -h, --help             this text
    -V, --version          the version

DUR is 500ms, 10s, 5m, 1h or plain seconds. SIZE is bytes, or with KiB/MiB (k/m).
Flags also take the form --name=value.";

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub routes: Vec<RouteSpec>,
    pub connect_timeout: Duration,
    pub fail_threshold: u32,
    pub cooldown: Duration,
    pub health_check: Option<Duration>,
    pub resolve_interval: Option<Duration>,
    pub proxy_header_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_conns: usize,
    pub buffer_size: usize,
    pub coalesce: Coalesce,
    pub log_level: Level,
    pub log_format: Format,
    pub dump: Dump,
    pub metrics: Option<SocketAddr>,
    pub summary_interval: Option<Duration>,
    pub trace: bool,
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

/// A one-line, user-facing reason the configuration was rejected.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One setting: its flag, its environment variable, what a good value looks like.
struct Setting {
    flag: &'static str,
    env: &'static str,
    expected: &'static str,
}

const LOCAL: Setting = Setting {
    flag: "--local",
    env: "LOCAL",
    expected: "IP:PORT, e.g. 0.0.0.0:8080, [::]:8080 or :8080",
};
const REMOTE: Setting = Setting {
    flag: "--remote",
    env: "REMOTE",
    expected: "HOST:PORT[,HOST:PORT...][;OPTION...] with ports from 1 to 65535, e.g. backend:80, 127.0.0.1:6379 or [::1]:80",
};
const ROUTE: Setting = Setting { flag: "--route", env: "WASITER_ROUTES", expected: ROUTE_FORM };
const ROUTES_FILE: Setting = Setting { flag: "--routes-file", env: "WASITER_ROUTES_FILE", expected: "a readable file with one route per line" };
const FAIL_THRESHOLD: Setting = Setting {
    flag: "--fail-threshold",
    env: "WASITER_FAIL_THRESHOLD",
    expected: "a whole number from 1 to 1000",
};
const COOLDOWN: Setting = Setting { flag: "--cooldown", env: "WASITER_COOLDOWN", expected: "a duration above 0, e.g. 500ms, 10s or 1m" };
const HEALTH_CHECK: Setting = Setting {
    flag: "--health-check",
    env: "WASITER_HEALTH_CHECK",
    expected: "a duration, e.g. 2s or 1m (0 turns it off)",
};
const RESOLVE_INTERVAL: Setting = Setting {
    flag: "--resolve-interval",
    env: "WASITER_RESOLVE_INTERVAL",
    expected: "a duration, e.g. 30s or 5m (0: resolve only at start)",
};
const PROXY_HEADER_TIMEOUT: Setting = Setting {
    flag: "--proxy-header-timeout",
    env: "WASITER_PROXY_HEADER_TIMEOUT",
    expected: "a duration above 0, e.g. 500ms, 5s or 1m",
};
const CONNECT_TIMEOUT: Setting = Setting {
    flag: "--connect-timeout",
    env: "WASITER_CONNECT_TIMEOUT",
    expected: "a duration above 0, e.g. 500ms, 5s or 1m",
};
const IDLE_TIMEOUT: Setting = Setting {
    flag: "--idle-timeout",
    env: "WASITER_IDLE_TIMEOUT",
    expected: "a duration, e.g. 30s, 10m or 1h (0 turns it off)",
};
const MAX_CONNS: Setting = Setting {
    flag: "--max-conns",
    env: "WASITER_MAX_CONNS",
    expected: "a whole number from 1 to 1000000",
};
const BUFFER_SIZE: Setting = Setting {
    flag: "--buffer-size",
    env: "WASITER_BUFFER_SIZE",
    expected: "a size from 1KiB to 16MiB, e.g. 16384, 16k or 64KiB",
};
const COALESCE: Setting = Setting {
    flag: "--coalesce",
    env: "WASITER_COALESCE",
    expected: "auto, off, or a duration from 1us to 40ms, e.g. 500us or 2ms",
};
const QUIET: Setting = Setting { flag: "--quiet", env: "WASITER_QUIET", expected: "1/0, true/false or yes/no" };
const TRACE: Setting = Setting { flag: "--trace", env: "WASITER_TRACE", expected: "1/0, true/false or yes/no" };
const LOG_LEVEL: Setting = Setting { flag: "--log-level", env: "WASITER_LOG_LEVEL", expected: "error, warn, info or debug" };
const LOG_FORMAT: Setting = Setting { flag: "--log-format", env: "WASITER_LOG_FORMAT", expected: "text or json" };
const DUMP: Setting = Setting { flag: "--dump", env: "WASITER_DUMP", expected: "off, text or hex" };
const DUMP_LIMIT: Setting = Setting {
    flag: "--dump-limit",
    env: "WASITER_DUMP_LIMIT",
    expected: "a size up to 16MiB, e.g. 4096, 64k or 1MiB",
};
const METRICS: Setting = Setting {
    flag: "--metrics",
    env: "WASITER_METRICS",
    expected: "IP:PORT or PORT (for 127.0.0.1:PORT), e.g. 127.0.0.1:9090, or off",
};
const SUMMARY_INTERVAL: Setting = Setting {
    flag: "--summary-interval",
    env: "WASITER_SUMMARY_INTERVAL",
    expected: "a duration, e.g. 10s or 1m (0 turns it off)",
};

/// A raw value and where it came from, for the error message.
struct Given {
    value: String,
    from_flag: bool,
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
    fn pick(&self, flags: &[(&'static str, String)], env: &impl Fn(&str) -> Option<String>) -> Option<Given> {
        let flag = flags.iter().rev().find(|(f, _)| *f == self.flag);
        match flag {
            Some((_, v)) => Some(Given { value: v.clone(), from_flag: true }),
            None => env(self.env).map(|value| Given { value, from_flag: false }),
        }
    }

    fn parse<T>(
        &self,
        flags: &[(&'static str, String)],
        env: &impl Fn(&str) -> Option<String>,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.pick(flags, env) {
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
    let (mut quiet_flag, mut trace_flag) = (false, false);
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(ConfigError(format!("{e}; see --help"))),
        };
        let setting = match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('q') | Long("quiet") => {
                quiet_flag = true;
                continue;
            }
            Long("trace") => {
                trace_flag = true;
                continue;
            }
            Long("log-level") => &LOG_LEVEL,
            Long("log-format") => &LOG_FORMAT,
            Long("dump") => &DUMP,
            Long("dump-limit") => &DUMP_LIMIT,
            Long("metrics") => &METRICS,
            Long("summary-interval") => &SUMMARY_INTERVAL,
            Long("local") => &LOCAL,
            Long("route") => &ROUTE,
            Long("routes-file") => &ROUTES_FILE,
            Long("fail-threshold") => &FAIL_THRESHOLD,
            Long("cooldown") => &COOLDOWN,
            Long("health-check") => &HEALTH_CHECK,
            Long("resolve-interval") => &RESOLVE_INTERVAL,
            Long("proxy-header-timeout") => &PROXY_HEADER_TIMEOUT,
            Long("remote") => &REMOTE,
            Long("connect-timeout") => &CONNECT_TIMEOUT,
            Long("idle-timeout") => &IDLE_TIMEOUT,
            Long("max-conns") => &MAX_CONNS,
            Long("buffer-size") => &BUFFER_SIZE,
            Long("coalesce") => &COALESCE,
            other => return Err(ConfigError(format!("{}; see --help", other.unexpected()))),
        };
        let value = parser
            .value()
            .map_err(|_| ConfigError(format!("{} needs a value: {}", setting.flag, setting.expected)))?;
        let value = value
            .into_string()
            .map_err(|v| ConfigError(format!("{}: {:?} is not valid UTF-8", setting.flag, v)))?;
        flags.push((setting.flag, value));
    }

    let routes = routes(&flags, &env)?;
    let connect_timeout =
        CONNECT_TIMEOUT.parse(&flags, &env, Duration::from_secs(5), |s| parse_duration(s).filter(|d| !d.is_zero()))?;
    let fail_threshold = FAIL_THRESHOLD.parse(&flags, &env, 3, |s| s.parse().ok().filter(|n| (1..=1000).contains(n)))?;
    let cooldown = COOLDOWN.parse(&flags, &env, Duration::from_secs(10), |s| parse_duration(s).filter(|d| !d.is_zero()))?;
    let off_if_zero = |s: &str| parse_duration(s).map(|d| Some(d).filter(|d| !d.is_zero()));
    let health_check = HEALTH_CHECK.parse(&flags, &env, None, off_if_zero)?;
    let resolve_interval = RESOLVE_INTERVAL.parse(&flags, &env, Some(Duration::from_secs(30)), off_if_zero)?;
    let proxy_header_timeout =
        PROXY_HEADER_TIMEOUT.parse(&flags, &env, Duration::from_secs(5), |s| parse_duration(s).filter(|d| !d.is_zero()))?;
    let idle_timeout =
        IDLE_TIMEOUT.parse(&flags, &env, Some(Duration::from_secs(600)), |s| parse_duration(s).map(|d| Some(d).filter(|d| !d.is_zero())))?;
    let max_conns = MAX_CONNS.parse(&flags, &env, 10_000, |s| s.parse().ok().filter(|n| (1..=1_000_000).contains(n)))?;
    let buffer_size =
        BUFFER_SIZE.parse(&flags, &env, 256 * 1024, |s| parse_size(s).filter(|n| (1024..=16 << 20).contains(n)))?;
    let coalesce = COALESCE.parse(&flags, &env, Coalesce::Auto, |s| match s.to_ascii_lowercase().as_str() {
        "auto" => Some(Coalesce::Auto),
        "off" | "0" => Some(Coalesce::Off),
        // Holding longer than a delayed ACK (40 ms) could only cost more than the stall it avoids.
        _ => humantime::parse_duration(s).ok().filter(|d| !d.is_zero() && *d <= Duration::from_millis(40)).map(Coalesce::UpTo),
    })?;
    let quiet = quiet_flag || QUIET.parse(&flags, &env, false, parse_bool)?;
    let mut log_level = LOG_LEVEL.parse(&flags, &env, Level::Info, Level::parse)?;
    if quiet {
        log_level = log_level.min(Level::Warn);
    }
    let log_format = LOG_FORMAT.parse(&flags, &env, Format::Text, |s| match s.to_ascii_lowercase().as_str() {
        "text" => Some(Format::Text),
        "json" => Some(Format::Json),
        _ => None,
    })?;
    let mode = DUMP.parse(&flags, &env, DumpMode::Off, |s| match s.to_ascii_lowercase().as_str() {
        "off" | "0" | "" => Some(DumpMode::Off),
        "text" => Some(DumpMode::Text),
        "hex" => Some(DumpMode::Hex),
        _ => None,
    })?;
    let limit = DUMP_LIMIT.parse(&flags, &env, 64 * 1024, |s| parse_size(s).filter(|n| *n <= 16 << 20))?;
    let metrics = METRICS.parse(&flags, &env, None, |s| match s {
        "off" | "" => Some(None),
        _ => match s.parse::<u16>() {
            Ok(port) => Some(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))),
            Err(_) => s.parse().ok().map(Some),
        },
    })?;
    let summary_interval =
        SUMMARY_INTERVAL.parse(&flags, &env, None, |s| parse_duration(s).map(|d| Some(d).filter(|d| !d.is_zero())))?;
    let trace = trace_flag || TRACE.parse(&flags, &env, false, parse_bool)?;

    Ok(Command::Run(Box::new(Config {
        routes,
        connect_timeout,
        fail_threshold,
        cooldown,
        health_check,
        resolve_interval,
        proxy_header_timeout,
        idle_timeout,
        max_conns,
        buffer_size,
        coalesce,
        log_level,
        log_format,
        dump: Dump { mode, limit },
        metrics,
        summary_interval,
        trace,
    })))
}

/// Every route, from LOCAL+REMOTE, --route / WASITER_ROUTES and the routes
/// file, in that order. Two routes may not listen on the same address.
fn routes(flags: &[(&'static str, String)], env: &impl Fn(&str) -> Option<String>) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes = Vec::new();
    match (LOCAL.pick(flags, env), REMOTE.pick(flags, env)) {
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
    let given: Vec<Given> = match flags.iter().filter(|(f, _)| *f == ROUTE.flag).map(|(_, v)| v.clone()).collect::<Vec<_>>() {
        from_flags if !from_flags.is_empty() => from_flags.into_iter().map(|value| Given { value, from_flag: true }).collect(),
        _ => env(ROUTE.env)
            .map(|v| v.split_whitespace().map(|r| Given { value: r.to_string(), from_flag: false }).collect())
            .unwrap_or_default(),
    };
    for g in &given {
        let mut route = parse_route(g.value.trim()).map_err(|why| ROUTE.invalid(g, &why))?;
        route.origin = if g.from_flag { ROUTE.flag } else { ROUTE.env }.to_string();
        routes.push(route);
    }
    if let Some(file) = ROUTES_FILE.pick(flags, env) {
        let text = std::fs::read_to_string(file.value.trim()).map_err(|e| {
            let name = if file.from_flag { ROUTES_FILE.flag } else { ROUTES_FILE.env };
            ConfigError(format!("{name}: cannot read {:?}: {e} (under WasmEdge or wasmtime, pass its folder with --dir)", file.value))
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                let origin = format!("{}, line {}", file.value.trim(), n + 1);
                let mut route =
                    parse_route(line).map_err(|why| ConfigError(format!("{origin}: {line:?} is not valid: {why}; expected {ROUTE_FORM}")))?;
                route.origin = origin;
                routes.push(route);
            }
        }
    }
    if routes.is_empty() {
        return Err(ConfigError(format!(
            "LOCAL is not set; set LOCAL and REMOTE (or pass --local and --remote), or give routes with --route, WASITER_ROUTES or --routes-file, as {ROUTE_FORM}"
        )));
    }
    for (i, r) in routes.iter().enumerate() {
        // Port 0 asks the system for a free port: never a clash.
        if r.listen.port() != 0 && routes.iter().skip(i + 1).any(|o| o.listen == r.listen) {
            return Err(ConfigError(format!("two routes listen on {}; give each route its own address", r.listen)));
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
            (&["--route", ":80=a:1", "--route", "0.0.0.0:80=b:1"], &[], "two routes listen on 0.0.0.0:80"),
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
    fn help_and_version() {
        assert!(matches!(parse(["--help".into()], |_| None), Ok(Command::Help)));
        assert!(matches!(parse(["-V".into()], |_| None), Ok(Command::Version)));
    }
}
