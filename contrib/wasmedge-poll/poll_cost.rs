//! What one `poll_oneoff` call costs a WasmEdge runtime, by the number of
//! sockets it lists: the figure behind this folder's patches.
//!
//!     cargo build --release --example poll_cost --target wasm32-wasip1
//!     wasmedge compile target/wasm32-wasip1/release/examples/poll_cost.wasm poll_cost.aot.wasm
//!     wasmedge --run-mode=aot poll_cost.aot.wasm PAIRS [CALLS] [PORT]
//!
//! It opens PAIRS idle loopback connections (both ends listed for reading,
//! as a relay lists each connection's two sockets), one more socket that
//! stays readable (so that each call returns at once, as in a busy loop)
//! and a 1 s clock subscription (as a loop with a deadline pending lists
//! one). Then it times CALLS calls of `poll_oneoff` on that list and prints
//! the time per call. Run it on the stock runtime and on a patched one: the
//! difference is the runtime's cost, since the module does nothing else.

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn main() {
    if let Err(e) = measure() {
        eprintln!("poll_cost: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(all(target_os = "wasi", target_env = "p1")))]
fn main() {
    eprintln!("poll_cost: build it for wasm32-wasip1 and run it on WasmEdge (it measures WasmEdge's poll_oneoff)");
    std::process::exit(2);
}

#[cfg(all(target_os = "wasi", target_env = "p1"))]
fn measure() -> Result<(), String> {
    use std::io::Write;
    use std::os::wasi::io::AsRawFd;
    use std::time::Instant;
    use wasmedge_wasi_socket::{TcpListener, TcpStream};

    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: usize| match args.get(i) {
        Some(a) => a.parse::<usize>().map_err(|_| format!("argument {i} must be a number, got {a:?}")),
        None => Ok(default),
    };
    let pairs = number(1, 50)?;
    let calls = number(2, 20_000)?.max(1);
    let port = u16::try_from(number(3, 21_500)?).map_err(|_| "PORT must be below 65536".to_string())?;
    let at = format!("127.0.0.1:{port}");
    let listener = TcpListener::bind(&at, false).map_err(|e| format!("cannot listen on {at}: {e}"))?;
    let connect = || -> Result<(TcpStream, TcpStream), String> {
        let client = TcpStream::connect(&at).map_err(|e| format!("cannot connect to {at}: {e}"))?;
        let (server, _) = listener.accept(false).map_err(|e| format!("cannot accept: {e}"))?;
        Ok((client, server))
    };
    // The socket that stays readable: one byte sent, never read.
    let (mut writer, ready) = connect()?;
    writer.write_all(b"x").map_err(|e| format!("cannot write: {e}"))?;
    let mut sockets = vec![ready];
    for _ in 0..pairs {
        let (client, server) = connect()?;
        sockets.push(client);
        sockets.push(server);
    }

    let read = |(i, s): (usize, &TcpStream)| wasi::Subscription {
        userdata: i as u64,
        u: wasi::SubscriptionU {
            tag: wasi::EVENTTYPE_FD_READ.raw(),
            u: wasi::SubscriptionUU { fd_read: wasi::SubscriptionFdReadwrite { file_descriptor: s.as_raw_fd() as u32 } },
        },
    };
    let mut subs: Vec<wasi::Subscription> = sockets.iter().enumerate().map(read).collect();
    subs.push(wasi::Subscription {
        userdata: u64::MAX,
        u: wasi::SubscriptionU {
            tag: wasi::EVENTTYPE_CLOCK.raw(),
            u: wasi::SubscriptionUU {
                clock: wasi::SubscriptionClock { id: wasi::CLOCKID_MONOTONIC, timeout: 1_000_000_000, precision: 0, flags: 0 },
            },
        },
    });
    let mut events: Vec<wasi::Event> = Vec::with_capacity(subs.len());
    let mut run = |n: usize| -> Result<f64, String> {
        let start = Instant::now();
        for _ in 0..n {
            // SAFETY: `subs` holds subs.len() subscriptions and `events` has
            // room for as many events, which is all poll_oneoff may write.
            let got = unsafe { wasi::poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len()) }
                .map_err(|e| format!("poll_oneoff: {e}"))?;
            if got == 0 {
                return Err("poll_oneoff returned no event: the readable socket was not reported".into());
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    run(calls / 10 + 1)?; // warm-up: the runtime's pools, the kernel's epoll set
    let per_call = run(calls)?;
    println!("{} subscriptions ({pairs} idle pairs, 1 readable socket, 1 clock): {per_call:.2} us per call", subs.len());
    Ok(())
}
