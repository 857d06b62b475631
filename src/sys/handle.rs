//! What a poller watches and what it hands back, below both the sockets
//! and the pollers (so that neither needs the other's file for them):
//! `Handle`, a socket as its platform numbers it, and `Event`. Natively, also
//! the sockets closed since the last pass, which epoll forgets without a call.

/// WASI fd numbers on WasmEdge are random 31-bit values: a key, not an index.
#[cfg(all(target_os = "wasi", target_env = "p1"))]
pub type Handle = u32;

/// What the poller watches: the fd, and a serial number unique to the
/// socket, because a closed fd's number is soon reused by a new socket and
/// the epoll poller must not mistake the one for the other.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    pub(super) fd: std::os::fd::RawFd,
    pub(super) serial: u64,
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.fd)
    }
}

/// A new socket's serial; it is counted open (`open_sockets`) until its
/// `Drop` calls `closed`.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(super) fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    opened();
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sockets open now, of every kind the platform layer makes: what the
/// loop's descriptor reserve counts (`crate::fds`).
static OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(super) fn opened() {
    OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub(super) fn gone() {
    OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many sockets are open now.
pub fn open_sockets() -> usize {
    OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// One readiness report from `Poller::wait`.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: usize,
    pub readable: bool,
    pub writable: bool,
    /// An error or hang-up came with it (then readable and writable are set too).
    pub trouble: bool,
}

#[cfg(target_os = "linux")]
std::thread_local! {
    /// Sockets closed since the last pass (`closed`).
    static CLOSED: std::cell::RefCell<Vec<Handle>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A socket is being closed: the kernel drops it from every epoll set by
/// itself, so the next pass forgets it without a call (after a full pass it
/// would otherwise try EPOLL_CTL_DEL on a closed fd: one failed call per
/// socket). Called from the sockets' `Drop`; elsewhere nothing keeps it.
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
pub(super) fn closed(handle: Handle) {
    gone();
    #[cfg(target_os = "linux")]
    CLOSED.with(|c| c.borrow_mut().push(handle));
    #[cfg(not(target_os = "linux"))]
    let _ = handle;
}

/// Each socket closed since the last call, for epoll to forget.
#[cfg(target_os = "linux")]
pub(super) fn take_closed(mut forget: impl FnMut(Handle)) {
    CLOSED.with(|c| c.borrow_mut().drain(..).for_each(&mut forget));
}
