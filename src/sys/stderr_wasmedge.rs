//! The log's way out on WasmEdge: writes to stderr that never block (see
//! `log`), WouldBlock when stderr may not take anything now.
//!
//! A module cannot make stderr non-blocking here (WasmEdge grants fd 2 no
//! FD_FDSTAT_SET_FLAGS right; and O_NONBLOCK on an inherited description
//! would reach every other holder of it). So while lines wait, the loop's
//! own poll_oneoff watches stderr for writability beside the sockets
//! (`watch`, `writable`, called by `poll_oneoff.rs`), and each time it was
//! found writable one write of at most PIPE_BUF bytes goes out, which a pipe
//! with room for a page takes without waiting. A regular file never waits
//! for a reader: written as is, without asking.
#![allow(unsafe_code)]

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

/// stderr's WASI fd.
pub const FD: u32 = 2;

/// Linux's PIPE_BUF: a write this small to a pipe with room for one more
/// page does not wait.
const PIPE_BUF: usize = 4096;

/// Writes wait for the poller's word (a pipe, terminal or socket), or not
/// (a file, and what cannot be polled: /dev/null, which epoll refuses).
/// Found out at the first use.
static KIND: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const POLLED: u8 = 1;
const PLAIN: u8 = 2;
/// The last wait found stderr writable, and nothing was written since.
static READY: AtomicBool = AtomicBool::new(false);

/// Whether writes wait for the poller's word: not for a regular file (or
/// block device), which never waits for a reader.
fn polled() -> bool {
    match KIND.load(Ordering::Relaxed) {
        UNKNOWN => {
            // SAFETY: fd_fdstat_get only fills the returned struct.
            let plain = unsafe { wasi::fd_fdstat_get(FD) }
                .is_ok_and(|st| st.fs_filetype == wasi::FILETYPE_REGULAR_FILE || st.fs_filetype == wasi::FILETYPE_BLOCK_DEVICE);
            KIND.store(if plain { PLAIN } else { POLLED }, Ordering::Relaxed);
            !plain
        }
        kind => kind == POLLED,
    }
}

/// The poller asks: list stderr for writability in this wait? Only while
/// lines wait for it and it was not already found writable.
pub fn watch() -> bool {
    !READY.load(Ordering::Relaxed) && crate::log::pending() && polled()
}

/// The poller answers: stderr was found writable, or its subscription
/// failed (`ok` false: epoll cannot watch it, so it never waits).
pub fn writable(ok: bool) {
    if !ok {
        KIND.store(PLAIN, Ordering::Relaxed);
    }
    READY.store(true, Ordering::Relaxed);
}

/// Some of `buf` to stderr, never blocking: WouldBlock until the poller
/// found it writable again.
pub fn log_write(buf: &[u8]) -> io::Result<usize> {
    if !polled() {
        return io::stderr().write(buf);
    }
    if !READY.swap(false, Ordering::Relaxed) {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    io::stderr().write(buf.get(..PIPE_BUF).unwrap_or(buf))
}

/// Wait until stderr may take bytes, at most `timeout` (at exit: a
/// poll_oneoff of its own, as the loop's is over).
pub fn log_wait(timeout: Duration) {
    if READY.load(Ordering::Relaxed) || !polled() {
        return;
    }
    let rw = wasi::SubscriptionFdReadwrite { file_descriptor: FD };
    let clock = wasi::SubscriptionClock {
        id: wasi::CLOCKID_MONOTONIC,
        timeout: timeout.as_nanos().min(u64::MAX as u128) as u64,
        precision: 0,
        flags: 0,
    };
    let subs = [
        wasi::Subscription { userdata: 1, u: wasi::SubscriptionU { tag: wasi::EVENTTYPE_FD_WRITE.raw(), u: wasi::SubscriptionUU { fd_write: rw } } },
        wasi::Subscription { userdata: 0, u: wasi::SubscriptionU { tag: wasi::EVENTTYPE_CLOCK.raw(), u: wasi::SubscriptionUU { clock } } },
    ];
    let empty = wasi::Event {
        userdata: 0,
        error: wasi::ERRNO_SUCCESS,
        type_: wasi::EVENTTYPE_CLOCK,
        fd_readwrite: wasi::EventFdReadwrite { nbytes: 0, flags: 0 },
    };
    let mut out = [empty; 2];
    // SAFETY: two subscriptions and room for two events, alive across the call.
    let Ok(n) = (unsafe { wasi::poll_oneoff(subs.as_ptr(), out.as_mut_ptr(), subs.len()) }) else { return };
    if let Some(ev) = out.iter().take(n).find(|e| e.userdata == 1) {
        writable(ev.error == wasi::ERRNO_SUCCESS);
    }
}
