//! The platform layer: the only place that talks to the host.
//!
//! Every backend provides the same few items, with the same meaning. The relay
//! core (`relay`, `conn`, `proxy`) uses nothing else, never says `cfg`, and so
//! reads the same on every runtime.
//!
//! ```text
//! Handle                       what a poller watches (an fd number)
//! Listener::bind(addr, backlog) -> io::Result<Listener>   non-blocking, SO_REUSEADDR
//!         .accept()            -> io::Result<(Stream, SocketAddr)>
//!                                 WouldBlock when the backlog is empty; the stream is
//!                                 non-blocking and the address is the real peer
//!         .local_addr(), .handle()
//! Stream::connect(addr)        -> io::Result<Stream>
//!                                 non-blocking: returns at once, usually still in
//!                                 progress; wait for writable, then finish_connect()
//!       .finish_connect()      -> io::Result<()>   the connect's outcome (SO_ERROR)
//!       .connected_by(event)   -> io::Result<()>   the same, told by the event that
//!                                 woke it where the poller reports a failed connect
//!                                 as trouble (epoll, poll_oneoff: no call); else
//!                                 (wasip2's poll) finish_connect()
//!       .read(buf) / .write(buf)  never block: WouldBlock when not ready;
//!                                 read() == 0 is the peer's FIN; a write to a reset
//!                                 peer is an error, never a signal
//!       .shutdown_write()         send FIN, keep reading
//!       .set_nodelay()            ask for Nagle off; a runtime may accept and
//!                                 ignore it (`nagle::probe` finds out)
//!       .abort()                  make the coming close send RST (best effort)
//!       .local_addr()          -> io::Result<SocketAddr>   where it arrived
//!       .handle()
//!       (drop)                    closes the socket
//! Listener::bind_unix(path, mode, owner, backlog), Stream::connect_unix(path)
//!                                 natively (UNIX_SOCKETS); a Unix peer's address
//!                                 is UNIX_PEER. The wasm builds: Unsupported
//!       .peer_uid()            -> Option<u32>   a Unix peer's uid (SO_PEERCRED, Linux);
//!                                 None for TCP peers and on the wasm builds
//! Datagram::connect(addr)      -> io::Result<Datagram>   a non-blocking UDP socket
//!                                 bound to any local port, connected to addr
//!       .send(buf) / .recv(buf)   one datagram; WouldBlock when not ready
//!       .set_buffers(size)        ask for SO_RCVBUF and SO_SNDBUF of `size`
//!       .buffers()             -> io::Result<(usize, usize)>   what the kernel granted
//!       .dropped()             -> Option<u64>   datagrams the kernel dropped at
//!                                 this socket (natively); None where the
//!                                 platform does not tell (both wasm builds)
//!       .handle()
//! Poller::new() -> io::Result<Poller>, .begin(full), .add(handle, token, read, write),
//!       KEEPS                     true when what `add` said holds until said
//!                                 again (epoll); false when every pass must
//!                                 list everything it watches (poll, poll_oneoff)
//!       .wait(timeout)         -> io::Result<()>   timeout is always finite
//!       .events()              -> iterator of Event { token, readable, writable, trouble }
//!                                 hang-ups and errors come back as both readable
//!                                 and writable, so the next read or write reports
//!                                 them, and with `trouble` set (see connected_by)
//! resolve(host, port)          -> io::Result<Vec<SocketAddr>>   blocking
//! out_of_descriptors(&error)   EMFILE/ENFILE, in the platform's numbering
//! init()                       once at start (raise the fd limit, where there is one;
//!                              take SIGTERM/SIGINT, where a module can see them)
//! stop_requests()              how many times the process was asked to stop (natively:
//!                              SIGTERM or SIGINT; on the wasm runtimes always 0)
//! reload_requests()            how many SIGHUPs came (natively; else always 0)
//! descriptors(enough)          the descriptors this process has (`limits.rs`): its limit
//!                              where the host says it, and how many sockets may be
//!                              open at once (a wasm module counts what it can open)
//! open_sockets()               how many sockets the layer holds open now
//! somaxconn()                  the kernel's cap on a listen backlog, where readable
//! RUNTIME                      a short name for the startup line
//! check_private(path)          -> Result<(), String>   the file gives nothing to group
//!                              or others and the proxy's user owns it (natively; the
//!                              wasm builds see neither: Ok, the launchers check)
//! log_write(buf)               -> io::Result<usize>   some of a log's bytes to stderr,
//!                              never blocking: WouldBlock when it takes nothing now (a
//!                              reader that stopped); at most as many bytes as given
//! log_wait(timeout)            wait until log_write may take bytes again, at most
//!                              timeout (on the way out, when the loop no longer runs)
//! ```
//!
//! stderr is never made non-blocking itself (O_NONBLOCK would reach every
//! holder of the inherited description): see `stderr.rs` for how each
//! runtime writes it without waiting. On WasmEdge the poller watches it
//! beside the sockets while log lines wait (the core never sees that).
//!
//! Interest is given afresh for every wait (`begin`, then `add` per socket), as
//! `poll(2)` and WASI `poll_oneoff` both take it: the core derives it from buffer
//! state on each pass, so nothing is subscribed that cannot make progress. A
//! *full* pass lists every socket. A partial one lists only the busy sockets,
//! each with its exact interest (`add(.., false, false)` for none): a backend
//! may go on watching the others as they last were (epoll does, at no cost),
//! or watch only what is listed (poll() and poll_oneoff, which keep nothing).
//! Where the poller KEEPS, most partial passes list only the connections
//! touched since the last (new, or handed an event or a timeout): nothing
//! else can have changed its interest.


// Sockets, one file per family of runtimes; pollers, one file each; what
// both share (Handle, Event) in handle.rs, below them.
#[cfg(all(target_os = "wasi", target_env = "p1"))]
#[path = "wasmedge.rs"]
mod sockets;
#[cfg(all(target_os = "wasi", target_env = "p1"))]
mod poll_oneoff;
#[cfg(all(target_os = "wasi", target_env = "p1"))]
#[path = "stderr_wasmedge.rs"]
mod stderr;
#[cfg(all(target_os = "wasi", target_env = "p1"))]
pub use poll_oneoff::Poller;

#[cfg(any(unix, all(target_os = "wasi", target_env = "p2")))]
#[path = "posix.rs"]
mod sockets;
#[cfg(any(unix, all(target_os = "wasi", target_env = "p2")))]
mod stderr;
#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
pub use epoll::Poller;
#[cfg(all(any(unix, all(target_os = "wasi", target_env = "p2")), not(target_os = "linux")))]
mod poll;
#[cfg(all(any(unix, all(target_os = "wasi", target_env = "p2")), not(target_os = "linux")))]
pub use poll::Poller;

#[cfg(not(any(unix, target_os = "wasi")))]
compile_error!("wasiter runs on Linux (native), wasm32-wasip1 (WasmEdge) and wasm32-wasip2 (wasmtime)");

// Is a file private to the proxy's user (`--secrets`)? WASI shows neither a
// file's mode nor its owner: on the wasm builds the launchers (scripts/run,
// the Feature's and the image's) check it before the module starts.
#[cfg(unix)]
mod owner;
#[cfg(unix)]
pub use owner::check_private;
#[cfg(target_os = "wasi")]
pub fn check_private(_path: &str) -> Result<(), String> {
    Ok(())
}

mod handle;
mod limits;
mod private;
pub use private::write_private;
pub use handle::{open_sockets, Event, Handle};
pub use limits::{descriptors, somaxconn, Descriptors};
pub use stderr::{log_wait, log_write};
pub use sockets::{init, out_of_descriptors, reload_requests, resolve, stop_requests, Datagram, Listener, Stream, RUNTIME, UNIX_PEER, UNIX_SOCKETS};

/// An address for logs: `unix` for a Unix-socket peer (`UNIX_PEER`).
pub fn show(addr: std::net::SocketAddr) -> impl std::fmt::Display {
    struct Shown(std::net::SocketAddr);
    impl std::fmt::Display for Shown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.0 == UNIX_PEER {
                f.write_str("unix")
            } else {
                self.0.fmt(f)
            }
        }
    }
    Shown(addr)
}

/// An I/O error in words, for logs and messages. On the wasm builds the
/// "(os error N)" that std adds is a WASI errno (3 is EADDRINUSE there and
/// ESRCH on Linux, 14 ECONNREFUSED there and EFAULT on Linux): a number that
/// means something else on the host misleads, so it is left out.
pub fn describe(e: &std::io::Error) -> String {
    let text = e.to_string();
    if cfg!(target_os = "wasi") {
        if let Some(at) = text.rfind(" (os error ") {
            return text.get(..at).unwrap_or(&text).to_string();
        }
    }
    text
}
