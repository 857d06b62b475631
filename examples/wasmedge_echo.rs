//! An echo server on WasmEdge's socket calls and nothing else: no crate, every
//! host function declared below with its ABI, a comment at every call. It is
//! what wasiter's `src/sys/wasmedge.rs` and `src/sys/poll_oneoff.rs` do, small
//! enough to hold in one's head: read it before them.
//!
//!     cargo build --example wasmedge_echo --target wasm32-wasip1
//!     wasmedge target/wasm32-wasip1/debug/examples/wasmedge_echo.wasm 7000
//!     python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 7000)); s.sendall(b"hi"); s.shutdown(1); print(s.recv(9))'
//!
//! One thread, one wait: each pass lists every socket with what it waits for
//! (the listener: a client; a client: bytes, or room for the bytes it is
//! owed) and a timer, calls `poll_oneoff` once, and serves what is ready. A
//! client's FIN (a read of 0) is answered with ours, and its socket closed.

#[cfg(all(target_os = "wasi", target_env = "p1"))]
#[allow(unsafe_code)]
mod wasmedge {
    /// WasmEdge's address: a pointer to the address bytes (4 for IPv4) and their length.
    #[repr(C)]
    struct Address { buf: *mut u8, len: u32 }
    /// An iovec: one buffer for sock_recv to fill or sock_send to take.
    #[repr(C)]
    struct Iovec { buf: *mut u8, len: u32 }
    /// poll_oneoff's subscription as WASI 0.1 lays it out (48 bytes): a tag, then a
    /// union at offset 16 (an fd for read/write; a clock id, timeout, precision, flags).
    #[repr(C)]
    struct Subscription { userdata: u64, tag: u8, _pad: [u8; 7], fd_or_clock: u32, timeout_ns: u64, precision: u64, flags: u16 }
    /// What poll_oneoff writes for each subscription that is ready (32 bytes).
    #[repr(C)]
    struct Event { userdata: u64, error: u16, tag: u8, nbytes: u64, flags: u16 }
    const _: () = assert!(size_of::<Subscription>() == 48 && size_of::<Event>() == 32);

    const CLOCK: u8 = 0; // subscription (and event) tags
    const READ: u8 = 1;
    const WRITE: u8 = 2;
    const EAGAIN: u32 = 6; // WASI's errno numbers, not Linux's (11)
    const TIMER: u64 = u64::MAX; // the timer's userdata; the listener's is 0, client i's is i + 1

    // Every call returns a WASI errno (0: done) and writes its results through pointers.
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        // WasmEdge's own: WASI 0.1 defines no way to open, bind, listen or connect.
        fn sock_open(family: u8, kind: u8, fd: *mut u32) -> u32; // family 1 = IPv4, kind 2 = stream
        fn sock_bind(fd: u32, addr: *mut Address, port: u32) -> u32;
        fn sock_listen(fd: u32, backlog: u32) -> u32;
        // WASI 0.1 has sock_accept(fd, flags, new_fd): three parameters. WasmEdge
        // picks its implementation by the signature; this two-parameter one is
        // what wasmedge_wasi_socket (and wasiter) import.
        fn sock_accept(fd: u32, new_fd: *mut u32) -> u32;
        // These three are WASI 0.1's own, with the standard's signatures.
        fn sock_recv(fd: u32, iovs: *mut Iovec, iovs_len: u32, flags: u16, read: *mut u32, oflags: *mut u16) -> u32;
        fn sock_send(fd: u32, iovs: *const Iovec, iovs_len: u32, flags: u16, sent: *mut u32) -> u32;
        fn sock_shutdown(fd: u32, how: u8) -> u32; // 1 = read side, 2 = write side (our FIN), 3 = both
        // And the plain WASI 0.1 calls every runtime has.
        fn fd_fdstat_set_flags(fd: u32, flags: u16) -> u32; // flags 4 = NONBLOCK
        fn fd_close(fd: u32) -> u32;
        fn poll_oneoff(subs: *const Subscription, events: *mut Event, nsubs: u32, nevents: *mut u32) -> u32;
    }

    fn ok(errno: u32) -> Result<(), u32> {
        if errno == 0 { Ok(()) } else { Err(errno) }
    }

    struct Client { fd: u32, buf: [u8; 1024], owed: usize, done: bool }

    pub fn serve(port: u16) -> Result<(), u32> {
        let mut listener = 0;
        // SAFETY (for every call below): each pointer is to a local that outlives the call.
        ok(unsafe { sock_open(1, 2, &mut listener) })?; // a new IPv4 TCP socket: its fd comes back
        let mut ip = [127, 0, 0, 1];
        let mut addr = Address { buf: ip.as_mut_ptr(), len: 4 };
        ok(unsafe { sock_bind(listener, &mut addr, u32::from(port)) })?; // the port in host order
        ok(unsafe { sock_listen(listener, 128) })?; // up to 128 clients may wait to be accepted
        ok(unsafe { fd_fdstat_set_flags(listener, 4) })?; // accept must answer EAGAIN, never wait
        println!("listening on 127.0.0.1:{port}");
        let mut clients: Vec<Client> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        loop {
            // What each socket waits for, now. A client owed bytes waits to be
            // writable, not readable: reading more would need more buffer (backpressure).
            let want = |userdata, tag, fd| Subscription { userdata, tag, _pad: [0; 7], fd_or_clock: fd, timeout_ns: 0, precision: 0, flags: 0 };
            let mut subs = vec![want(0, READ, listener)];
            for (i, c) in clients.iter().enumerate() {
                subs.push(want(i as u64 + 1, if c.owed > 0 { WRITE } else { READ }, c.fd));
            }
            // Always a timer: with nothing else listed poll_oneoff returns at once,
            // and a subscription WasmEdge cannot register blocks forever without one.
            subs.push(Subscription { timeout_ns: 1_000_000_000, ..want(TIMER, CLOCK, 1) }); // clock 1: monotonic, 1 s
            events.clear();
            events.reserve(subs.len());
            let mut n = 0;
            ok(unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len() as u32, &mut n) })?; // the one wait
            unsafe { events.set_len(n as usize) }; // poll_oneoff wrote n events
            for ev in &events {
                if ev.userdata == TIMER {
                    continue;
                }
                if ev.userdata == 0 {
                    accept_all(listener, &mut clients);
                    continue;
                }
                let Some(c) = clients.get_mut(ev.userdata as usize - 1) else { continue };
                // A reset or hang-up wakes the wait too (with a flag or an error in the
                // event): the read or write below then says so, and the client is closed.
                if ev.tag == READ {
                    let mut iov = Iovec { buf: c.buf.as_mut_ptr(), len: c.buf.len() as u32 };
                    let (mut read, mut oflags) = (0, 0);
                    match ok(unsafe { sock_recv(c.fd, &mut iov, 1, 0, &mut read, &mut oflags) }) {
                        Err(EAGAIN) => {} // ready, then not: wait again
                        Ok(()) if read > 0 => c.owed = read as usize, // echo them below
                        Ok(()) => {
                            // 0 bytes: the client's FIN. Send ours (close would too: a relay
                            // passes a FIN on this way while the other direction still flows).
                            unsafe { sock_shutdown(c.fd, 2) };
                            c.done = true;
                        }
                        Err(_) => c.done = true, // a reset: nothing more to say
                    }
                }
                if c.owed > 0 {
                    let iov = Iovec { buf: c.buf.as_mut_ptr(), len: c.owed as u32 }; // the first `owed` bytes
                    let mut sent = 0;
                    match ok(unsafe { sock_send(c.fd, &iov, 1, 0, &mut sent) }) {
                        Err(EAGAIN) => {} // no room: wait until writable
                        Ok(()) => {
                            c.buf.copy_within(sent as usize..c.owed, 0); // keep what was not taken
                            c.owed -= sent as usize;
                        }
                        Err(_) => c.done = true,
                    }
                }
            }
            // Close the finished: fd_close frees the fd (and sends a FIN if none went yet).
            for c in clients.iter().filter(|c| c.done) {
                unsafe { fd_close(c.fd) };
            }
            clients.retain(|c| !c.done);
        }
    }

    /// Every client waiting in the backlog, until sock_accept says EAGAIN.
    fn accept_all(listener: u32, clients: &mut Vec<Client>) {
        loop {
            let mut fd = 0;
            if unsafe { sock_accept(listener, &mut fd) } != 0 {
                return; // EAGAIN: no one else waits (or an error: tried again next pass)
            }
            // The new socket inherits nothing from the listener: it would block
            // the whole loop on its first read. (Natively, accept4 sets it in one call.)
            if unsafe { fd_fdstat_set_flags(fd, 4) } != 0 {
                unsafe { fd_close(fd) };
                continue;
            }
            clients.push(Client { fd, buf: [0; 1024], owed: 0, done: false });
        }
    }
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn main() {
    let port = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7000);
    if let Err(errno) = wasmedge::serve(port) {
        eprintln!("wasmedge_echo: a host call failed with WASI errno {errno}");
        std::process::exit(1);
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn main() {
    eprintln!("wasmedge_echo: build it with --target wasm32-wasip1 and run it on WasmEdge");
    std::process::exit(2);
}
