//! wasiter: a TCP proxy for WebAssembly runtimes and Linux.
//!
//! How a byte travels: `main.rs` reads the `settings` through `cli` and
//! starts `proxy`, the loop, which waits on every socket of every route at
//! once through the platform's `sys::Poller`. A new client passes its
//! `front` (an optional `proxy_header`, its port's allow/deny lists, and on
//! a port shared by name, a peek at its ClientHello or request head that
//! `names` turns into a route), its route's `pool` picks an upstream, and a
//! ready socket goes to its
//! `conn::Conn`, which runs one of its two `relay::Direction`s: read into a
//! bounded buffer, write to the other side, holding a small piece for a
//! moment where `nagle` found that the runtime cannot turn Nagle off
//! (`coalesce`). `health` does the scheduled checks and re-resolution;
//! `metrics` counts. Only `sys` talks to the host (WasmEdge's socket calls,
//! or std::net with epoll or poll()). Beside the relay: the UDP relay
//! (`udp_relay`), the allowlist DNS server (`dns_server`), the in-loop
//! resolver (`dns`), a forward route's policy (`forward`, `ledger`), and
//! what keeps credentials out of a sandbox: the CA that opens TLS for the
//! names a route lists (`tls::Opener`, `front`'s opened tunnels) and the
//! secrets swapped in at the proxy (`secrets`).
//!
//! The layering rule: a module uses only modules on lower floors, and so
//! does a file within a module's folder (its leaf types below it, the
//! files that add its methods above it). From the top: `main`; `proxy`
//! (the loop); `conn` and `udp_relay` (what moves bytes); `front`, `cli`,
//! `health`, `metrics`, `dns_server`, `dump` (what they call); `pool`,
//! `settings`, `route`, `proxy_header`; `secrets` (the keys the sandbox
//! never holds, above `names` and `tls`); `close`, `dns`, `http1`, `tls`, `limits`,
//! `nagle`, `ledger`; `forward`, `relay`, `sys`; and at the bottom
//! `coalesce`, `names`, `log`. No module reaches up: nothing below `proxy`
//! knows the loop, and only `sys` says `cfg` for a platform (and `tls`,
//! for the cipher suite order that suits wasm).
//! `python3 ../shared/tools/house.py` prints the floors and any circle.
#![deny(unsafe_code)]
// Nothing on the network may stop the proxy: no unwrap/expect/panic outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod ask;
pub mod coalesce;
pub mod cli;
pub mod close;
mod conn;
pub mod dns;
pub mod dns_server;
mod dump;
pub mod forward;
pub mod front;
pub mod http1;
pub mod ledger;
mod health;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod nagle;
pub mod names;
pub mod pool;
pub mod proxy;
pub mod proxy_header;
mod relay;
pub mod route;
pub mod secrets;
pub mod served;
pub mod settings;
pub mod sys;
// TLS is a Cargo feature (default on): without it, tls_off.rs stands in
// with the same names (no session can exist) and the module is about
// half the size. The only place that chooses.
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
pub mod tls;
#[cfg(feature = "tls")]
pub mod tls_aead;
pub mod udp_relay;
