//! WasmEdge's UDP sockets (wasm32-wasip1): the relay's, the resolver's and
//! the allowlist DNS server's. A file of its own beside `wasmedge.rs`, whose
//! private helpers (`Sock`, `connect`, the host calls) it uses.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use wasmedge_wasi_socket::socket::{SocketOptLevel, SocketOptName, SocketType};

use super::{check, connect, host, open, set_nonblocking, socket_addr, Handle, Iovec, Sock, WasiAddress};
use crate::log::trace;

/// A UDP socket: connected to one peer (a DNS server the resolver asks), or
/// bound to serve anyone (the allowlist DNS server). `recv_from` and
/// `send_to` are host calls of our own: the crate's `recv_from` hands the
/// host an immutable buffer (release builds read every sender as 0.0.0.0)
/// and panics on an address family it does not know.
pub struct Datagram(Sock);

impl Datagram {
    pub fn connect(addr: SocketAddr) -> io::Result<Datagram> {
        connect(addr, SocketType::Datagram).map(Datagram)
    }

    pub fn bind(addr: SocketAddr) -> io::Result<Datagram> {
        let sock = open(&addr, SocketType::Datagram)?;
        trace!(sock.bind(&addr), "sock_bind(fd={}, {addr})", sock.as_raw_fd())?;
        set_nonblocking(sock.as_raw_fd() as u32)?;
        Ok(Datagram(Sock::new(sock)))
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let fd = self.handle();
        // WasmEdge's address storage: the family (u16, little-endian), then
        // the address bytes.
        let mut storage = [0u8; 128];
        let mut addr = WasiAddress { buf: storage.as_mut_ptr(), size: storage.len() };
        let mut iov = Iovec { buf: buf.as_mut_ptr(), len: buf.len() };
        let (mut port, mut read, mut oflags) = (0u32, 0u32, 0u32);
        // SAFETY: every pointer is to a local or to `buf`, of the size it
        // says, and all outlive the call, which writes them.
        let r = check(unsafe { host::sock_recv_from(fd, &mut iov, 1, &mut addr, 0, &mut port, &mut read, &mut oflags) });
        trace!(r, "sock_recv_from(fd={fd}, udp {})", buf.len())?;
        // WasmEdge 0.17 writes the sender's port as the kernel holds it
        // (network byte order; `sock_send_to` takes host order).
        let port = u16::from_be(port as u16);
        let [lo, hi, a @ ..] = storage;
        let ip = match u16::from_le_bytes([lo, hi]) {
            1 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            2 => IpAddr::V6(Ipv6Addr::from(a.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()).unwrap_or_default())),
            family => return Err(io::Error::other(format!("a datagram from an address of family {family}"))),
        };
        Ok((read as usize, SocketAddr::new(ip, port)))
    }

    pub fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let fd = self.handle();
        let mut ip = match to.ip() {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mut addr = WasiAddress { buf: ip.as_mut_ptr(), size: ip.len() };
        // The host only reads a ciovec's buffer.
        let iov = Iovec { buf: buf.as_ptr().cast_mut(), len: buf.len() };
        let mut sent = 0u32;
        // SAFETY: the pointers are to locals and `buf`, of the sizes they
        // say; all outlive the call.
        let r = check(unsafe { host::sock_send_to(fd, &iov, 1, &mut addr, u32::from(to.port()), 0, &mut sent) });
        trace!(r, "sock_send_to(fd={fd}, udp {}, {to})", buf.len())?;
        Ok(sent as usize)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        trace!(socket_addr(self.handle(), host::sock_getlocaladdr), "sock_getlocaladdr(fd={})", self.handle())
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        trace!(self.0.send(buf), "sock_send(fd={}, udp {})", self.handle(), buf.len())
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        trace!(self.0.recv(buf), "sock_recv(fd={}, udp {})", self.handle(), buf.len())
    }

    /// Ask for `size` bytes of kernel buffer each way: WasmEdge passes
    /// SO_RCVBUF and SO_SNDBUF to the host's setsockopt, which caps them at
    /// net.core.rmem_max and wmem_max (and Linux doubles them).
    pub fn set_buffers(&self, size: usize) -> io::Result<()> {
        let size = i32::try_from(size).unwrap_or(i32::MAX);
        let r = self.0.setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoRcvbuf, size);
        trace!(r, "sock_setsockopt(fd={}, SO_RCVBUF, {size})", self.handle())?;
        let r = self.0.setsockopt(SocketOptLevel::SolSocket, SocketOptName::SoSndbuf, size);
        trace!(r, "sock_setsockopt(fd={}, SO_SNDBUF, {size})", self.handle())
    }

    /// What the host's kernel granted: (receive, send) bytes, as it reports them.
    pub fn buffers(&self) -> io::Result<(usize, usize)> {
        Ok((self.0.recv_buffer_size()?, self.0.send_buffer_size()?))
    }

    /// Datagrams the kernel dropped at this socket: WASI tells a module
    /// nothing of them (WasmEdge's getsockopt knows no SO_MEMINFO, its
    /// recv no SO_RXQ_OVFL, and /proc is the host's, not the module's).
    pub fn dropped(&self) -> Option<u64> {
        None
    }

    pub fn handle(&self) -> Handle {
        self.0.as_raw_fd() as u32
    }
}
