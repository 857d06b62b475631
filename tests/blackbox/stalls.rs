//! Faults around the proxy rather than on its connections: what it writes
//! to that nobody takes.

use std::process::ChildStderr;
use std::sync::mpsc;

use super::*;

/// Short clients in the flood: with `--dump hex` and 1 KiB each way, about
/// 6.5 KiB of log lines apiece, so about 2.5 MiB in all: well over the 1 MiB
/// that may wait for stderr, plus the 64 KiB a pipe holds.
const FLOOD: usize = 400;

/// stdout and stderr are pipes that nobody reads (a stuck log shipper, a
/// full `docker logs` driver): log writes fill the pipe, then the 1 MiB
/// buffer, then lines are dropped and counted, and every client is served
/// meanwhile, a bystander among them. Once the pipe is read, what waited
/// comes out in whole lines, then one line saying how many were dropped,
/// which the metric agrees with.
pub fn a_log_pipe_nobody_reads_stops_no_client(rt: Runtime) {
    if rt == Runtime::Wasmtime {
        // wasmtime writes a module's stderr with a blocking write of its own
        // (its check-write and pollable always say ready): docs/reliability-and-security.md.
        println!("SKIPPED: wasmtime: the runtime's own stderr write blocks, and a module cannot see it coming");
        return;
    }
    let echo = Server::echo();
    let args = ["--metrics", "127.0.0.1:0", "--log-format", "json", "--dump", "hex"];
    let (proxy, stderr) = Proxy::start_unread(rt, &echo.remote(), &args);
    let url = proxy.metrics.clone().expect("metrics URL in the start line");

    let mut bystander = proxy.connect();
    let payload = pattern(1024, 7);
    for i in 0..FLOOD {
        assert_eq!(exchange(proxy.connect(), payload.clone()), payload, "client {i} of {FLOOD} served");
        if i % 50 == 0 {
            bystander.write_all(b"still there?").unwrap();
            assert_eq!(read_exact_n(&mut bystander, 12), b"still there?", "the bystander, after {i} clients");
        }
    }
    let dropped = sample(&scrape(&url), "wasiter_log_lines_dropped_total", None);
    assert!(dropped > 0.0, "the flood wrote more than the pipe and 1 MiB hold, yet nothing was dropped");

    // Now read: what waited comes out, every line whole, then the count.
    let lines = read_lines(stderr);
    let mut kept = 0;
    let told = loop {
        let line = lines.recv_timeout(PATIENCE).expect("a log-dropped line once the pipe is read");
        kept += line.len() + 1;
        let r = record(&line);
        if r["event"] == "log-dropped" {
            break r["lines"].parse::<f64>().expect("lines=N");
        }
    };
    assert!(kept >= 1 << 20, "the 1 MiB buffer was kept: {kept} bytes came out before the count");
    assert_eq!(told, sample(&scrape(&url), "wasiter_log_lines_dropped_total", None), "one line tells every drop");
    assert!(dropped <= told);
    bystander.write_all(b"and now?").unwrap();
    assert_eq!(read_exact_n(&mut bystander, 8), b"and now?");
    drop(proxy);
}

/// Each line of `stderr` as it comes, from a thread (so a missing line is a
/// timeout, not a hang).
fn read_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
