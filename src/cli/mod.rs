//! The command line and the environment (flags win), read into `Config`.
//!
//! Every setting is one entry of one table ([`ROUTING`] and [`TUNING`]): its
//! flag, variable, default, the form a good value has, and its help. `--help`
//! is printed from the table and flags are looked up in it, so a new setting
//! is an entry there and one line in `parse`. Every bad value becomes one line
//! that names the setting, quotes what was given and says what was expected;
//! `main` prints it and exits 2.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::coalesce::Coalesce;
use crate::log::{Format, Level};
use crate::route::{self, parse_rule, routes_for, Listen, RouteSpec, ROUTE_FORM};
use crate::settings::{Config, Dump, DumpMode};

mod ask;
mod help;
mod table;

pub use help::help;
pub use table::{Setting, ROUTING, TUNING};
use ask::parse_addr;
use table::*;

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `--check`: the settings and routes parse; exit without binding.
    Check(Box<Config>),
    Help,
    Version,
    /// `--make-ca DIR`: make the CA there (or keep it) and exit.
    MakeCa(String),
    /// `--placeholders`: print the placeholders of this secrets file and exit.
    Placeholders(String),
    /// `wasiter ask list|answer ID ANSWER`: talk to a running proxy's admin API.
    Ask(crate::ask::client::Ask),
}

/// A one-line, user-facing reason the configuration was rejected.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(("ask", rest)) = args.split_first().map(|(first, rest)| (first.to_str().unwrap_or_default(), rest)) {
        return ask::parse(rest, env).map(Command::Ask).map_err(ConfigError);
    }
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
    if let Some(dir) = MAKE_CA.pick(&src) {
        return Ok(Command::MakeCa(dir.value.trim().to_string()));
    }
    if PLACEHOLDERS.parse(&src, false, parse_bool)? {
        // What a launcher asks before any route exists: no route needed.
        return match SECRETS.pick(&src).map(|g| g.value.trim().to_string()).filter(|s| !s.is_empty()) {
            Some(file) => Ok(Command::Placeholders(file)),
            None => Err(ConfigError("--placeholders prints the placeholders of a secrets file: give it with --secrets FILE".into())),
        };
    }
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
        max_conns: MAX_CONNS.parse(&src, None, |s| s.parse().ok().filter(|n| (1..=1_000_000).contains(n)).map(Some))?,
        backlog: BACKLOG.parse(&src, None, |s| s.parse().ok().filter(|n| (1..=1_000_000).contains(n)).map(Some))?,
        buffer_size: BUFFER_SIZE.parse(&src, 256 * 1024, |s| parse_size(s).filter(|n| (1024..=16 << 20).contains(n)))?,
        udp_buffer: UDP_BUFFER.parse(&src, crate::udp_relay::DEFAULT_BUFFER, |s| parse_size(s).filter(|n| (4 << 10..=512 << 20).contains(n)))?,
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
        metrics: METRICS.parse(&src, None, parse_addr)?,
        admin: admin(&src)?,
        summary_interval: SUMMARY_INTERVAL.parse(&src, None, off_if_zero)?,
        trace: TRACE.parse(&src, false, parse_bool)?,
        ca: CA.pick(&src).map(|g| g.value.trim().to_string()).filter(|s| !s.is_empty()),
        upstream_ca: UPSTREAM_CA.pick(&src).map(|g| g.value.trim().to_string()).filter(|s| !s.is_empty()),
        secrets: SECRETS.pick(&src).map(|g| g.value.trim().to_string()).filter(|s| !s.is_empty()),
    });
    Ok(if check { Command::Check(config) } else { Command::Run(config) })
}

/// Every route, from LOCAL+REMOTE, --route / WASITER_ROUTES and the routes
/// file, in that order. Two routes may not listen on the same address.
fn routes<E: Fn(&str) -> Option<String>>(src: &Sources<E>) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes = Vec::new();
    match (LOCAL.pick(src), REMOTE.pick(src)) {
        (Some(local), Some(remote)) => {
            // Not an address at all: the setting's form says it best.
            let listen = Listen::parse(local.value.trim()).map_err(|why| if why.starts_with("bad listen address") { LOCAL.error(&local) } else { LOCAL.invalid(&local, &why) })?;
            for mut route in routes_for(listen, remote.value.trim()).map_err(|why| REMOTE.invalid(&remote, &why))? {
                route.origin = if remote.from_flag { REMOTE.flag } else { REMOTE.env }.to_string();
                routes.push(route);
            }
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
        for mut route in parse_rule(g.value.trim()).map_err(|why| ROUTE.invalid(g, &why))? {
            route.origin = if g.from_flag { ROUTE.flag } else { ROUTE.env }.to_string();
            routes.push(route);
        }
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
    unix_needs_native(&routes)?;
    Ok(routes)
}

/// WASI has no AF_UNIX: on the wasm builds a route with a Unix-socket end
/// is refused at start (and by a reload), in one line.
fn unix_needs_native(routes: &[RouteSpec]) -> Result<(), ConfigError> {
    if crate::sys::UNIX_SOCKETS {
        return Ok(());
    }
    match routes.iter().find(|r| r.unix.is_some() || r.upstreams.iter().any(|u| u.unix_path().is_some())) {
        Some(r) => Err(ConfigError(format!(
            "{}: Unix sockets (unix:/path) need the native build: WASI has no AF_UNIX, so {} cannot open one; forward a TCP port to it from the host instead",
            r.origin,
            crate::sys::RUNTIME
        ))),
        None => Ok(()),
    }
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
            for mut route in parse_rule(line).map_err(|why| ConfigError(format!("{origin}: {line:?} is not valid: {why}; expected {ROUTE_FORM}")))? {
                route.origin = origin.clone();
                routes.push(route);
            }
        }
    }
    unix_needs_native(&routes)?;
    Ok(routes)
}

/// `--admin` and its token file, required with it.
fn admin<E: Fn(&str) -> Option<String>>(src: &Sources<E>) -> Result<Option<(SocketAddr, String)>, ConfigError> {
    let Some(addr) = ADMIN.parse(src, None, parse_addr)? else { return Ok(None) };
    match ADMIN_TOKEN.pick(src).map(|g| g.value.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(file) => Ok(Some((addr, file))),
        None => Err(ConfigError(format!("--admin needs --admin-token FILE (or {}): the token the page and the API ask for; a new FILE is made with a random one", ADMIN_TOKEN.env))),
    }
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
mod tests;
