//! The log's way out, natively and on wasip2: writes to stderr that never
//! block (see `log`), WouldBlock when stderr takes nothing now.
//!
//! Natively, O_NONBLOCK is never set on the inherited stderr: that flag
//! belongs to the open file description, shared with whoever else holds it
//! (the shell's terminal, the other processes of a container writing to the
//! same `docker logs` pipe), which would then see EAGAIN too, and keep it
//! after we exit. Instead, a pipe or terminal is opened again through
//! `/proc/self/fd/2`: a description of our own, non-blocking, to the same
//! pipe or terminal. Where that fails (no /proc, a socket), each write first
//! asks `poll` whether stderr is writable, with a zero timeout, and then
//! writes at most PIPE_BUF bytes, which a pipe with room for a page takes
//! without waiting. A regular file never waits for a reader: written as is.
//!
//! On wasip2 (wasmtime) the runtime writes a module's stderr with a blocking
//! write of its own, and the output stream's `check-write` and pollable
//! always say ready: a module cannot see a stalled reader there. Written as
//! is (docs/reliability-and-security.md names the limit).
#![allow(unsafe_code)]

#[cfg(unix)]
pub use native::{log_wait, log_write, watch};
#[cfg(not(unix))]
pub use wasip2::{log_wait, log_write};

#[cfg(unix)]
mod native {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    /// The last write found stderr full, and lines still wait: the poller
    /// watches it (`watch`), so that the loop wakes when it drains.
    static STALLED: AtomicBool = AtomicBool::new(false);

    /// How this process's stderr is written, decided at the first line.
    enum Out {
        /// A regular file or block device (or no stderr at all): plain writes.
        Plain,
        /// Our own non-blocking description of the same pipe or terminal.
        Own(OwnedFd),
        /// Ask `poll` before each write of at most PIPE_BUF bytes.
        Polled,
    }

    fn out() -> &'static Out {
        static OUT: OnceLock<Out> = OnceLock::new();
        OUT.get_or_init(|| {
            // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat writes one stat into `st`, which we own.
            if unsafe { libc::fstat(libc::STDERR_FILENO, &mut st) } != 0 {
                return Out::Plain;
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFREG || kind == libc::S_IFBLK {
                return Out::Plain;
            }
            let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
            // SAFETY: a NUL-terminated path; open returns a new fd or -1.
            let fd = unsafe { libc::open(c"/proc/self/fd/2".as_ptr(), flags) };
            if fd < 0 {
                return Out::Polled;
            }
            // SAFETY: `fd` was just opened and is owned by nothing else.
            Out::Own(unsafe { OwnedFd::from_raw_fd(fd) })
        })
    }

    fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writes at most `buf.len()` bytes from `buf`, which outlives the call.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Whether `fd` can take bytes now, waiting at most `ms` (an error or
    /// hang-up counts: the write reports it at once).
    fn writable(fd: RawFd, ms: i32) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one pollfd, which we own, for the length of the call.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    /// Some of `buf` to stderr, never blocking: WouldBlock when it takes nothing now.
    pub fn log_write(buf: &[u8]) -> io::Result<usize> {
        let r = write_now(buf);
        match &r {
            Ok(n) if *n > 0 => STALLED.store(false, Ordering::Relaxed),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => STALLED.store(true, Ordering::Relaxed),
            _ => {}
        }
        r
    }

    /// What the poller should watch for writability now, if anything: stderr
    /// while it is full and lines wait for it.
    pub fn watch() -> Option<RawFd> {
        if !STALLED.load(Ordering::Relaxed) || !crate::log::pending() {
            return None;
        }
        waitable()
    }

    /// The descriptor a wait for stderr's room watches: none for a plain
    /// file (it never waits for a reader).
    fn waitable() -> Option<RawFd> {
        match out() {
            Out::Plain => None,
            Out::Own(fd) => Some(fd.as_raw_fd()),
            Out::Polled => Some(libc::STDERR_FILENO),
        }
    }

    fn write_now(buf: &[u8]) -> io::Result<usize> {
        match out() {
            Out::Plain => write(libc::STDERR_FILENO, buf),
            Out::Own(fd) => write(fd.as_raw_fd(), buf),
            Out::Polled if writable(libc::STDERR_FILENO, 0) => {
                write(libc::STDERR_FILENO, buf.get(..libc::PIPE_BUF).unwrap_or(buf))
            }
            Out::Polled => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Wait until stderr may take bytes, at most `timeout` (at exit).
    pub fn log_wait(timeout: Duration) {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        if let Some(fd) = waitable() {
            writable(fd, ms);
        }
    }
}

#[cfg(not(unix))]
mod wasip2 {
    use std::io::{self, Write};
    use std::time::Duration;

    /// Some of `buf` to stderr: the runtime's write, which may block.
    pub fn log_write(buf: &[u8]) -> io::Result<usize> {
        io::stderr().write(buf)
    }

    /// Nothing to wait for: `log_write` takes everything.
    pub fn log_wait(_: Duration) {}
}
