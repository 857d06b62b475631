//! The poller on native Linux: epoll.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::handle::{take_closed, Event, Handle};
use crate::log::{trace_line, tracing};

/// Native Linux: epoll, fed the same per-pass interest list. It remembers
/// what the kernel already watches and only tells it what changed (ADD, MOD;
/// DEL for what is added with no interest, and after a full pass for what it
/// did not list), so a pass whose interest is the same as the last one's
/// costs one epoll_wait and nothing else. In a partial pass, sockets not
/// listed stay watched as they were: quiet connections cost nothing here.
/// poll() instead handed the kernel the whole list every time: about 30% of
/// the proxy's CPU went to sock_poll, tcp_poll and wait-queue set-up.
///
/// Every pass asks `add` about each busy socket, so that question must be
/// cheap: the table is indexed by the fd itself (fds are small and dense),
/// not hashed. With a HashMap, hashing took a fifth of the proxy's user time
/// under 50 kept-alive clients.
pub struct Poller {
    epfd: std::os::fd::OwnedFd,
    /// What the kernel watches, at index fd (`serial` 0: nothing).
    watched: Vec<Watch>,
    /// How many entries of `watched` are in use.
    count: usize,
    /// The current pass; after a full pass, an entry not marked with it by
    /// `add` is dropped at `wait`.
    pass: u64,
    full: bool,
    events: Vec<libc::epoll_event>,
    ready: usize,
    /// stderr, watched while it is full and log lines wait (`stderr::watch`).
    log: Option<RawFd>,
}

/// The token of stderr's event, which goes no further than `wait`.
const LOG: u64 = u64::MAX;

#[derive(Clone, Copy, Default)]
struct Watch {
    /// The socket's serial (never 0: `next_serial` starts at 1).
    serial: u64,
    token: usize,
    mask: u32,
    pass: u64,
}

impl Poller {
    /// Whether what `add` was told holds until told otherwise (epoll keeps
    /// a registration until it is changed or the socket closes): then a
    /// pass may list only the sockets whose interest may have changed.
    pub const KEEPS: bool = true;

    /// Fails only without memory or descriptors.
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; it returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: `fd` was just created and is owned by nothing else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            watched: Vec::new(),
            count: 0,
            pass: 0,
            full: true,
            events: Vec::with_capacity(256),
            ready: 0,
            log: None,
        })
    }

    /// The entry for `handle`'s socket, if the kernel watches it (not
    /// another socket that had the same fd number before).
    fn entry(&mut self, handle: Handle) -> Option<&mut Watch> {
        usize::try_from(handle.fd).ok().and_then(|i| self.watched.get_mut(i)).filter(|w| w.serial == handle.serial)
    }

    fn forget(&mut self, handle: Handle) -> bool {
        match self.entry(handle) {
            Some(w) => {
                *w = Watch::default();
                self.count -= 1;
                true
            }
            None => false,
        }
    }

    pub fn begin(&mut self, full: bool) {
        take_closed(|h| {
            self.forget(h);
        });
        self.pass += 1;
        self.full = full;
        self.events.clear();
        self.ready = 0;
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, mask: u32, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: mask, u64: token as u64 };
        // SAFETY: `ev` lives across the call, which only reads it.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn add(&mut self, handle: Handle, token: usize, read: bool, write: bool) {
        if !read && !write {
            // No interest: stop watching it (level-triggered, a readable EOF
            // it no longer wants would wake every wait).
            if self.forget(handle) {
                // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed).
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
        let Some(slot) = self.slot(handle.fd) else { return };
        let old = *slot;
        let op = if old.serial != handle.serial {
            // A new socket, or a closed one's fd number reused: the kernel
            // dropped the old one when it was closed.
            libc::EPOLL_CTL_ADD
        } else if old.token == token && old.mask == mask {
            // The same socket, the same interest: nothing to tell the kernel.
            slot.pass = pass;
            return;
        } else {
            libc::EPOLL_CTL_MOD
        };
        let mut r = self.ctl(op, handle.fd, mask, token);
        if op == libc::EPOLL_CTL_ADD && r.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EEXIST)) {
            r = self.ctl(libc::EPOLL_CTL_MOD, handle.fd, mask, token);
        }
        let was = old.serial != 0;
        let now = match r {
            Ok(()) => Watch { serial: handle.serial, token, mask, pass },
            Err(e) => {
                // Not watchable (it cannot happen to a live socket): report it as
                // ready, so that the next read or write says what is wrong.
                trace_line(format_args!("epoll_ctl(fd={handle})"), format_args!("{e}"));
                self.events.push(libc::epoll_event { events: libc::EPOLLERR as u32, u64: token as u64 });
                Watch::default()
            }
        };
        let is = now.serial != 0;
        self.count = self.count + usize::from(is) - usize::from(was);
        if let Some(slot) = self.slot(handle.fd) {
            *slot = now;
        }
    }

    /// The table's entry for `fd`, the table grown to hold it.
    fn slot(&mut self, fd: RawFd) -> Option<&mut Watch> {
        let i = usize::try_from(fd).ok()?;
        if i >= self.watched.len() {
            self.watched.resize(i + 1, Watch::default());
        }
        self.watched.get_mut(i)
    }

    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // After a full pass, stop watching what it did not list. (Only then:
        // a partial pass keeps the rest, and need not walk the whole table.)
        let (pass, epfd) = (self.pass, self.epfd.as_raw_fd());
        if self.full {
            for (fd, w) in self.watched.iter_mut().enumerate() {
                if w.serial != 0 && w.pass != pass {
                    // Fails harmlessly if the fd was closed (the kernel dropped it then).
                    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed).
                    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd as RawFd, std::ptr::null_mut()) };
                    *w = Watch::default();
                    self.count -= 1;
                }
            }
        }
        let log = super::stderr::watch();
        if log != self.log {
            // Wake when a full stderr drains (the next pass writes what waits).
            if let Some(fd) = self.log {
                // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed).
                unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
            }
            if let Some(fd) = log {
                let _ = self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLOUT as u32, LOG as usize);
            }
            self.log = log;
        }
        // Errors found by `add` are already in `events`: return them at once.
        let failed = self.events.len();
        let ms = if failed > 0 { 0 } else { timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32 };
        let cap = self.count.clamp(1, 4096);
        self.events.resize(failed + cap, libc::epoll_event { events: 0, u64: 0 });
        // SAFETY: `events` has room for `failed + cap` entries, and epoll_wait
        // writes at most `cap` of them, after the `failed` ones.
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
        self.events.truncate(failed + n);
        if self.log.is_some() {
            self.events.retain(|e| e.u64 != LOG);
        }
        self.ready = self.events.len();
        if tracing() {
            let got: Vec<String> = self.events.iter().map(|e| format!("{:#x}:{:#x}", { e.u64 }, { e.events })).collect();
            trace_line(format_args!("epoll_wait({} watched, {ms}ms)", self.count), format_args!("{n} ready [{}]", got.join(" ")));
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
                trouble: bad,
            }
        })
    }
}
