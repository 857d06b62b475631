//! wasiter: a TCP proxy for WebAssembly runtimes and Linux.
//!
//! How a byte travels: `proxy` waits on every socket of every route at once
//! through the platform's `sys::Poller`; a new client is checked against its
//! `route` (allow/deny, an optional `proxy_header`), its route's `pool` picks
//! an upstream, and a ready socket goes to its `conn::Conn`, which runs one of
//! its two `relay::Direction`s: read into a bounded buffer, write to the
//! other side. `health` does the scheduled work (checks, re-resolution). Only `sys` talks to the host (WasmEdge's socket calls,
//! or std::net and poll() natively and on wasip2). `main.rs` only starts it.
#![deny(unsafe_code)]
// Nothing on the network may stop the proxy: no unwrap/expect/panic outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod coalesce;
pub mod config;
mod conn;
mod health;
pub mod log;
pub mod metrics;
pub mod nagle;
pub mod pool;
pub mod proxy;
pub mod proxy_header;
mod relay;
pub mod route;
pub mod sys;
