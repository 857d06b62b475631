//! Settings, from the environment and from flags (flags win).
//!
//! Every bad value becomes one line that names the setting, quotes what was
//! given and says what was expected; `main` prints it and exits 2.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::log::{Format, Level};

pub const HELP: &str = "\
wasiter: a TCP proxy for WebAssembly runtimes and Linux

USAGE:
    wasmedge --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasiter --local 0.0.0.0:8080 --remote backend:80

SETTINGS (flag, environment variable, default):
    --local ADDR           LOCAL                    (required)
        Listen address, IP:PORT: 0.0.0.0:8080, [::]:8080, or :8080 for all IPv4.
    --remote HOST:PORT     REMOTE                   (required)
        Upstream: a name or an IP (IPv6 in brackets). A name is resolved once
        at start; every address it returns is tried in turn.
    --connect-timeout DUR  WASITER_CONNECT_TIMEOUT  5s
        How long one upstream connect may take before the next address.
    --idle-timeout DUR     WASITER_IDLE_TIMEOUT     10m
        Close a connection after this long with no byte in either direction;
        0 turns it off.
    --max-conns N          WASITER_MAX_CONNS        10000
        At this many connections the listener stops accepting until one closes.
    --buffer-size SIZE     WASITER_BUFFER_SIZE      64KiB
        Buffer per direction, held only while it has bytes in it.
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
    Run(Config),
    Help,
    Version,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub local: SocketAddr,
    pub remote: Remote,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_conns: usize,
    pub buffer_size: usize,
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

/// An upstream as the user wrote it: resolved later, by the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
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
    expected: "HOST:PORT with a port from 1 to 65535, e.g. backend:80, 127.0.0.1:6379 or [::1]:80",
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
            Long("remote") => &REMOTE,
            Long("connect-timeout") => &CONNECT_TIMEOUT,
            Long("idle-timeout") => &IDLE_TIMEOUT,
            Long("max-conns") => &MAX_CONNS,
            Long("buffer-size") => &BUFFER_SIZE,
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

    let local = LOCAL.pick(&flags, &env).ok_or_else(|| LOCAL.missing())?;
    let local = parse_local(local.value.trim()).ok_or_else(|| LOCAL.error(&local))?;
    let remote = REMOTE.pick(&flags, &env).ok_or_else(|| REMOTE.missing())?;
    let remote = parse_remote(remote.value.trim()).ok_or_else(|| REMOTE.error(&remote))?;
    let connect_timeout =
        CONNECT_TIMEOUT.parse(&flags, &env, Duration::from_secs(5), |s| parse_duration(s).filter(|d| !d.is_zero()))?;
    let idle_timeout =
        IDLE_TIMEOUT.parse(&flags, &env, Some(Duration::from_secs(600)), |s| parse_duration(s).map(|d| Some(d).filter(|d| !d.is_zero())))?;
    let max_conns = MAX_CONNS.parse(&flags, &env, 10_000, |s| s.parse().ok().filter(|n| (1..=1_000_000).contains(n)))?;
    let buffer_size =
        BUFFER_SIZE.parse(&flags, &env, 64 * 1024, |s| parse_size(s).filter(|n| (1024..=16 << 20).contains(n)))?;
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

    Ok(Command::Run(Config {
        local,
        remote,
        connect_timeout,
        idle_timeout,
        max_conns,
        buffer_size,
        log_level,
        log_format,
        dump: Dump { mode, limit },
        metrics,
        summary_interval,
        trace,
    }))
}

/// `IP:PORT`, `[IPv6]:PORT`, or `:PORT` for every IPv4 address.
fn parse_local(s: &str) -> Option<SocketAddr> {
    if let Some(port) = s.strip_prefix(':') {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.parse().ok()?));
    }
    s.parse().ok()
}

/// `HOST:PORT` where HOST is a name, an IPv4 address or a bracketed IPv6 one.
fn parse_remote(s: &str) -> Option<Remote> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let v6 = inner.strip_suffix(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            v6
        }
        // A name or an IPv4 address: letters, digits, dots, dashes.
        None if !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
        {
            host
        }
        None => return None,
    };
    Some(Remote { host: host.to_string(), port })
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
            Command::Run(c) => Ok(c),
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
        assert_eq!(c.local, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.remote, Remote { host: "backend".into(), port: 80 });
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!((c.max_conns, c.buffer_size, c.log_level), (10_000, 65536, Level::Info));
        assert_eq!((c.log_format, c.dump.mode, c.metrics, c.summary_interval, c.trace), (Format::Text, DumpMode::Off, None, None, false));
    }

    #[test]
    fn flags_win_over_env() {
        let c = run(&["--local", "127.0.0.1:9000", "--remote=10.0.0.1:6379", "-q"], &BASE).unwrap();
        assert_eq!(c.local, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.remote.to_string(), "10.0.0.1:6379");
        assert_eq!(c.log_level, Level::Warn, "--quiet is --log-level warn");
    }

    #[test]
    fn every_setting_parses() {
        let c = run(
            &["--connect-timeout", "250ms", "--idle-timeout", "0", "--max-conns", "3", "--buffer-size", "16k"],
            &[("LOCAL", ":9"), ("REMOTE", "[::1]:443"), ("WASITER_QUIET", "yes")],
        )
        .unwrap();
        assert_eq!(c.local, "0.0.0.0:9".parse().unwrap());
        assert_eq!(c.remote, Remote { host: "::1".into(), port: 443 });
        assert_eq!(c.remote.to_string(), "[::1]:443");
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.idle_timeout, None);
        assert_eq!((c.max_conns, c.buffer_size, c.log_level), (3, 16384, Level::Warn));
        assert_eq!(run(&["--idle-timeout", "1m 30s"], &BASE).unwrap().idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(run(&["--buffer-size", "1MiB"], &BASE).unwrap().buffer_size, 1 << 20);
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
            (&[], &[("LOCAL", ":1"), ("REMOTE", "backend")], "REMOTE: \"backend\" is not valid; expected HOST:PORT"),
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
            (&["--buffer-size", "10"], &BASE, "--buffer-size: \"10\" is not valid; expected a size"),
            (&["--buffer-size", "64q"], &BASE, "--buffer-size: \"64q\""),
            (&["--log-level", "loud"], &BASE, "--log-level: \"loud\" is not valid; expected error, warn, info or debug"),
            (&["--log-format", "xml"], &BASE, "--log-format: \"xml\""),
            (&["--dump", "raw"], &BASE, "--dump: \"raw\""),
            (&["--metrics", "localhost:9090"], &BASE, "--metrics: \"localhost:9090\""),
            (&["--summary-interval", "often"], &BASE, "--summary-interval: \"often\""),
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
