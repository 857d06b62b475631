//! What the host allows the process: how many descriptors it may hold, and
//! the kernel's cap on a listen backlog (`somaxconn`).
//!
//! Natively both are asked for (getrlimit, /proc). A WASI module cannot ask
//! for its limit, and the runtime holds descriptors of its own from the same
//! budget, so there the module counts what it can open: it opens spare
//! sockets until the host refuses one or there are enough, and closes them
//! again. A launcher that knows the process's limit may also pass it in
//! `WASITER_NOFILE` (scripts/run and the devContainer Feature do), for the
//! start line: the count still decides how many sockets the loop may hold.
#![allow(unsafe_code)]

use std::io;

/// The descriptors this process has, as far as it can know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptors {
    /// The process's limit as the host states it: getrlimit's soft limit
    /// natively, `WASITER_NOFILE` on the wasm builds when given.
    pub limit: Option<u64>,
    /// How many sockets may be open at once (as `open_sockets` counts them),
    /// when there is a limit below the count asked for.
    pub sockets: Option<usize>,
    /// Where the limit came from: "getrlimit", "WASITER_NOFILE" or "probe".
    pub from: &'static str,
}

/// The descriptors of this process. A wasm build counts up to `upto`
/// sockets (opening and closing them costs 15-40 us each, paid at every
/// start): enough to know a limit that fits few clients exactly, and beyond
/// that `WASITER_NOFILE` less `RUNTIME_OWN`, else no limit known (the loop
/// learns one from the first refusal).
pub fn descriptors(upto: usize) -> Descriptors {
    #[cfg(unix)]
    {
        let _ = upto;
        native()
    }
    #[cfg(not(unix))]
    {
        let given = std::env::var("WASITER_NOFILE").ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|n| *n > 0);
        let nofile = given.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let sockets = match probe(nofile.map_or(upto, |n| upto.min(n))) {
            Some(n) => Some(super::handle::open_sockets() + n),
            None => nofile.map(|n| n.saturating_sub(RUNTIME_OWN)),
        };
        Descriptors { limit: given, sockets, from: if given.is_some() { "WASITER_NOFILE" } else { "probe" } }
    }
}

/// Descriptors a wasm runtime keeps for itself, when the count stopped
/// before the limit (measured: WasmEdge 0.17.1 about 6, wasmtime 49 about 12).
#[cfg(not(unix))]
const RUNTIME_OWN: usize = 32;

/// Natively: the soft limit (`init` raised it to the hard one), less the
/// descriptors already open that are not sockets (stdio, the poller, ...).
#[cfg(unix)]
fn native() -> Descriptors {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into `lim`, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return Descriptors { limit: None, sockets: None, from: "getrlimit" };
    }
    // Reading the folder takes a descriptor of its own, which is counted.
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1)).unwrap_or(8);
    // Plus the poller's own (epoll), which the loop opens after this count.
    let others = open.saturating_sub(super::handle::open_sockets()) + usize::from(cfg!(target_os = "linux"));
    let sockets = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX).saturating_sub(others);
    Descriptors { limit: Some(lim.rlim_cur), sockets: Some(sockets), from: "getrlimit" }
}

/// How many more sockets the host gives before it refuses one for want of
/// descriptors: `None` when it gave `upto` (or refused for another reason).
#[cfg(not(unix))]
fn probe(upto: usize) -> Option<usize> {
    // Thousands of the same two calls: one trace line for them all, marked
    // as the probe's (`scripts/trace-tour` leaves it out of the page).
    let traced = crate::log::set_tracing(false);
    let mut held = Vec::new();
    let found = loop {
        if held.len() >= upto {
            break None;
        }
        match super::sockets::spare_socket() {
            Ok(s) => held.push(s),
            Err(e) if super::sockets::out_of_descriptors(&e) => break Some(held.len()),
            Err(_) => break None,
        }
    };
    let opened = held.len();
    drop(held);
    crate::log::set_tracing(traced);
    if traced {
        crate::log::trace_during(Some("descriptor-probe"));
        let end = if found.is_some() { "refused after" } else { "stopped at" };
        crate::log::trace_line(format_args!("sock_open(DGRAM) and fd_close, each until refused or {upto} times"), format_args!("{end} {opened}"));
        crate::log::trace_during(None);
    }
    found
}

/// The kernel's cap on a listen backlog (net.core.somaxconn), where this
/// process can read it: natively, and on a wasm runtime given `/proc`.
pub fn somaxconn() -> Option<u32> {
    read_somaxconn().ok()
}

fn read_somaxconn() -> io::Result<u32> {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn")?;
    text.trim().parse().map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}
