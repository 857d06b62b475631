//! Does TCP_NODELAY really turn Nagle off on this runtime? Found out once at
//! start, by experiment, because the answer to `setsockopt` is not enough:
//! WasmEdge 0.17.1 refuses the option (EINVAL), and wasmtime 49 accepts it
//! and still holds small segments. Natively it works.
//!
//! The experiment, over a loopback pair made through `sys` like any other:
//! 1. set TCP_NODELAY on one end (`a`); a refusal is the answer "no";
//! 2. three ping-pongs, so that the other end (`b`), which answers at once,
//!    leaves quick-ACK mode and delays its ACKs, as an HTTP client does;
//! 3. `a` writes one byte, then another. With Nagle on, the second waits for
//!    `b`'s delayed ACK (40 ms on Linux); with Nagle off it arrives at once.
//!
//! It costs about 40 ms at start where Nagle stays on, and under a
//! millisecond where it is off. A runtime that learns TCP_NODELAY is used at
//! once, with no change here.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::relay::would_block;
use crate::sys::{Handle, Listener, Poller, Stream};

/// Faster than this, the second byte was not held: a stall is 40 ms, and
/// this leaves room for a busy machine.
const NOT_HELD: Duration = Duration::from_millis(25);
/// The whole probe gives up after this long (and says Nagle is on).
const GIVE_UP: Duration = Duration::from_secs(2);

/// What the probe found, for the start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nodelay {
    /// TCP_NODELAY is accepted and small writes go out at once.
    Works,
    /// The runtime refused the option.
    Refused,
    /// Accepted, but the second small write was still held.
    Ignored,
    /// The probe itself could not run (no loopback socket, say).
    Unknown,
}

impl Nodelay {
    pub fn works(self) -> bool {
        self == Nodelay::Works
    }

    /// What the probe saw, one word for the start line: works, refused
    /// (setsockopt failed), ignored (accepted, and Nagle still held the
    /// second byte), unknown (the probe could not run).
    pub fn name(self) -> &'static str {
        match self {
            Nodelay::Works => "works",
            Nodelay::Refused => "refused",
            Nodelay::Ignored => "ignored",
            Nodelay::Unknown => "unknown",
        }
    }
}

/// Its host calls show in `--trace` as `during=nagle-probe`.
pub fn probe() -> Nodelay {
    crate::log::trace_during(Some("nagle-probe"));
    let found = experiment().unwrap_or(Nodelay::Unknown); // its sockets are closed by now
    crate::log::trace_during(None);
    found
}

fn experiment() -> io::Result<Nodelay> {
    let deadline = Instant::now() + GIVE_UP;
    let mut poller = Poller::new()?;
    let listener = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1)?;
    let a = Stream::connect(listener.local_addr()?)?;
    let b = loop {
        match listener.accept() {
            Ok((b, _)) => break b,
            Err(e) if would_block(&e) => wait(&mut poller, &(listener.handle(), true, false), deadline)?,
            Err(e) => return Err(e),
        }
    };
    wait(&mut poller, &(a.handle(), false, true), deadline)?;
    a.finish_connect()?;
    if a.set_nodelay().is_err() {
        return Ok(Nodelay::Refused);
    }
    for _ in 0..3 {
        send(&a, b"p", &mut poller, deadline)?;
        receive(&b, 1, &mut poller, deadline)?;
        send(&b, b"q", &mut poller, deadline)?;
        receive(&a, 1, &mut poller, deadline)?;
    }
    let t = Instant::now();
    send(&a, b"1", &mut poller, deadline)?;
    send(&a, b"2", &mut poller, deadline)?;
    receive(&b, 2, &mut poller, deadline)?;
    Ok(if t.elapsed() < NOT_HELD { Nodelay::Works } else { Nodelay::Ignored })
}

/// A socket, and whether to wait for it to be readable, writable.
type Want = (Handle, bool, bool);

/// Wait until the one socket is ready as wanted, or fail at the deadline.
fn wait(poller: &mut Poller, &(handle, read, write): &Want, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        poller.begin(true);
        poller.add(handle, 0, read, write);
        poller.wait(left.min(Duration::from_millis(100)))?;
        if poller.events().next().is_some() {
            return Ok(());
        }
    }
}

fn send(s: &Stream, bytes: &[u8], poller: &mut Poller, deadline: Instant) -> io::Result<()> {
    loop {
        match s.write(bytes) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()), // one byte: all or nothing
            Err(e) if would_block(&e) => wait(poller, &(s.handle(), false, true), deadline)?,
            Err(e) => return Err(e),
        }
    }
}

fn receive(s: &Stream, mut want: usize, poller: &mut Poller, deadline: Instant) -> io::Result<()> {
    let mut buf = [0u8; 8];
    while want > 0 {
        match s.read(&mut buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => want = want.saturating_sub(n),
            Err(e) if would_block(&e) => wait(poller, &(s.handle(), true, false), deadline)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Natively TCP_NODELAY works: the probe must see it (it runs the same
    /// code that finds it ignored under wasmtime, which the black-box suite
    /// checks through the start line).
    #[test]
    fn natively_nodelay_works() {
        assert_eq!(probe(), Nodelay::Works);
    }
}
