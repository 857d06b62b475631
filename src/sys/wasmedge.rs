//! wasm32-wasip1 on WasmEdge: its socket host functions and `poll_oneoff`.
//!
//! The crate `wasmedge_wasi_socket` 0.5.5 does most calls. Three are made here
//! directly, because the crate gets them wrong for a proxy:
//! - `sock_getpeeraddr`/`sock_getlocaladdr`: the crate hands the host a pointer
//!   to an immutable buffer, so release builds log every address as 0.0.0.0;
//! - `sock_connect`: the crate rejects IPv6;
//! - `sock_accept`: the crate's accept costs four host calls, this one two.
//!
//! Never write to a socket with `fd_write` (std's `write`): WasmEdge uses
//! `writev` without MSG_NOSIGNAL there, and a reset peer kills the whole
//! runtime with SIGPIPE. `sock_send` is used for every write.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use wasmedge_wasi_socket::socket::{
    AddressFamily, Socket, SocketOptLevel, SocketOptName, SocketType, WasiAddrinfo,
};

use super::{clone_err, Event};
use crate::log::{trace, trace_line, tracing};

/// WASI fd numbers on WasmEdge are random 31-bit values: a key, not an index.
pub type Handle = u32;

pub const RUNTIME: &str = "wasmedge";

/// WASI errno EINPROGRESS (not the host's 115).
const EINPROGRESS: i32 = 26;

pub fn init() {}

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
    }
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
    unsafe { wasi::fd_fdstat_set_flags(fd, wasi::FDFLAGS_NONBLOCK) }
        .map_err(|e| io::Error::from_raw_os_error(e.raw() as i32))
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
    let infos = WasiAddrinfo::get_addrinfo(
        host,
        &port.to_string(),
        &hints,
        16,
        &mut sockaddrs,
        &mut bufs,
        &mut names,
    )?;
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

pub struct Listener(Socket);

impl Listener {
    pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let sock = Socket::new(family(&addr), SocketType::Stream)?;
        sock.setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoReuseaddr, 1i32)?;
        sock.bind(&addr)?;
        sock.listen(backlog.min(i32::MAX as u32) as i32)?;
        set_nonblocking(sock.as_raw_fd() as u32)?;
        Ok(Listener(sock))
    }

    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let mut fd = 0u32;
        let r = check(unsafe { host::sock_accept(self.handle(), &mut fd) }).map(|()| fd);
        trace!(r.as_ref().map_err(clone_err), "sock_accept(fd={})", self.handle());
        r?;
        // Own the fd first, so every early return below closes it.
        let stream = Stream(unsafe { Socket::from_raw_fd(fd as i32) });
        set_nonblocking(fd)?; // sock_accept's fd inherits nothing
        let peer = socket_addr(fd, host::sock_getpeeraddr); // fails if the peer already reset: transient
        trace!(peer.as_ref().map_err(clone_err), "sock_getpeeraddr(fd={fd})");
        Ok((stream, peer?))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.handle(), host::sock_getlocaladdr)
    }

    pub fn handle(&self) -> Handle {
        self.0.as_raw_fd() as u32
    }
}

pub struct Stream(Socket);

impl Drop for Stream {
    fn drop(&mut self) {
        // The crate's Socket then calls sock_shutdown(SHUT_RDWR) and fd_close.
        trace!(io::Result::Ok(()), "sock_shutdown+fd_close(fd={})", self.handle());
    }
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        let sock = Socket::new(family(&addr), SocketType::Stream)?;
        let fd = sock.as_raw_fd() as u32;
        set_nonblocking(fd)?;
        let mut ip = match addr.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mut wa = WasiAddress { buf: ip.as_mut_ptr(), size: ip.len() };
        let r = check(unsafe { host::sock_connect(fd, &mut wa, addr.port() as u32) });
        trace!(r.as_ref().map_err(clone_err), "sock_connect(fd={fd}, {addr})");
        match r {
            Ok(()) => Ok(Stream(sock)),
            Err(e) if is_in_progress(&e) => Ok(Stream(sock)),
            Err(e) => Err(e),
        }
    }

    pub fn finish_connect(&self) -> io::Result<()> {
        let r = self.0.take_error();
        trace!(r.as_ref().map_err(clone_err), "sock_getsockopt(fd={}, SO_ERROR)", self.handle());
        r
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.0.recv(buf);
        trace!(r.as_ref().map_err(clone_err), "sock_recv(fd={}, {})", self.handle(), buf.len());
        r
    }

    /// `sock_send` uses MSG_NOSIGNAL: a reset peer is EPIPE, not a signal.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let r = self.0.send(buf);
        trace!(r.as_ref().map_err(clone_err), "sock_send(fd={}, {})", self.handle(), buf.len());
        r
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        let r = self.0.shutdown(Shutdown::Write);
        trace!(r.as_ref().map_err(clone_err), "sock_shutdown(fd={}, SHUT_WR)", self.handle());
        r
    }

    /// TCP_NODELAY, as WasmEdge would number it: level IPPROTO_TCP (6) and
    /// the option after SO_BINDTODEVICE (15), as in the proposed (unmerged)
    /// upstream patch. WasmEdge 0.17.1 accepts only the socket level and
    /// answers EINVAL; a release that adds the option is used at once.
    pub fn set_nodelay(&self) -> io::Result<()> {
        const IPPROTO_TCP: u32 = 6;
        const TCP_NODELAY: u32 = 15;
        let on = 1i32.to_le_bytes();
        let r = check(unsafe { host::sock_setsockopt(self.handle(), IPPROTO_TCP, TCP_NODELAY, on.as_ptr(), on.len() as u32) });
        trace!(r.as_ref().map_err(clone_err), "sock_setsockopt(fd={}, IPPROTO_TCP, TCP_NODELAY)", self.handle());
        r
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
        trace!(r.as_ref().map_err(clone_err), "sock_setsockopt(fd={}, SO_LINGER, 0)", self.handle());
    }

    /// The address this connection arrived at (for a PROXY header). Our own
    /// sock_getlocaladdr: the crate's local_addr() loses the IP in release builds.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.handle(), host::sock_getlocaladdr)
    }

    pub fn handle(&self) -> Handle {
        self.0.as_raw_fd() as u32
    }
}

/// Bit 0 of a subscription's userdata: 0 = read, 1 = write.
const WRITE_BIT: u64 = 1;
const TIMER: u64 = u64::MAX;

/// `poll_oneoff` with buffers kept between calls (the crate's `poll` allocates
/// three vectors per call and uses wall-clock deadlines).
#[derive(Default)]
pub struct Poller {
    subs: Vec<wasi::Subscription>,
    out: Vec<wasi::Event>,
    ready: Vec<Event>,
}

impl Poller {
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Every pass lists all it watches: poll_oneoff keeps nothing between calls.
    pub fn begin(&mut self, _full: bool) {
        self.subs.clear();
    }

    fn push(&mut self, userdata: u64, tag: wasi::Eventtype, fd: u32) {
        let rw = wasi::SubscriptionFdReadwrite { file_descriptor: fd };
        let u = if tag == wasi::EVENTTYPE_FD_READ {
            wasi::SubscriptionUU { fd_read: rw }
        } else {
            wasi::SubscriptionUU { fd_write: rw }
        };
        self.subs.push(wasi::Subscription { userdata, u: wasi::SubscriptionU { tag: tag.raw(), u } });
    }

    pub fn add(&mut self, handle: Handle, token: usize, read: bool, write: bool) {
        let key = (token as u64) << 1;
        if read {
            self.push(key, wasi::EVENTTYPE_FD_READ, handle);
        }
        if write {
            self.push(key | WRITE_BIT, wasi::EVENTTYPE_FD_WRITE, handle);
        }
    }

    /// Always includes a timer: with no subscriptions poll_oneoff returns at
    /// once (a spin), and a subscription the host fails to register is only
    /// reported when something else wakes the call.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let clock = wasi::SubscriptionClock {
            id: wasi::CLOCKID_MONOTONIC,
            timeout: timeout.as_nanos().min(u64::MAX as u128) as u64,
            precision: 0,
            flags: 0, // relative
        };
        self.subs.push(wasi::Subscription {
            userdata: TIMER,
            u: wasi::SubscriptionU {
                tag: wasi::EVENTTYPE_CLOCK.raw(),
                u: wasi::SubscriptionUU { clock },
            },
        });
        let empty = wasi::Event {
            userdata: 0,
            error: wasi::ERRNO_SUCCESS,
            type_: wasi::EVENTTYPE_CLOCK,
            fd_readwrite: wasi::EventFdReadwrite { nbytes: 0, flags: 0 },
        };
        self.out.resize(self.subs.len(), empty);
        let n = unsafe { wasi::poll_oneoff(self.subs.as_ptr(), self.out.as_mut_ptr(), self.subs.len()) }
            .map_err(|e| io::Error::from_raw_os_error(e.raw() as i32))?;
        if tracing() {
            let show = |s: &wasi::Subscription| match s.userdata {
                TIMER => format!("timer:{}ms", timeout.as_millis()),
                u => {
                    let fd = unsafe { s.u.u.fd_read.file_descriptor };
                    format!("fd{fd}:{}", if u & WRITE_BIT != 0 { "w" } else { "r" })
                }
            };
            let asked: Vec<String> = self.subs.iter().map(show).collect();
            let got: Vec<String> = self
                .out
                .iter()
                .take(n)
                .map(|e| match self.subs.iter().find(|s| s.userdata == e.userdata) {
                    Some(s) => show(s),
                    None => "?".to_string(),
                })
                .collect();
            trace_line(format_args!("poll_oneoff([{}])", asked.join(" ")), format_args!("{n} events [{}]", got.join(" ")));
        }
        self.ready.clear();
        for ev in self.out.iter().take(n) {
            if ev.userdata == TIMER {
                continue;
            }
            let token = (ev.userdata >> 1) as usize;
            // An error or hang-up is reported through whichever I/O call comes next.
            let trouble = ev.error != wasi::ERRNO_SUCCESS
                || ev.fd_readwrite.flags & wasi::EVENTRWFLAGS_FD_READWRITE_HANGUP != 0;
            let write = ev.userdata & WRITE_BIT != 0;
            self.ready.push(Event { token, readable: trouble || !write, writable: trouble || write });
        }
        Ok(())
    }

    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.ready.iter().copied()
    }
}
