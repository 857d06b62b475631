//! The same echo server as `wasmedge_echo.rs`, on WASI 0.2 (wasm32-wasip2,
//! wasmtime): std::net and `poll`, which wasi-libc turns into `wasi:sockets`
//! and `wasi:io` calls. Each comment names the WASI 0.2 calls underneath; the
//! same source runs natively, where they are Linux system calls.
//!
//!     cargo build --example wasip2_echo --target wasm32-wasip2
//!     wasmtime run -S inherit-network target/wasm32-wasip2/debug/examples/wasip2_echo.wasm 7000
//!
//! WASI 0.2 is the component model: no socket numbers at the boundary but
//! resources (a `tcp-socket`, its `input-stream` and `output-stream`, each
//! `pollable`), and calls that may take time split in two (`start-bind`, then
//! `finish-bind`). wasi-libc keeps a table from its fds to those resources.

// Not on wasm32-wasip1: WASI 0.1 has no socket() for std (and no libc crate here).
#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
#[allow(unsafe_code)]
mod echo {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    struct Client { sock: TcpStream, buf: [u8; 1024], owed: usize, done: bool }

    pub fn serve(port: u16) -> std::io::Result<()> {
        // `tcp-create-socket.create-tcp-socket(ipv4)`; `tcp-socket.start-bind(network,
        // 127.0.0.1:port)` then `finish-bind()` (the network comes from
        // `instance-network`: wasmtime grants it with `-S inherit-network`);
        // `start-listen()` then `finish-listen()`.
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        // wasi-libc's own flag: it then never blocks in `pollable.block()` for this socket.
        listener.set_nonblocking(true)?;
        println!("listening on 127.0.0.1:{port}");
        let mut clients: Vec<Client> = Vec::new();
        loop {
            // What each socket waits for now: wasi-libc subscribes to each one's
            // pollable (`tcp-socket.subscribe()` for the listener, the streams'
            // `subscribe()` for a client) and makes one `wasi:io/poll.poll(list)`.
            let mut fds = vec![libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            for c in &clients {
                let events = if c.owed > 0 { libc::POLLOUT } else { libc::POLLIN };
                fds.push(libc::pollfd { fd: c.sock.as_raw_fd(), events, revents: 0 });
            }
            // A finite timeout, always: poll with nothing to wait for and no end traps on wasip2.
            // SAFETY: `fds` is ours and holds `fds.len()` entries for the call to write.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, 1000) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, p) in fds.iter().enumerate().filter(|(_, p)| p.revents != 0) {
                if i == 0 {
                    accept_all(&listener, &mut clients);
                    continue;
                }
                let Some(c) = clients.get_mut(i - 1) else { continue };
                if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && c.owed == 0 {
                    // `input-stream.read(1024)`: bytes, nothing yet (EAGAIN), or the
                    // stream's `closed` error, which is the peer's FIN (a read of 0).
                    match c.sock.read(&mut c.buf) {
                        Ok(0) => {
                            // `tcp-socket.shutdown(send)`: our FIN.
                            let _ = c.sock.shutdown(Shutdown::Write);
                            c.done = true;
                        }
                        Ok(n) => c.owed = n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => c.done = true,
                    }
                }
                if c.owed > 0 {
                    // `output-stream.check-write()` (how much it takes now), then `write(bytes)`.
                    match c.sock.write(&c.buf[..c.owed]) {
                        Ok(sent) => {
                            c.buf.copy_within(sent..c.owed, 0);
                            c.owed -= sent;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => c.done = true,
                    }
                }
            }
            // Dropping a TcpStream is `close()`: wasi-libc drops the streams, then the socket resource.
            clients.retain(|c| !c.done);
        }
    }

    /// Every client waiting, until accept says WouldBlock.
    fn accept_all(listener: &TcpListener, clients: &mut Vec<Client>) {
        // `tcp-socket.accept()`: a new `tcp-socket` with its input and output streams.
        while let Ok((sock, _)) = listener.accept() {
            // As on WasmEdge, the new socket does not inherit non-blocking mode.
            if sock.set_nonblocking(true).is_ok() {
                clients.push(Client { sock, buf: [0; 1024], owed: 0, done: false });
            }
        }
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7000);
    if let Err(e) = echo::serve(port) {
        eprintln!("wasip2_echo: {e}");
        std::process::exit(1);
    }
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn main() {
    eprintln!("wasip2_echo: build it with --target wasm32-wasip2 (wasmtime) or natively");
    std::process::exit(2);
}
