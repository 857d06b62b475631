//! The poller on wasm32-wasip2 (and any non-Linux Unix): `poll()` over an
//! interest list rebuilt for every wait. On wasip2, wasi-libc implements it
//! over wasi:io/poll; `poll()` with nothing to watch and no timeout traps
//! there, so the core always passes a finite timeout.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

use super::handle::{Event, Handle};
use crate::log::{trace_line, tracing};

/// `poll()` over an interest list rebuilt for every wait (wasip2, where
/// wasi-libc implements it over wasi:io/poll).
#[derive(Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
    tokens: Vec<usize>,
}

impl Poller {
    /// Whether what `add` was told holds until told otherwise: no, poll()
    /// is handed its whole list on every call.
    pub const KEEPS: bool = false;

    pub fn new() -> io::Result<Poller> {
        Ok(Poller::default())
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
        // SAFETY: `fds` is a live array of `fds.len()` pollfd that poll() may
        // write `revents` into; nothing else touches it during the call.
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
                trouble: bad,
            }
        })
    }
}

