//! The `wasiter` command: read the settings, resolve, bind, run the loop.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use wasiter::cli::{self, Command};
use wasiter::log::{self, Record};
use wasiter::pool::FailPolicy;
use wasiter::{nagle, proxy, sys};

fn main() -> ExitCode {
    let cfg = match cli::parse(std::env::args_os().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Help) => {
            println!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("wasiter {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wasiter: {e}");
            return ExitCode::from(2);
        }
    };
    log::configure(cfg.log_level, cfg.log_format, cfg.trace);
    sys::init();

    // Every route: resolve its upstreams, then bind. Any failure stops the
    // start with a line naming the route.
    let health = FailPolicy { threshold: cfg.fail_threshold, cooldown: cfg.cooldown };
    let mut routes = Vec::new();
    for spec in &cfg.routes {
        let mut resolved = Vec::new();
        for remote in &spec.upstreams {
            match sys::resolve(&remote.host, remote.port) {
                Ok(addrs) if !addrs.is_empty() => resolved.push(addrs),
                Ok(_) => return fail(format_args!("{}: {:?} resolved to no address", spec.origin, remote.to_string())),
                Err(e) => return fail(format_args!("{}: cannot resolve {:?}: {e}", spec.origin, remote.to_string())),
            }
        }
        let listener = match sys::Listener::bind(spec.listen, 1024) {
            Ok(l) => l,
            Err(e) => {
                // The LOCAL/REMOTE route listens where LOCAL says.
                let what = match spec.origin.as_str() {
                    "REMOTE" => "LOCAL",
                    "--remote" => "--local",
                    other => other,
                };
                return fail(format_args!("{what}: cannot listen on {}: {e}", spec.listen));
            }
        };
        routes.push(proxy::RouteState::new(spec, listener, resolved, health));
    }
    let metrics = match cfg.metrics.map(|addr| (addr, sys::Listener::bind(addr, 64))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((addr, Err(e))) => return fail(format_args!("WASITER_METRICS: cannot listen on {addr}: {e}")),
    };
    let metrics_addr = match &metrics {
        Some(l) => l.local_addr().map(|a| format!("http://{a}/metrics")).unwrap_or_default(),
        None => "off".to_string(),
    };
    // Whether small writes can go out at once here decides whether the relay
    // must hold split answers together (`coalesce`).
    let nodelay = nagle::probe();
    let coalesce = match cfg.coalesce.cap(nodelay.works()) {
        Some(cap) => format!("{}us", cap.as_micros()),
        None => "off".to_string(),
    };
    // One start line per route, each naming its real listen address.
    for (route, spec) in routes.iter().zip(&cfg.routes) {
        let remote: Vec<String> = spec.upstreams.iter().map(|u| u.to_string()).collect();
        Record::always("start")
            .str("listen", route.name())
            .str("remote", remote.join(","))
            .str("upstreams", route.upstream_list())
            .str("policy", spec.policy.name())
            .str("metrics", &metrics_addr)
            .str("runtime", sys::RUNTIME)
            .str("version", env!("CARGO_PKG_VERSION"))
            .num("max_conns", cfg.max_conns as u64)
            .num("buffer", cfg.buffer_size as u64)
            .str("nodelay", if nodelay.works() { "yes" } else { "no" })
            .str("nodelay_probe", nodelay.name())
            .str("coalesce", &coalesce)
            .emit();
    }

    let mut proxy = match proxy::Proxy::new(&cfg, routes, metrics, nodelay.works()) {
        Ok(p) => p,
        Err(e) => return fail(format_args!("cannot create the poller: {e}")),
    };
    match proxy.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format_args!("event loop failed: {e}")),
    }
}

fn fail(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("wasiter: {msg}");
    ExitCode::from(1)
}
