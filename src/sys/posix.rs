//! Native Linux and wasm32-wasip2 (wasmtime): sockets from std::net and socket2.
//! The pollers are beside it: `epoll.rs` natively, `poll.rs` on wasip2.
//!
//! On wasip2, wasi-libc implements sockets and `poll()` over WASI 0.2
//! (wasi:sockets, wasi:io/poll), so the same code serves both. One trap there:
//! `fcntl(F_SETFL)` on a socket fails (so socket2's `set_nonblocking` does too:
//! std's, which uses `ioctl(FIONBIO)`, works).
#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use super::handle::{next_serial, Handle};
use crate::log::trace;

#[cfg(unix)]
pub const RUNTIME: &str = "native";
#[cfg(not(unix))]
pub const RUNTIME: &str = "wasmtime"; // the wasip2 build, as the scripts and README call it

/// Signals received so far, natively (the wasm runtimes let no module see
/// a signal: they end the process): SIGTERM and SIGINT (requests to stop),
/// SIGHUP (requests to read the routes file now).
#[cfg(unix)]
static STOPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
#[cfg(unix)]
static HUPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic add: what a signal handler may do.
    let count = if sig == libc::SIGHUP { &HUPS } else { &STOPS };
    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many times the process was asked to stop (SIGTERM, SIGINT): 0 to go
/// on, 1 to drain and stop, 2 or more to stop now.
pub fn stop_requests() -> u32 {
    #[cfg(unix)]
    return STOPS.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(unix))]
    0
}

/// How many SIGHUPs came (natively; 0 on the wasm runtimes).
pub fn reload_requests() -> u32 {
    #[cfg(unix)]
    return HUPS.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(unix))]
    0
}

/// Raise the soft fd limit to the hard one, as HAProxy and nginx do: each
/// proxied connection holds two descriptors. Natively, take SIGTERM and
/// SIGINT as requests to stop gracefully (`stop_requests`), SIGHUP as one to
/// reload (`reload_requests`).
pub fn init() {
    #[cfg(unix)]
    {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: the handler only does an atomic add, which is async-signal-safe.
            unsafe { libc::signal(sig, handler) };
        }
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into `lim`, which we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            // SAFETY: setrlimit only reads the rlimit we pass. Best effort:
            // on failure the soft limit stays as it was.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        }
    }
}

fn is_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// EMFILE or ENFILE: no descriptor left for a new socket.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => true,
        // wasmtime 49 reports the host's EMFILE at socket creation as ENOTSUP
        // (seen under `prlimit --nofile`); pausing on a truly unsupported
        // socket would cost nothing, as every client would fail anyway.
        #[cfg(not(unix))]
        Some(libc::ENOTSUP) => true,
        _ => false,
    }
}

pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// A TCP socket for `addr`: non-blocking from birth where the kernel takes
/// SOCK_NONBLOCK (Linux), which saves an ioctl per socket; on wasip2,
/// wasi-libc's socket() takes it too.
fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let r = Socket::new(Domain::for_address(*addr), Type::STREAM.nonblocking(), None);
    let _ = trace!(r.as_ref().map(|s| s.as_raw_fd()), "socket({}, SOCK_STREAM|SOCK_NONBLOCK)", if addr.is_ipv4() { "AF_INET" } else { "AF_INET6" });
    r
}

/// The kernel's poller (epoll) forgets a socket when it is closed: tell
/// ours too, so it does not try to remove it (a failed call per socket).
fn closing(handle: Handle) {
    super::handle::closed(handle);
}

/// One unbound UDP socket: a descriptor and nothing else, no port taken
/// (what `limits` counts the descriptors with on wasip2).
#[cfg(not(unix))]
pub(super) fn spare_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM, None)
}

/// A listening socket; a Unix-socket one remembers its path, removed when
/// it closes (as nginx and socat's `unlink-close` do).
pub struct Listener(TcpListener, u64, Option<std::path::PathBuf>);

impl Drop for Listener {
    fn drop(&mut self) {
        closing(self.handle());
        let _ = trace!(io::Result::Ok(()), "close(fd={})", self.handle());
        if let Some(path) = &self.2 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let sock = new_socket(&addr)?;
        let fd = sock.as_raw_fd();
        trace!(sock.set_reuse_address(true), "setsockopt(fd={fd}, SO_REUSEADDR, 1)")?;
        trace!(sock.bind(&addr.into()), "bind(fd={fd}, {addr})")?;
        let backlog = backlog.min(i32::MAX as u32) as i32;
        trace!(sock.listen(backlog), "listen(fd={fd}, {backlog})")?;
        Ok(Listener(TcpListener::from(sock), next_serial(), None))
    }

    /// One call natively: accept4 gives the socket non-blocking and the
    /// peer's address with it (as HAProxy does). On wasip2, accept then
    /// set_nonblocking (std's, through ioctl: wasi-libc's fcntl refuses sockets).
    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        #[cfg(target_os = "linux")]
        let r = SockRef::from(&self.0)
            .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            // A Unix-socket client has no IP address: it is `UNIX_PEER`.
            .map(|(s, peer)| (TcpStream::from(s), peer.as_socket().unwrap_or(UNIX_PEER)));
        #[cfg(not(target_os = "linux"))]
        let r = self.0.accept().and_then(|(s, peer)| s.set_nonblocking(true).map(|()| (s, peer)));
        // Shown as (fd, peer): a TcpStream's Debug says more than the trace needs.
        let _ = trace!(r.as_ref().map(|(s, peer)| (s.as_raw_fd(), *peer)), "accept(fd={})", self.handle());
        let (stream, peer) = r?;
        Ok((Stream(stream, next_serial()), peer))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        trace!(self.0.local_addr(), "getsockname(fd={})", self.handle())
    }

    pub fn handle(&self) -> Handle {
        Handle { fd: self.0.as_raw_fd(), serial: self.1 }
    }
}

pub struct Stream(TcpStream, u64);

/// Where a Unix-socket client or upstream stands in a `SocketAddr`: it has
/// no IP address. Logs show it as `unix` (`show`).
pub const UNIX_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Natively, Unix sockets work (`unix:/path`); WASI has no AF_UNIX.
pub const UNIX_SOCKETS: bool = cfg!(unix);

/// Unix-socket ends, natively. A Unix stream socket takes the same calls
/// as a TCP one (accept4, recv, send, shutdown, getsockopt): its fd is kept
/// in the same std type, so the relay and the pollers see no difference.
/// What differs (no address to read, no Nagle to turn off) fails
/// harmlessly where it is asked, and `UNIX_PEER` stands for the address.
#[cfg(unix)]
mod unix {
    use std::io;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use socket2::{Domain, SockAddr, Socket, Type};

    use super::{is_in_progress, next_serial, trace, Listener, Stream};

    impl Listener {
        /// Listen at `path`, with `mode` and `owner` (uid, gid) when given.
        /// A socket file left by a process that is gone (connecting to it
        /// is refused) is replaced; one that still answers, or a file that
        /// is not a socket, is left alone and the error says so.
        pub fn bind_unix(path: &Path, mode: Option<u32>, owner: Option<(u32, Option<u32>)>, backlog: u32) -> io::Result<Listener> {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if !meta.file_type().is_socket() {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket (left alone)", path.display())));
                }
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("another process listens on {}", path.display()))),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)?, // stale
                    Err(e) => return Err(e),
                }
            }
            let sock = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
            sock.bind(&SockAddr::unix(path)?)?;
            // Mode and owner before listen: no client connects in between.
            let set = || -> io::Result<()> {
                if let Some(mode) = mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::lchown(path, Some(uid), gid)?;
                }
                Ok(())
            };
            let listener = Listener(TcpListener::from(std::os::fd::OwnedFd::from(sock)), next_serial(), Some(path.to_path_buf()));
            set()?; // on failure, dropping the listener removes the file
            socket2::SockRef::from(&listener.0).listen(backlog.min(i32::MAX as u32) as i32)?;
            Ok(listener)
        }
    }

    impl Stream {
        /// Connect to the Unix socket at `path`, non-blocking (a Unix
        /// connect is usually done at once; EAGAIN when its backlog is full).
        pub fn connect_unix(path: &Path) -> io::Result<Stream> {
            let sock = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
            match sock.connect(&SockAddr::unix(path)?) {
                Ok(()) => {}
                Err(e) if is_in_progress(&e) => {}
                Err(e) => return Err(e),
            }
            Ok(Stream(TcpStream::from(std::os::fd::OwnedFd::from(sock)), next_serial()))
        }

        /// A Unix-socket client's uid, as the kernel recorded it when the
        /// client connected (SO_PEERCRED): the client cannot choose it.
        /// `None` on a TCP socket or when the call fails.
        #[cfg(target_os = "linux")]
        pub fn peer_uid(&self) -> Option<u32> {
            use std::os::fd::AsRawFd;
            let fd = self.0.as_raw_fd();
            let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
            let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
            // SAFETY: `cred` and `len` are live locals of the sizes given;
            // the kernel writes at most `len` bytes into `cred`.
            let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len) };
            let r = if r == 0 && len as usize == std::mem::size_of::<libc::ucred>() && cred.pid != 0 { Ok(cred.uid) } else { Err(io::Error::last_os_error()) };
            trace!(r, "getsockopt(fd={fd}, SO_PEERCRED)").ok()
        }

        /// SO_PEERCRED is Linux's; elsewhere no uid is known.
        #[cfg(not(target_os = "linux"))]
        pub fn peer_uid(&self) -> Option<u32> {
            None
        }
    }
}

#[cfg(not(unix))]
impl Listener {
    pub fn bind_unix(_: &std::path::Path, _: Option<u32>, _: Option<(u32, Option<u32>)>, _: u32) -> io::Result<Listener> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(not(unix))]
impl Stream {
    pub fn connect_unix(_: &std::path::Path) -> io::Result<Stream> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// No Unix sockets here: no peer uid.
    pub fn peer_uid(&self) -> Option<u32> {
        None
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        closing(self.handle());
        let _ = trace!(io::Result::Ok(()), "close(fd={})", self.handle());
    }
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        let stream = TcpStream::from(new_socket(&addr)?);
        let r = trace!(SockRef::from(&stream).connect(&addr.into()), "connect(fd={}, {addr})", stream.as_raw_fd());
        match r {
            Ok(()) => Ok(Stream(stream, next_serial())),
            Err(e) if is_in_progress(&e) => Ok(Stream(stream, next_serial())),
            Err(e) => Err(e),
        }
    }

    /// Natively epoll reports a failed connect as an error or hang-up: a
    /// writable event without one is a connection, with no SO_ERROR call.
    /// wasip2's poll() (wasmtime 49) reports a refused connect as plainly
    /// writable: ask.
    pub fn connected_by(&self, ev: super::handle::Event) -> io::Result<()> {
        if cfg!(target_os = "linux") && ev.writable && !ev.trouble {
            return Ok(());
        }
        self.finish_connect()
    }

    pub fn finish_connect(&self) -> io::Result<()> {
        let r = match self.0.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => Ok(()),
        };
        trace!(r, "getsockopt(fd={}, SO_ERROR)", self.handle())
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        trace!((&self.0).read(buf), "recv(fd={}, {})", self.handle(), buf.len())
    }

    /// std's write is `send(MSG_NOSIGNAL)` on Linux: a reset peer gives EPIPE.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        trace!((&self.0).write(buf), "send(fd={}, {})", self.handle(), buf.len())
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        trace!(self.0.shutdown(Shutdown::Write), "shutdown(fd={}, SHUT_WR)", self.handle())
    }

    /// TCP_NODELAY. Natively it works; wasi-libc on WASI 0.2 accepts it
    /// and wasmtime 49 still holds small segments (`nagle::probe` tells).
    pub fn set_nodelay(&self) -> io::Result<()> {
        trace!(self.0.set_nodelay(true), "setsockopt(fd={}, TCP_NODELAY)", self.handle())
    }

    /// Make the coming close send RST (SO_LINGER 0), so that an aborted pair
    /// leaves nothing in FIN_WAIT_2 or CLOSE_WAIT. Best effort.
    pub fn abort(&self) {
        let _ = trace!(SockRef::from(&self.0).set_linger(Some(Duration::ZERO)), "setsockopt(fd={}, SO_LINGER, 0)", self.handle());
    }

    /// The address this connection arrived at (for a PROXY header).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        trace!(self.0.local_addr(), "getsockname(fd={})", self.handle())
    }

    pub fn handle(&self) -> Handle {
        Handle { fd: self.0.as_raw_fd(), serial: self.1 }
    }
}

/// A non-blocking UDP socket: connected to one peer (a DNS server the
/// resolver asks), or bound to serve anyone (the allowlist DNS server).
pub struct Datagram(UdpSocket, u64);

impl Drop for Datagram {
    fn drop(&mut self) {
        closing(self.handle());
    }
}

impl Datagram {
    pub fn connect(addr: SocketAddr) -> io::Result<Datagram> {
        let any = if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        let sock = UdpSocket::bind(SocketAddr::new(any, 0))?;
        sock.set_nonblocking(true)?;
        trace!(sock.connect(addr), "connect(fd={}, udp {addr})", sock.as_raw_fd())?;
        Ok(Datagram(sock, next_serial()))
    }

    pub fn bind(addr: SocketAddr) -> io::Result<Datagram> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        Ok(Datagram(sock, next_serial()))
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        trace!(self.0.send(buf), "send(fd={}, udp {})", self.handle(), buf.len())
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        trace!(self.0.recv_from(buf), "recvfrom(fd={}, udp {})", self.handle(), buf.len())
    }

    pub fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        trace!(self.0.send_to(buf, to), "sendto(fd={}, udp {}, {to})", self.handle(), buf.len())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        trace!(self.0.recv(buf), "recv(fd={}, udp {})", self.handle(), buf.len())
    }

    /// Ask for `size` bytes of kernel buffer each way (SO_RCVBUF,
    /// SO_SNDBUF): Linux caps them at net.core.rmem_max and wmem_max
    /// (SO_RCVBUFFORCE, past them, needs CAP_NET_ADMIN: not tried) and
    /// doubles what it grants, for its bookkeeping. On wasip2 wasi-libc
    /// passes them to wasi:sockets' set-receive-buffer-size and set-send-buffer-size.
    pub fn set_buffers(&self, size: usize) -> io::Result<()> {
        let s = SockRef::from(&self.0);
        trace!(s.set_recv_buffer_size(size), "setsockopt(fd={}, SO_RCVBUF, {size})", self.handle())?;
        trace!(s.set_send_buffer_size(size), "setsockopt(fd={}, SO_SNDBUF, {size})", self.handle())
    }

    /// What the kernel granted: (receive, send) bytes, as it reports them.
    pub fn buffers(&self) -> io::Result<(usize, usize)> {
        let s = SockRef::from(&self.0);
        Ok((s.recv_buffer_size()?, s.send_buffer_size()?))
    }

    /// Datagrams the kernel dropped at this socket so far (its receive
    /// buffer full, mostly): natively SO_MEMINFO's drop count, the same
    /// counter as /proc/net/udp's drops column, exact whenever it is read
    /// (SO_RXQ_OVFL would tell it only with the next datagram to arrive).
    /// wasip2 has no such option: None.
    pub fn dropped(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
            let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
            // SAFETY: the kernel writes at most `len` bytes into `info`, ours.
            let r = unsafe { libc::getsockopt(self.0.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len) };
            // A kernel too old to have the count (before 4.x) writes less.
            let enough = len as usize >= std::mem::size_of_val(&info);
            (r == 0 && enough).then(|| info.get(libc::SK_MEMINFO_DROPS as usize).copied().map(u64::from)).flatten()
        }
        #[cfg(not(target_os = "linux"))]
        None
    }

    pub fn handle(&self) -> Handle {
        Handle { fd: self.0.as_raw_fd(), serial: self.1 }
    }
}
