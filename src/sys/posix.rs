//! Native Linux and wasm32-wasip2 (wasmtime): std::net, socket2, and `poll()`.
//!
//! On wasip2, wasi-libc implements sockets and `poll()` over WASI 0.2
//! (wasi:sockets, wasi:io/poll), so the same code serves both. Two traps there:
//! `fcntl(F_SETFL)` on a socket fails (so socket2's `set_nonblocking` does too:
//! std's, which uses `ioctl(FIONBIO)`, works), and `poll()` with nothing to
//! watch and no timeout traps (the core always passes a finite timeout).
#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use super::{clone_err, Event};
use crate::log::{trace, tracing, trace_line};

/// What the poller watches: the fd, and a serial number unique to the
/// socket, because a closed fd's number is soon reused by a new socket and
/// the epoll poller must not mistake the one for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    fd: RawFd,
    serial: u64,
}

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.fd)
    }
}

fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(unix)]
pub const RUNTIME: &str = "native";
#[cfg(not(unix))]
pub const RUNTIME: &str = "wasip2";

/// Raise the soft fd limit to the hard one, as HAProxy and nginx do: each
/// proxied connection holds two descriptors.
pub fn init() {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
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

fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
    Socket::new(Domain::for_address(*addr), Type::STREAM, None)
}

pub struct Listener(TcpListener, u64);

impl Listener {
    pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<Listener> {
        let sock = new_socket(&addr)?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(backlog.min(i32::MAX as u32) as i32)?;
        let listener = TcpListener::from(sock);
        listener.set_nonblocking(true)?;
        Ok(Listener(listener, next_serial()))
    }

    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let r = self.0.accept();
        trace!(r.as_ref().map(|(s, peer)| (s.as_raw_fd(), *peer)).map_err(clone_err), "accept(fd={})", self.handle());
        let (stream, peer) = r?;
        stream.set_nonblocking(true)?;
        Ok((Stream(stream, next_serial()), peer))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    pub fn handle(&self) -> Handle {
        Handle { fd: self.0.as_raw_fd(), serial: self.1 }
    }
}

pub struct Stream(TcpStream, u64);

impl Drop for Stream {
    fn drop(&mut self) {
        trace!(io::Result::Ok(()), "close(fd={})", self.handle());
    }
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        let stream = TcpStream::from(new_socket(&addr)?);
        stream.set_nonblocking(true)?;
        let r = SockRef::from(&stream).connect(&addr.into());
        trace!(r.as_ref().map_err(clone_err), "connect(fd={}, {addr})", stream.as_raw_fd());
        match r {
            Ok(()) => Ok(Stream(stream, next_serial())),
            Err(e) if is_in_progress(&e) => Ok(Stream(stream, next_serial())),
            Err(e) => Err(e),
        }
    }

    pub fn finish_connect(&self) -> io::Result<()> {
        let r = match self.0.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => Ok(()),
        };
        trace!(r.as_ref().map_err(clone_err), "getsockopt(fd={}, SO_ERROR)", self.handle());
        r
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let r = (&self.0).read(buf);
        trace!(r.as_ref().map_err(clone_err), "recv(fd={}, {})", self.handle(), buf.len());
        r
    }

    /// std's write is `send(MSG_NOSIGNAL)` on Linux: a reset peer gives EPIPE.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let r = (&self.0).write(buf);
        trace!(r.as_ref().map_err(clone_err), "send(fd={}, {})", self.handle(), buf.len());
        r
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        let r = self.0.shutdown(Shutdown::Write);
        trace!(r.as_ref().map_err(clone_err), "shutdown(fd={}, SHUT_WR)", self.handle());
        r
    }

    /// TCP_NODELAY. Natively it works; wasi-libc on WASI 0.2 accepts it
    /// and wasmtime 49 still holds small segments (`nagle::probe` tells).
    pub fn set_nodelay(&self) -> io::Result<()> {
        let r = self.0.set_nodelay(true);
        trace!(r.as_ref().map_err(clone_err), "setsockopt(fd={}, TCP_NODELAY)", self.handle());
        r
    }

    /// Make the coming close send RST (SO_LINGER 0), so that an aborted pair
    /// leaves nothing in FIN_WAIT_2 or CLOSE_WAIT. Best effort.
    pub fn abort(&self) {
        let r = SockRef::from(&self.0).set_linger(Some(Duration::ZERO));
        trace!(r.as_ref().map_err(clone_err), "setsockopt(fd={}, SO_LINGER, 0)", self.handle());
    }

    /// The address this connection arrived at (for a PROXY header).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    pub fn handle(&self) -> Handle {
        Handle { fd: self.0.as_raw_fd(), serial: self.1 }
    }
}

/// `poll()` over an interest list rebuilt for every wait (wasip2, where
/// wasi-libc implements it over wasi:io/poll).
#[cfg(not(target_os = "linux"))]
#[derive(Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
    tokens: Vec<usize>,
}

#[cfg(not(target_os = "linux"))]
impl Poller {
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Every pass lists all it watches: poll() keeps nothing between calls.
    pub fn begin(&mut self, _full: bool) {
        self.fds.clear();
        self.tokens.clear();
    }

    pub fn add(&mut self, handle: Handle, token: usize, read: bool, write: bool) {
        if !read && !write {
            return; // poll() would still report a hang-up for it
        }
        let mut events = 0;
        if read {
            events |= libc::POLLIN;
        }
        if write {
            events |= libc::POLLOUT;
        }
        self.fds.push(libc::pollfd { fd: handle.fd, events, revents: 0 });
        self.tokens.push(token);
    }

    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // Round up so a 0.4 ms deadline does not become a busy 0 ms poll.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as _, ms) };
        if tracing() {
            let show = |p: &libc::pollfd, ev: libc::c_short| {
                let r = if ev & libc::POLLIN != 0 { "r" } else { "" };
                let w = if ev & libc::POLLOUT != 0 { "w" } else { "" };
                let x = if ev & (libc::POLLHUP | libc::POLLERR) != 0 { "!" } else { "" };
                format!("fd{}:{r}{w}{x}", p.fd)
            };
            let asked: Vec<String> = self.fds.iter().map(|p| show(p, p.events)).collect();
            let got: Vec<String> = self.fds.iter().filter(|p| p.revents != 0).map(|p| show(p, p.revents)).collect();
            trace_line(format_args!("poll([{}], {ms}ms)", asked.join(" ")), format_args!("{n} ready [{}]", got.join(" ")));
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let trouble = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
        self.fds.iter().zip(&self.tokens).filter(|(p, _)| p.revents != 0).map(move |(p, &token)| {
            let bad = p.revents & trouble != 0;
            Event {
                token,
                readable: bad || p.revents & libc::POLLIN != 0,
                writable: bad || p.revents & libc::POLLOUT != 0,
            }
        })
    }
}

/// Native Linux: epoll, fed the same per-pass interest list. It remembers
/// what the kernel already watches and only tells it what changed (ADD, MOD;
/// DEL for what is added with no interest, and after a full pass for what it
/// did not list), so a pass whose interest is the same as the last one's
/// costs one epoll_wait and nothing else. In a partial pass, sockets not
/// listed stay watched as they were: quiet connections cost nothing here.
/// poll() instead handed the kernel the whole list every time: about 30% of
/// the proxy's CPU went to sock_poll, tcp_poll and wait-queue set-up.
#[cfg(target_os = "linux")]
pub struct Poller {
    epfd: std::os::fd::OwnedFd,
    /// What the kernel watches, by fd.
    watched: std::collections::HashMap<RawFd, Watch>,
    /// The current pass; after a full pass, an entry not marked with it by
    /// `add` is dropped at `wait`.
    pass: u64,
    full: bool,
    events: Vec<libc::epoll_event>,
    ready: usize,
}

#[cfg(target_os = "linux")]
struct Watch {
    serial: u64,
    token: usize,
    mask: u32,
    pass: u64,
}

#[cfg(target_os = "linux")]
impl Default for Poller {
    fn default() -> Self {
        Poller::new()
    }
}

#[cfg(target_os = "linux")]
impl Poller {
    pub fn new() -> Poller {
        use std::os::fd::FromRawFd;
        // epoll_create1 fails only without memory or descriptors; at start,
        // before any socket, that is fatal anyway.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            eprintln!("wasiter: epoll_create1 failed: {}", io::Error::last_os_error());
            std::process::exit(1);
        }
        Poller {
            epfd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            watched: std::collections::HashMap::new(),
            pass: 0,
            full: true,
            events: Vec::with_capacity(256),
            ready: 0,
        }
    }

    pub fn begin(&mut self, full: bool) {
        self.pass += 1;
        self.full = full;
        self.events.clear();
        self.ready = 0;
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, mask: u32, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: mask, u64: token as u64 };
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn add(&mut self, handle: Handle, token: usize, read: bool, write: bool) {
        if !read && !write {
            // No interest: stop watching it (level-triggered, a readable EOF
            // it no longer wants would wake every wait).
            if self.watched.get(&handle.fd).is_some_and(|w| w.serial == handle.serial) {
                self.watched.remove(&handle.fd);
                unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, handle.fd, std::ptr::null_mut()) };
            }
            return;
        }
        let mut mask = libc::EPOLLRDHUP as u32;
        if read {
            mask |= libc::EPOLLIN as u32;
        }
        if write {
            mask |= libc::EPOLLOUT as u32;
        }
        let pass = self.pass;
        let op = match self.watched.get(&handle.fd) {
            // The same socket, the same interest: nothing to tell the kernel.
            Some(w) if w.serial == handle.serial && w.token == token && w.mask == mask => None,
            Some(w) if w.serial == handle.serial => Some(libc::EPOLL_CTL_MOD),
            // A new socket, or a closed one's fd number reused: the kernel
            // dropped the old one when it was closed.
            _ => Some(libc::EPOLL_CTL_ADD),
        };
        if let Some(op) = op {
            let mut r = self.ctl(op, handle.fd, mask, token);
            if op == libc::EPOLL_CTL_ADD && r.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EEXIST)) {
                r = self.ctl(libc::EPOLL_CTL_MOD, handle.fd, mask, token);
            }
            if let Err(e) = r {
                // Not watchable (it cannot happen to a live socket): report it as
                // ready, so that the next read or write says what is wrong.
                trace_line(format_args!("epoll_ctl(fd={handle})"), format_args!("{e}"));
                self.watched.remove(&handle.fd);
                self.events.push(libc::epoll_event { events: libc::EPOLLERR as u32, u64: token as u64 });
                return;
            }
        }
        self.watched.insert(handle.fd, Watch { serial: handle.serial, token, mask, pass });
    }

    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // After a full pass, stop watching what it did not list. (Only then:
        // a partial pass keeps the rest, and need not walk the whole table.)
        let (pass, epfd) = (self.pass, self.epfd.as_raw_fd());
        if self.full {
            self.watched.retain(|&fd, w| {
                if w.pass != pass {
                    // Fails harmlessly if the fd was closed (the kernel dropped it then).
                    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
                }
                w.pass == pass
            });
        }
        // Errors found by `add` are already in `events`: return them at once.
        let failed = self.events.len();
        let ms = if failed > 0 { 0 } else { timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32 };
        let cap = self.watched.len().clamp(1, 4096);
        self.events.resize(failed + cap, libc::epoll_event { events: 0, u64: 0 });
        let n = unsafe {
            libc::epoll_wait(epfd, self.events.as_mut_ptr().add(failed), cap as libc::c_int, ms)
        };
        let n = if n < 0 {
            let e = io::Error::last_os_error();
            self.events.truncate(failed);
            self.ready = failed;
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        } else {
            n as usize
        };
        self.ready = failed + n;
        self.events.truncate(self.ready);
        if tracing() {
            let got: Vec<String> = self.events.iter().map(|e| format!("{:#x}:{:#x}", { e.u64 }, { e.events })).collect();
            trace_line(format_args!("epoll_wait({} watched, {ms}ms)", self.watched.len()), format_args!("{n} ready [{}]", got.join(" ")));
        }
        Ok(())
    }

    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let trouble = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        self.events.iter().take(self.ready).map(move |e| {
            let bits = e.events;
            let bad = bits & trouble != 0;
            Event {
                token: e.u64 as usize,
                readable: bad || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0,
                writable: bad || bits & libc::EPOLLOUT as u32 != 0,
            }
        })
    }
}
