//! The `wasiter` command: read the settings, resolve, bind, run the loop.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use wasiter::config::{self, Command};
use wasiter::log::{self, Record};
use wasiter::{proxy, sys};

fn main() -> ExitCode {
    let cfg = match config::parse(std::env::args_os().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Help) => {
            println!("{}", config::HELP);
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

    let upstreams = match sys::resolve(&cfg.remote.host, cfg.remote.port) {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) => return fail(format_args!("REMOTE: {:?} resolved to no address", cfg.remote.to_string())),
        Err(e) => return fail(format_args!("REMOTE: cannot resolve {:?}: {e}", cfg.remote.to_string())),
    };
    let listener = match sys::Listener::bind(cfg.local, 1024) {
        Ok(l) => l,
        Err(e) => return fail(format_args!("LOCAL: cannot listen on {}: {e}", cfg.local)),
    };
    let metrics = match cfg.metrics.map(|addr| (addr, sys::Listener::bind(addr, 64))) {
        None => None,
        Some((_, Ok(l))) => Some(l),
        Some((addr, Err(e))) => return fail(format_args!("WASITER_METRICS: cannot listen on {addr}: {e}")),
    };
    let local = listener.local_addr().unwrap_or(cfg.local);
    let resolved: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
    let metrics_addr = match &metrics {
        Some(l) => l.local_addr().map(|a| format!("http://{a}/metrics")).unwrap_or_default(),
        None => "off".to_string(),
    };
    Record::always("start")
        .str("listen", local)
        .str("remote", &cfg.remote)
        .str("upstreams", resolved.join(","))
        .str("metrics", metrics_addr)
        .str("runtime", sys::RUNTIME)
        .str("version", env!("CARGO_PKG_VERSION"))
        .num("max_conns", cfg.max_conns as u64)
        .num("buffer", cfg.buffer_size as u64)
        .emit();

    let mut proxy = proxy::Proxy::new(&cfg, listener, upstreams, metrics);
    match proxy.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format_args!("event loop failed: {e}")),
    }
}

fn fail(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("wasiter: {msg}");
    ExitCode::from(1)
}
