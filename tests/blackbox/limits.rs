//! The host's limits: descriptors (none accepted that cannot be served; the
//! start line and `--check` say what the process has) and the listen backlog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// The start line's fields.
fn start_line(p: &mut Proxy) -> std::collections::HashMap<String, String> {
    record(&p.wait_for_log("start line", |l| l.contains(" start listen=")))
}

pub fn at_the_fd_limit_clients_wait_in_the_backlog_and_all_are_served(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start_limited(rt, &echo.remote(), &[], &["--quiet"], Some(256));
    let max_conns: usize = start_line(&mut p)["max_conns"].parse().unwrap();
    assert!((100..=127).contains(&max_conns), "256 descriptors fit {max_conns} clients?");
    // More clients than fit, all at once; each holds its connection once
    // served, until released. Those that do not fit wait in the backlog.
    let total = 300;
    let (served, empty, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..total)
        .map(|i| {
            let (addr, served, empty, release) = (p.addr, served.clone(), empty.clone(), release.clone());
            thread::spawn(move || {
                let mut s = connect(addr);
                let msg = format!("client {i:04}");
                let mut back = vec![0u8; msg.len()];
                if s.write_all(msg.as_bytes()).and_then(|()| s.read_exact(&mut back)).is_err() || back != msg.as_bytes() {
                    empty.fetch_add(1, Ordering::SeqCst); // closed (or reset) with nothing
                    return;
                }
                served.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    eventually("the proxy fills what its descriptors fit", || served.load(Ordering::SeqCst) + empty.load(Ordering::SeqCst) >= max_conns - 1);
    // Full: the others must wait, not be accepted and closed.
    thread::sleep(Duration::from_millis(1500));
    let (full, closed) = (served.load(Ordering::SeqCst), empty.load(Ordering::SeqCst));
    assert_eq!(closed, 0, "{closed} clients were closed with nothing at the descriptor limit");
    assert!(full <= max_conns, "{full} served at once, more than max_conns={max_conns}");
    p.assert_alive();
    release.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let (served, closed) = (served.load(Ordering::SeqCst), empty.load(Ordering::SeqCst));
    println!("{rt:?}: at 256 descriptors, {full} clients at once (max_conns={max_conns}); {served} of {total} served, {closed} closed empty");
    assert_eq!((served, closed), (total, 0), "every client that waited is served in the end");
    // A bystander is served as before.
    assert_eq!(exchange(p.connect(), b"bystander".to_vec()), b"bystander");
    p.assert_alive();
}

pub fn a_limit_lowered_while_running_is_learned_from_the_first_refusal(rt: Runtime) {
    let echo = Server::echo();
    let mut p = Proxy::start_limited(rt, &echo.remote(), &[], &["--quiet"], Some(256));
    // Counted at start, the limit is lowered under it: the first refusal
    // (at accept, or at the upstream's socket) must teach it the new one.
    let lowered = Command::new("prlimit").arg(format!("--pid={}", p.pid())).arg("--nofile=160:160").status().expect("prlimit runs");
    assert!(lowered.success());
    let total = 150;
    let (served, empty, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..total)
        .map(|i| {
            let (addr, served, empty, release) = (p.addr, served.clone(), empty.clone(), release.clone());
            thread::spawn(move || {
                let mut s = connect(addr);
                let msg = format!("client {i:04}");
                let mut back = vec![0u8; msg.len()];
                if s.write_all(msg.as_bytes()).and_then(|()| s.read_exact(&mut back)).is_err() || back != msg.as_bytes() {
                    empty.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                served.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    let learned = p.wait_for_log("the limit learned", |l| l.contains(" warn accept-paused ") && l.contains("until="));
    thread::sleep(Duration::from_millis(1500));
    let (full, closed) = (served.load(Ordering::SeqCst), empty.load(Ordering::SeqCst));
    // A refusal at the upstream's socket costs the client just accepted;
    // after it, nobody.
    assert!(closed <= 1 && full < total, "{closed} closed empty, {full} served at once, after: {learned}");
    release.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let (served, closed) = (served.load(Ordering::SeqCst), empty.load(Ordering::SeqCst));
    println!("{rt:?}: limit lowered to 160 while running: {full} at once, {served} of {total} served, {closed} closed empty; {learned}");
    assert!(closed <= 1 && served + closed == total, "{served} served, {closed} closed empty");
    assert_eq!(exchange(p.connect(), b"bystander".to_vec()), b"bystander");
    p.assert_alive();
}

/// `--check` under the open-file limit `soft:hard`, with these variables.
fn check_under(rt: Runtime, (soft, hard): (u32, u32), env: &[(&str, String)]) -> String {
    let cmd = rt.command(env, &["--check", "--local", "127.0.0.1:1", "--remote", "127.0.0.1:2"]);
    let mut limited = Command::new("prlimit");
    limited.arg(format!("--nofile={soft}:{hard}")).arg(cmd.get_program()).args(cmd.get_args()).env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            limited.env(k, v);
        }
    }
    let out = limited.output().expect("prlimit runs");
    assert!(out.status.success(), "--check failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--check`'s "N descriptors (FROM): room for M clients".
fn check_figures(check: &str) -> (String, String, usize) {
    let (_, tail) = check.split_once("; ").unwrap_or_else(|| panic!("no descriptors in {check:?}"));
    let (n, rest) = tail.split_once(" descriptors (").unwrap_or_else(|| panic!("{check:?}"));
    let (from, rest) = rest.split_once("): room for ").unwrap_or_else(|| panic!("{check:?}"));
    let m = rest.split_whitespace().next().and_then(|m| m.parse().ok()).unwrap_or_else(|| panic!("{check:?}"));
    (n.to_string(), from.to_string(), m)
}

pub fn the_start_line_and_check_tell_the_descriptors_it_really_has(rt: Runtime) {
    let echo = Server::echo();
    // A soft limit of 256 under a hard one of 20,000: the native build
    // raises it (as HAProxy and nginx do); a wasm runtime never does, and a
    // module cannot, so there the figures must say 256.
    let mut p = Proxy::start_prlimit(rt, &echo.remote(), &[], &[], Some((256, 20_000)));
    let start = start_line(&mut p);
    let (fds, from, max_conns) = (start["fds"].clone(), start["fds_from"].clone(), start["max_conns"].parse::<usize>().unwrap());
    let check = check_under(rt, (256, 20_000), &[]);
    println!("{rt:?} under 256:20000: fds={fds} fds_from={from} max_conns={max_conns}; --check: {}", check.trim());
    if rt == Runtime::Native {
        assert_eq!((fds.as_str(), from.as_str()), ("20000", "getrlimit"));
        assert!((9_900..=10_000).contains(&max_conns), "max_conns={max_conns}");
    } else {
        assert_eq!(from, "probe");
        let fds: usize = fds.parse().unwrap();
        assert!((200..=256).contains(&fds), "a wasm module under a soft limit of 256 counts {fds}");
        assert!((90..=127).contains(&max_conns), "max_conns={max_conns}");
        p.wait_for_log("a warning naming the low limit", |l| l.contains(" warn fd-limit ") && l.contains("ulimit -n"));
        // --check binds nothing: a wasm module counts a little more room there.
        let (n, said_from, m) = check_figures(&check);
        assert_eq!(said_from, "probe", "{check}");
        assert!(n.parse::<usize>().unwrap().abs_diff(fds) <= 4 && m.abs_diff(max_conns) <= 2, "{check}");
    }
    if rt == Runtime::Native {
        assert_eq!(check_figures(&check), ("20000".to_string(), "getrlimit".to_string(), max_conns), "{check}");
    }
    drop(p);
    // A launcher that raised the limit says so in WASITER_NOFILE (the
    // native build reads getrlimit and ignores it).
    let mut p = Proxy::start_prlimit(rt, &echo.remote(), &[("WASITER_NOFILE", "256")], &[], Some((256, 256)));
    let start = start_line(&mut p);
    let max_conns: usize = start["max_conns"].parse().unwrap();
    let from = if rt == Runtime::Native { "getrlimit" } else { "WASITER_NOFILE" };
    assert_eq!((start["fds"].as_str(), start["fds_from"].as_str()), ("256", from));
    assert!((90..=127).contains(&max_conns), "max_conns={max_conns}");
    let check = check_under(rt, (256, 256), &[("WASITER_NOFILE", "256".to_string())]);
    let (n, said_from, m) = check_figures(&check);
    assert!(n == "256" && said_from == from && m.abs_diff(max_conns) <= 2, "{check}");
    // A --max-conns beyond them: kept, and said to be more than fits.
    let check = check_under(rt, (256, 256), &[("WASITER_MAX_CONNS", "500".to_string())]);
    assert!(check.contains(", fewer than --max-conns 500"), "{check}");
    assert_eq!(exchange(p.connect(), b"served".to_vec()), b"served");
}

/// A listener's backlog as the kernel holds it: `ss -ltn`'s Send-Q.
fn backlog_of(port: u16) -> u32 {
    let out = Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output().expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().next().unwrap_or_else(|| panic!("ss shows no listener on {port}"));
    line.split_whitespace().nth(2).and_then(|q| q.parse().ok()).unwrap_or_else(|| panic!("no Send-Q in {line:?}"))
}

pub fn the_listen_backlog_is_what_backlog_asks(rt: Runtime) {
    let echo = Server::echo();
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    let asked = 700.min(somaxconn);
    let mut p = Proxy::start(rt, &echo.remote(), &[], &["--backlog", &asked.to_string()]);
    let start = start_line(&mut p);
    assert_eq!((start["backlog"].parse::<u32>().unwrap(), start["backlog_from"].as_str()), (asked, "setting"));
    let seen = backlog_of(p.addr.port());
    println!("{rt:?}: --backlog {asked}: Send-Q {seen}");
    assert_eq!(seen, asked, "the runtime did not pass --backlog {asked} to listen");
    drop(p);
    // Its default: the kernel's cap (natively read from /proc; a wasm
    // module asks for 4096, which the kernel caps at somaxconn).
    let mut p = Proxy::start(rt, &echo.remote(), &[], &[]);
    let start = start_line(&mut p);
    let seen = backlog_of(p.addr.port());
    println!("{rt:?}: default backlog {} ({}): Send-Q {seen}", start["backlog"], start["backlog_from"]);
    let expected = if rt == Runtime::Native { somaxconn } else { somaxconn.min(4096) };
    assert_eq!(seen, expected);
    assert_eq!(exchange(p.connect(), b"served".to_vec()), b"served");
}
