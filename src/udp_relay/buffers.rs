//! The kernel buffers of a UDP route's sockets (`--udp-buffer`): asked for
//! each socket both ways, and what the kernel granted, said when it is
//! less. A file of its own: one setting for the whole process, apart from
//! what moves the datagrams (`mod.rs`).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::log::{Level, Record};
use crate::sys::Datagram;

/// `--udp-buffer`'s default, asked of each socket each way: Linux grants
/// twice that where net.core.rmem_max allows, room for about 10,000 small
/// datagrams (the kernel counts some 830 bytes for each) or 3,600 of 1,400.
pub const DEFAULT_BUFFER: usize = 4 << 20;
/// `--udp-buffer`, set once at start: one setting for every relay socket,
/// those a reload opens too.
static BUFFER: AtomicUsize = AtomicUsize::new(DEFAULT_BUFFER);

/// The kernel granted less than asked, and the log has said so.
static CAPPED_SAID: AtomicBool = AtomicBool::new(false);

/// Take `--udp-buffer` (before any route is bound).
pub fn configure(buffer: usize) {
    BUFFER.store(buffer, Ordering::Relaxed);
}

/// Ask for `--udp-buffer` on `socket`, both ways.
pub fn size(socket: &Datagram) -> io::Result<()> {
    socket.set_buffers(BUFFER.load(Ordering::Relaxed))
}

/// Size a route's listen socket: what the kernel granted (receive, send),
/// or None if the runtime refused (the kernel's default stays; said).
pub fn sized(socket: &Datagram) -> Option<(usize, usize)> {
    let listen = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let granted = match size(socket).and_then(|()| socket.buffers()) {
        Ok(granted) => Some(granted),
        Err(e) => {
            Record::new(Level::Warn, "udp-buffer-not-set").str("listen", &listen).str("error", crate::sys::describe(&e)).emit();
            None
        }
    };
    let asked = BUFFER.load(Ordering::Relaxed);
    // Said once: a range of a thousand ports would say it a thousand times.
    let short = granted.filter(|(rcv, snd)| rcv.min(snd) < &asked);
    if let Some((rcv, snd)) = short.filter(|_| !CAPPED_SAID.swap(true, Ordering::Relaxed)) {
        Record::new(Level::Warn, "udp-buffer-capped")
            .str("listen", &listen)
            .num("asked", asked as u64)
            .num("rcvbuf", rcv as u64)
            .num("sndbuf", snd as u64)
            .str("action", "the kernel caps it at net.core.rmem_max and wmem_max: raise them (sysctl, on the host) for bursts to wait instead of being dropped")
            .emit();
    }
    granted
}
