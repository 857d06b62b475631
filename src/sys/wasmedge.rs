//! wasm32-wasip1 on WasmEdge: its socket host functions. The poller,
//! `poll_oneoff`, is beside it in `poll_oneoff.rs`.
//!
//! The crate `wasmedge_wasi_socket` 0.5.5 does most calls. Some are made here
//! directly, because the crate gets them wrong for a proxy, or lacks them:
//! - `sock_getpeeraddr`/`sock_getlocaladdr`: the crate hands the host a pointer
//!   to an immutable buffer, so release builds log every address as 0.0.0.0;
//! - `sock_connect`: the crate rejects IPv6;
//! - `sock_accept`: the crate's accept costs four host calls, this one two;
//! - `sock_setsockopt` at IPPROTO_TCP: the crate's option enums stop at the
//!   socket level (`set_nodelay`).
//!
//! Never write to a socket with `fd_write` (std's `write`): WasmEdge uses
//! `writev` without MSG_NOSIGNAL there, and a reset peer kills the whole
//! runtime with SIGPIPE. `sock_send` is used for every write.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};


use wasmedge_wasi_socket::socket::{
    AddressFamily, Socket, SocketOptLevel, SocketOptName, SocketType, WasiAddrinfo,
};

use super::handle::Handle;
use crate::log::trace;


pub const RUNTIME: &str = "wasmedge";

/// WASI errno EINPROGRESS (not the host's 115).
const EINPROGRESS: i32 = 26;

pub fn init() {}

/// A module under WasmEdge never sees a signal: the runtime ends the process.
pub fn stop_requests() -> u32 {
    0
}

/// No SIGHUP either: the routes file is read on schedule instead.
pub fn reload_requests() -> u32 {
    0
}

fn is_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(EINPROGRESS)
}

/// WASI's EMFILE or ENFILE: no descriptor left for a new socket.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(wasi::ERRNO_MFILE.raw() as i32) || code == Some(wasi::ERRNO_NFILE.raw() as i32)
}

/// The host's `struct { buf, buf_len }` for an address.
#[repr(C)]
struct WasiAddress {
    buf: *mut u8,
    size: usize,
}

mod host {
    use super::WasiAddress;
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn sock_accept(fd: u32, new_fd: *mut u32) -> u32;
        pub fn sock_connect(fd: u32, addr: *mut WasiAddress, port: u32) -> u32;
        pub fn sock_getpeeraddr(
            fd: u32,
            addr: *mut WasiAddress,
            addr_type: *mut u32,
            port: *mut u32,
        ) -> u32;
        pub fn sock_getlocaladdr(
            fd: u32,
            addr: *mut WasiAddress,
            addr_type: *mut u32,
            port: *mut u32,
        ) -> u32;
        pub fn sock_setsockopt(fd: u32, level: u32, name: u32, flag: *const u8, flag_size: u32) -> u32;
        // With these eight parameters WasmEdge binds its V2 (a 128-byte
        // address: family, then the address; the port apart).
        pub fn sock_recv_from(
            fd: u32,
            iovs: *mut super::Iovec,
            iovs_len: u32,
            addr: *mut WasiAddress,
            flags: u32,
            port: *mut u32,
            read: *mut u32,
            oflags: *mut u32,
        ) -> u32;
        pub fn sock_send_to(fd: u32, iovs: *const super::Iovec, iovs_len: u32, addr: *mut WasiAddress, port: u32, flags: u32, sent: *mut u32) -> u32;
    }
}

/// WASI's iovec (and ciovec): a buffer and its length.
#[repr(C)]
struct Iovec {
    buf: *mut u8,
    len: usize,
}

fn check(ret: u32) -> io::Result<()> {
    match ret {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet4,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// One host call, where `Socket::set_nonblocking` makes two (get, then set).
fn set_nonblocking(fd: u32) -> io::Result<()> {
    // SAFETY: a host call on a number; a wrong fd is an error, not UB.
    let r = unsafe { wasi::fd_fdstat_set_flags(fd, wasi::FDFLAGS_NONBLOCK) }.map_err(|e| io::Error::from_raw_os_error(e.raw() as i32));
    trace!(r, "fd_fdstat_set_flags(fd={fd}, NONBLOCK)")
}

/// A new socket for `addr`'s family: the crate's `Socket::new` is one `sock_open`.
fn open(addr: &SocketAddr, kind: SocketType) -> io::Result<Socket> {
    let r = Socket::new(family(addr), kind);
    let (af, ty) = (if addr.is_ipv4() { "INET4" } else { "INET6" }, if matches!(kind, SocketType::Stream) { "STREAM" } else { "DGRAM" });
    let _ = trace!(r.as_ref().map(|s| s.as_raw_fd()), "sock_open({af}, {ty})");
    r
}

/// The peer's or the local address, read into a buffer the host may write
/// (the crate's immutable one reads back as 0.0.0.0 in release builds).
fn socket_addr(
    fd: u32,
    call: unsafe extern "C" fn(u32, *mut WasiAddress, *mut u32, *mut u32) -> u32,
) -> io::Result<SocketAddr> {
    let mut buf = [0u8; 16];
    let mut addr = WasiAddress { buf: buf.as_mut_ptr(), size: buf.len() };
    let (mut kind, mut port) = (0u32, 0u32);
    // SAFETY: `addr` points at `buf` (16 bytes, the size it says), and
    // `kind` and `port` are ours; all outlive the call, which writes them.
    check(unsafe { call(fd, &mut addr, &mut kind, &mut port) })?;
    let ip = match kind {
        4 => IpAddr::V4(Ipv4Addr::new(buf[0], buf[1], buf[2], buf[3])),
        6 => IpAddr::V6(Ipv6Addr::from(buf)),
        _ => return Err(io::Error::from(io::ErrorKind::Unsupported)),
    };
    Ok(SocketAddr::new(ip, port as u16))
}

/// Names go to the host's getaddrinfo (blocking). IPv4 results only for now:
/// the crate's result layout for IPv6 is not checked yet. Passing the port as
/// the service avoids a lookup in /etc/services, absent in slim containers.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let hints = WasiAddrinfo::default();
    let (mut sockaddrs, mut bufs, mut names) = (Vec::new(), Vec::new(), Vec::new());
    let infos = WasiAddrinfo::get_addrinfo(host, &port.to_string(), &hints, 16, &mut sockaddrs, &mut bufs, &mut names);
    let _ = trace!(infos.as_ref().map(Vec::len), "sock_getaddrinfo({host}, {port})");
    let infos = infos?;
    let mut out = Vec::new();
    for (info, b) in infos.iter().zip(&bufs) {
        // sockaddr_in without its family: port (2 bytes), then the address.
        if info.ai_addrlen > 0 && matches!(info.ai_family, AddressFamily::Inet4) {
            out.push(SocketAddr::new(Ipv4Addr::new(b[2], b[3], b[4], b[5]).into(), port));
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no IPv4 address"));
    }
    Ok(out)
}

/// The crate's socket, closed with one `fd_close`: the crate's own drop
/// calls `sock_shutdown(SHUT_RDWR)` first, a wasted host call per socket
/// that fails (ENOTCONN) whenever the peer already closed. A FIN that must
/// go before the close is sent by `shutdown_write`; the close sends it
/// otherwise.
struct Sock(std::mem::ManuallyDrop<Socket>);

impl Sock {
    fn new(socket: Socket) -> Sock {
        super::handle::opened();
        Sock(std::mem::ManuallyDrop::new(socket))
    }
}

impl std::ops::Deref for Sock {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        &self.0
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let fd = self.0.as_raw_fd() as u32;
        // SAFETY: the fd is this socket's own, closed once, here; the crate's
        // Socket inside is never dropped (ManuallyDrop), so it does not close it again.
        let r = unsafe { wasi::fd_close(fd) }.map_err(|e| io::Error::from_raw_os_error(e.raw() as i32));
        let _ = trace!(r, "fd_close(fd={fd})");
        super::handle::gone();
    }
}

pub struct Listener(Sock);

/// Where a Unix-socket peer would stand: WASI has none (`UNIX_SOCKETS`).
pub const UNIX_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
/// WASI has no AF_UNIX: `unix:/path` routes are refused at start.
pub const UNIX_SOCKETS: bool = false;

impl Listener {
    pub fn bind_unix(_: &std::path::Path, _: Option<u32>, _: Option<(u32, Option<u32>)>, _: u32) -> io::Result<Listener> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

impl Stream {
    pub fn connect_unix(_: &std::path::Path) -> io::Result<Stream> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// No Unix sockets in WASI: no peer uid.
    pub fn peer_uid(&self) -> Option<u32> {
        None
    }
}

impl Listener {
    pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let sock = Sock::new(open(&addr, SocketType::Stream)?); // closed by any early return
        let fd = sock.as_raw_fd() as u32;
        trace!(sock.setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoReuseaddr, 1i32), "sock_setsockopt(fd={fd}, SO_REUSEADDR, 1)")?;
        trace!(sock.bind(&addr), "sock_bind(fd={fd}, {addr})")?;
        let backlog = backlog.min(i32::MAX as u32) as i32;
        trace!(sock.listen(backlog), "sock_listen(fd={fd}, {backlog})")?;
        set_nonblocking(fd)?;
        Ok(Listener(sock))
    }

    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let mut fd = 0u32;
        // SAFETY: the host writes the new fd into `fd`, which we own.
        let r = check(unsafe { host::sock_accept(self.handle(), &mut fd) }).map(|()| fd);
        trace!(r, "sock_accept(fd={})", self.handle())?;
        // Own the fd first, so every early return below closes it.
        // SAFETY: `fd` was just returned by sock_accept and is owned by nothing else.
        let stream = Stream(Sock::new(unsafe { Socket::from_raw_fd(fd as i32) }));
        set_nonblocking(fd)?; // sock_accept's fd inherits nothing
        // Fails if the peer already reset: transient.
        let peer = trace!(socket_addr(fd, host::sock_getpeeraddr), "sock_getpeeraddr(fd={fd})")?;
        Ok((stream, peer))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        trace!(socket_addr(self.handle(), host::sock_getlocaladdr), "sock_getlocaladdr(fd={})", self.handle())
    }

    pub fn handle(&self) -> Handle {
        self.0.as_raw_fd() as u32
    }
}

pub struct Stream(Sock);

/// A non-blocking socket of `kind`, connecting to `addr` (our own
/// sock_connect: the crate's rejects IPv6). A TCP connect is usually still
/// in progress when this returns; a UDP one is done.
fn connect(addr: SocketAddr, kind: SocketType) -> io::Result<Sock> {
    let sock = Sock::new(open(&addr, kind)?);
    let fd = sock.as_raw_fd() as u32;
    set_nonblocking(fd)?;
    let mut ip = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut wa = WasiAddress { buf: ip.as_mut_ptr(), size: ip.len() };
    // SAFETY: `wa` points at `ip`, of the length it says; both outlive the call.
    let r = check(unsafe { host::sock_connect(fd, &mut wa, addr.port() as u32) });
    match trace!(r, "sock_connect(fd={fd}, {addr})") {
        Ok(()) => Ok(sock),
        Err(e) if is_in_progress(&e) => Ok(sock),
        Err(e) => Err(e),
    }
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        connect(addr, SocketType::Stream).map(Stream)
    }

    /// WasmEdge's poll_oneoff reports a failed connect as a hang-up (the
    /// host's EPOLLHUP): a write event without one is a connection, with no
    /// SO_ERROR call.
    pub fn connected_by(&self, ev: super::handle::Event) -> io::Result<()> {
        if ev.writable && !ev.trouble {
            return Ok(());
        }
        self.finish_connect()
    }

    pub fn finish_connect(&self) -> io::Result<()> {
        trace!(self.0.take_error(), "sock_getsockopt(fd={}, SO_ERROR)", self.handle())
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        trace!(self.0.recv(buf), "sock_recv(fd={}, {})", self.handle(), buf.len())
    }

    /// `sock_send` uses MSG_NOSIGNAL: a reset peer is EPIPE, not a signal.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        trace!(self.0.send(buf), "sock_send(fd={}, {})", self.handle(), buf.len())
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        trace!(self.0.shutdown(Shutdown::Write), "sock_shutdown(fd={}, SHUT_WR)", self.handle())
    }

    /// TCP_NODELAY, as WasmEdge would number it: level IPPROTO_TCP (6) and
    /// the option after SO_BINDTODEVICE (15), as in the proposed (unmerged)
    /// upstream patch. WasmEdge 0.17.1 accepts only the socket level and
    /// answers EINVAL; a release that adds the option is used at once.
    pub fn set_nodelay(&self) -> io::Result<()> {
        const IPPROTO_TCP: u32 = 6;
        const TCP_NODELAY: u32 = 15;
        let on = 1i32.to_le_bytes();
        // SAFETY: the host reads `on.len()` bytes from `on`, which outlives the call.
        let r = check(unsafe { host::sock_setsockopt(self.handle(), IPPROTO_TCP, TCP_NODELAY, on.as_ptr(), on.len() as u32) });
        trace!(r, "sock_setsockopt(fd={}, IPPROTO_TCP, TCP_NODELAY)", self.handle())
    }

    /// Make the coming close send RST (SO_LINGER 0), so that an aborted pair
    /// leaves nothing in FIN_WAIT_2 or CLOSE_WAIT. Best effort.
    pub fn abort(&self) {
        #[repr(C)]
        struct Linger {
            on: i32,
            seconds: i32,
        }
        let r = self.0.setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoLinger, Linger { on: 1, seconds: 0 });
        let _ = trace!(r, "sock_setsockopt(fd={}, SO_LINGER, 0)", self.handle());
    }

    /// The address this connection arrived at (for a PROXY header). Our own
    /// sock_getlocaladdr: the crate's local_addr() loses the IP in release builds.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        trace!(socket_addr(self.handle(), host::sock_getlocaladdr), "sock_getlocaladdr(fd={})", self.handle())
    }

    pub fn handle(&self) -> Handle {
        self.0.as_raw_fd() as u32
    }
}

// UDP sockets: a file of their own, beside this one.
#[path = "wasmedge_datagram.rs"]
mod datagram;
pub use datagram::Datagram;

/// One unbound UDP socket: a descriptor and nothing else, no port taken
/// (what `limits` counts the descriptors with).
pub(super) fn spare_socket() -> io::Result<impl Drop> {
    Socket::new(AddressFamily::Inet4, SocketType::Datagram).map(Sock::new)
}
