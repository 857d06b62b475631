//! The learner's path (issue 48): `--trace` shows every host call from the
//! listener's first, with the Nagle probe's calls labelled; and the two
//! examples of docs/learn.md, built as the page says, serve as it says.

use super::*;

/// A run's trace lines: (call, result, what they were part of).
fn traced(p: &Proxy) -> Vec<(String, String, String)> {
    let field = |r: &std::collections::HashMap<String, String>, k: &str| r.get(k).cloned().unwrap_or_default();
    p.log().iter().map(|l| record(l)).filter(|r| r["event"] == "trace").map(|r| (field(&r, "call"), field(&r, "result"), field(&r, "during"))).collect()
}

/// The fd a call's result names: `5`, or `(5, 127.0.0.1:4000)` for accept natively.
fn fd_of(result: &str) -> String {
    result.trim_start_matches('(').split(',').next().unwrap_or_default().to_string()
}

pub fn the_trace_starts_at_the_listener_and_labels_the_nagle_probe(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[], &["--trace"]);
    assert_eq!(exchange(p.connect(), b"traced".to_vec()), b"traced");
    first_close(&mut p);
    let wasmedge = matches!(rt, Runtime::WasmEdge | Runtime::WasmEdgeAot);
    let host = |call: &str| if wasmedge { format!("sock_{call}(") } else { format!("{call}(") };
    let (open, close) = if wasmedge { ("sock_open(".to_string(), "fd_close(") } else { ("socket(".to_string(), "close(") };

    // The upstream's sockets are closed after the close record: wait for them.
    let connect = host("connect");
    let upstream = |calls: &[(String, String, String)]| calls.iter().find(|(c, _, d)| c.starts_with(&connect) && d.is_empty()).map(|(c, _, _)| c.clone());
    let up_call = upstream(&traced(&p)).unwrap_or_else(|| panic!("no {connect} in the trace: {:?}", traced(&p)));
    let up_fd = up_call.trim_start_matches(&connect).split(',').next().unwrap_or_default().trim_start_matches("fd=").to_string();
    p.wait_for_log("the upstream's close in the trace", |l| l.contains(&format!("{close}fd={up_fd})")));
    let calls = traced(&p);
    let at = |pred: &dyn Fn(&(String, String, String)) -> bool, what: &str| {
        calls.iter().position(pred).unwrap_or_else(|| panic!("no {what} in the trace:\n{}", calls.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join("\n")))
    };

    // The listener: its first calls, in order, before anything else.
    let (first, result, during) = &calls[0];
    assert!(first.starts_with(&open) && during.is_empty(), "the trace starts with the listener's socket: {calls:?}");
    let l = fd_of(result);
    let mut steps = vec![
        at(&|(c, _, _)| c.starts_with(&format!("{}fd={l}, SO_REUSEADDR", host("setsockopt"))), "the listener's SO_REUSEADDR"),
        at(&|(c, _, _)| c.starts_with(&format!("{}fd={l}, 127.0.0.1:", host("bind"))), "the listener's bind"),
        at(&|(c, _, _)| c.starts_with(&format!("{}fd={l}, ", host("listen"))), "the listener's listen"),
    ];
    if wasmedge {
        steps.push(at(&|(c, _, _)| c == &format!("fd_fdstat_set_flags(fd={l}, NONBLOCK)"), "the listener made non-blocking"));
    }
    let first_wait = at(&|(c, _, d)| d.is_empty() && (c.starts_with("poll") || c.starts_with("epoll_wait")), "the loop's first wait");
    steps.push(first_wait);
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "the listener's calls, in order, before the loop: {steps:?} in {calls:?}");

    // The probe: its own sockets, labelled, all closed before the loop starts.
    let probe: Vec<&(String, String, String)> = calls.iter().filter(|(_, _, d)| d == "nagle-probe").collect();
    for call in [open.clone(), host("bind"), host("connect"), host("accept"), host("setsockopt")] {
        assert!(probe.iter().any(|(c, _, _)| c.starts_with(&call)), "the probe's {call} is labelled: {probe:?}");
    }
    assert!(probe.iter().any(|(c, _, _)| c.contains("TCP_NODELAY")), "the probe's TCP_NODELAY is labelled: {probe:?}");
    assert_eq!(probe.iter().filter(|(c, _, _)| c.starts_with(close)).count(), 3, "the probe closes its three sockets: {probe:?}");
    let last_probe = calls.iter().rposition(|(_, _, d)| d == "nagle-probe").unwrap_or_default();
    assert!(last_probe < first_wait, "the probe is over before the loop waits: {calls:?}");

    // The upstream: its socket is opened (and traced) before its connect, and
    // the client's and upstream's sockets are closed.
    let connect_at = at(&|(c, _, d)| c == &up_call && d.is_empty(), "the upstream's connect");
    let opened = at(&|(c, r, d)| c.starts_with(&open) && fd_of(r) == up_fd && d.is_empty() && r != "EAGAIN", "the upstream's socket");
    assert!(opened < connect_at, "the upstream's socket is opened before it connects: {calls:?}");
    let accepted = calls.iter().find(|(c, r, d)| c.starts_with(&host("accept")) && d.is_empty() && r != "EAGAIN").map(|(_, r, _)| fd_of(r));
    let client = accepted.unwrap_or_else(|| panic!("no accept in the trace: {calls:?}"));
    p.wait_for_log("the client's close in the trace", |l| l.contains(&format!("{close}fd={client})")));
}

/// Run `cmd` in the repository, and say what went wrong if it failed.
fn run(cmd: &mut Command) {
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Build an example as docs/learn.md does, run it with `runtime`, and talk to
/// it as an echo server should be talked to: two clients at once, one
/// half-closing, one sending more than a buffer holds.
fn example_echoes(example: &str, target: &str, runtime: &[&str]) {
    run(Command::new("cargo").args(["build", "--release", "--example", example, "--target", target]));
    let port = free_port();
    let wasm = format!("target/{target}/release/examples/{example}.wasm");
    let mut child = Command::new(runtime[0])
        .args(&runtime[1..])
        .arg(&wasm)
        .arg(port.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut said).unwrap();
    assert_eq!(said.trim(), format!("listening on 127.0.0.1:{port}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut big = TcpStream::connect(addr).unwrap();
    let mut small = TcpStream::connect(addr).unwrap();
    big.write_all(b"first ").unwrap();
    small.write_all(b"ping").unwrap();
    small.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    small.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"ping", "the echo, then the server's FIN");
    // More than its 1 KiB buffer, written while reading: backpressure, not loss.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut big = big.try_clone().unwrap();
        let payload = payload.clone();
        thread::spawn(move || {
            big.write_all(&payload).unwrap();
            big.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    big.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    big.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert_eq!(echoed.len(), payload.len() + 6);
    assert!(echoed.starts_with(b"first ") && echoed[6..] == payload[..], "every byte back, in order");
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// examples/wasmedge_echo.rs on WasmEdge: its only runtime.
#[test]
#[ignore = "needs wasmedge on PATH: scripts/test runs it"]
fn wasmedge_example_echoes_as_its_page_says() {
    example_echoes("wasmedge_echo", "wasm32-wasip1", &["wasmedge"]);
}

/// examples/wasip2_echo.rs on wasmtime (WASI 0.2).
#[test]
fn wasip2_example_echoes_on_wasmtime_as_its_page_says() {
    example_echoes("wasip2_echo", "wasm32-wasip2", &["wasmtime", "run", "-S", "inherit-network"]);
}
