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

struct Watch {
    serial: u64,
    token: usize,
    mask: u32,
    pass: u64,
}

impl Poller {
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
            watched: std::collections::HashMap::new(),
            pass: 0,
            full: true,
            events: Vec::with_capacity(256),
            ready: 0,
        })
    }

    pub fn begin(&mut self, full: bool) {
        let watched = &mut self.watched;
        take_closed(|h| {
            // Only if the entry is still that socket's (not a new one's on the same fd).
            if watched.get(&h.fd).is_some_and(|w| w.serial == h.serial) {
                watched.remove(&h.fd);
            }
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
            if self.watched.get(&handle.fd).is_some_and(|w| w.serial == handle.serial) {
                self.watched.remove(&handle.fd);
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
                    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed).
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
                trouble: bad,
            }
        })
    }
}
