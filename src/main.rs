//! wasiter: a TCP proxy for WebAssembly runtimes and Linux.
//!
//! How a byte travels: `proxy` waits on every socket at once through the
//! platform's `sys::Poller`; a ready socket goes to its `conn::Conn`, which
//! runs one of its two `relay::Direction`s: read into a bounded buffer, write
//! to the other side. Only `sys` talks to the host (WasmEdge's socket calls,
//! or std::net and poll() natively and on wasip2).
#![deny(unsafe_code)]
// Nothing on the network may stop the proxy: no unwrap/expect/panic outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod conn;
mod log;
mod proxy;
mod relay;
mod sys;

use std::process::ExitCode;

use config::Command;
use log::notice;

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
    log::set_quiet(cfg.quiet);
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
    let local = listener.local_addr().unwrap_or(cfg.local);
    let resolved: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
    notice!(
        "start listen={local} remote={} upstreams={} runtime={} version={} max_conns={} buffer={}",
        cfg.remote,
        resolved.join(","),
        sys::RUNTIME,
        env!("CARGO_PKG_VERSION"),
        cfg.max_conns,
        cfg.buffer_size,
    );

    let mut proxy = proxy::Proxy::new(&cfg, listener, upstreams);
    match proxy.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format_args!("event loop failed: {e}")),
    }
}

fn fail(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("wasiter: {msg}");
    ExitCode::from(1)
}
