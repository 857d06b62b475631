//! The poller on WasmEdge: `poll_oneoff`, with its buffers kept between
//! calls. WasmEdge makes one epoll_ctl per subscription per call, so the
//! core lists only what can make progress (see `proxy`).
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

use super::handle::{Event, Handle};
use crate::log::{trace_line, tracing};

/// Bit 0 of a subscription's userdata: 0 = read, 1 = write.
const WRITE_BIT: u64 = 1;
const TIMER: u64 = u64::MAX;
/// stderr, watched while log lines wait for it (`stderr.rs`); its event
/// goes there, not to the core.
const LOG: u64 = u64::MAX - 1;

/// `poll_oneoff` with buffers kept between calls (the crate's `poll` allocates
/// three vectors per call and uses wall-clock deadlines).
#[derive(Default)]
pub struct Poller {
    subs: Vec<wasi::Subscription>,
    out: Vec<wasi::Event>,
    ready: Vec<Event>,
}

impl Poller {
    /// Whether what `add` was told holds until told otherwise: no, poll_oneoff
    /// is handed its whole list on every call.
    pub const KEEPS: bool = false;

    pub fn new() -> io::Result<Poller> {
        Ok(Poller::default())
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
        if super::stderr::watch() {
            self.push(LOG, wasi::EVENTTYPE_FD_WRITE, super::stderr::FD);
        }
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
        // SAFETY: `subs` holds `subs.len()` subscriptions and `out` has room
        // for as many events; both live across the call, which writes `out`.
        let n = unsafe { wasi::poll_oneoff(self.subs.as_ptr(), self.out.as_mut_ptr(), self.subs.len()) }
            .map_err(|e| io::Error::from_raw_os_error(e.raw() as i32))?;
        if tracing() {
            let show = |s: &wasi::Subscription| match s.userdata {
                TIMER => format!("timer:{}ms", timeout.as_millis()),
                LOG => "stderr:w".to_string(),
                u => {
                    // SAFETY: every non-timer subscription was built by `push` as
                    // fd_read or fd_write, which share one layout.
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
        if n == 0 {
            // Nothing fired, not even the timer: epoll woke WasmEdge for an
            // error alone (EPOLLERR, which it maps to no event: a connected
            // UDP socket whose server sent ICMP port unreachable). Level-
            // triggered, it would wake every call and the loop would spin.
            // Which socket is unknown: every one read-watched is said to be
            // readable, so its owner's next read takes the error (the others
            // see WouldBlock: rare, and cheaper than a spin).
            // stderr too: a pipe whose reader is gone (the write will say so).
            if self.subs.iter().any(|s| s.userdata == LOG) {
                super::stderr::writable(true);
            }
            let reads = self.subs.iter().filter(|s| s.userdata != TIMER && s.userdata != LOG && s.userdata & WRITE_BIT == 0);
            self.ready.extend(reads.map(|s| Event { token: (s.userdata >> 1) as usize, readable: true, writable: false, trouble: false }));
            return Ok(());
        }
        for ev in self.out.iter().take(n) {
            if ev.userdata == TIMER {
                continue;
            }
            if ev.userdata == LOG {
                super::stderr::writable(ev.error == wasi::ERRNO_SUCCESS);
                continue;
            }
            let token = (ev.userdata >> 1) as usize;
            // An error or hang-up is reported through whichever I/O call comes next.
            let trouble = ev.error != wasi::ERRNO_SUCCESS
                || ev.fd_readwrite.flags & wasi::EVENTRWFLAGS_FD_READWRITE_HANGUP != 0;
            let write = ev.userdata & WRITE_BIT != 0;
            self.ready.push(Event { token, readable: trouble || !write, writable: trouble || write, trouble });
        }
        Ok(())
    }

    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.ready.iter().copied()
    }
}
