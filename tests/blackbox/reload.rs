//! Reload: the routes file edited while traffic runs. No connection is
//! dropped, no request fails, a removed route refuses new clients while its
//! open connection finishes, a broken file is logged and ignored.

use super::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Write the routes file as an editor would: whole, then renamed in place
/// (a reader never sees half a file).
fn write_routes(path: &std::path::Path, routes: &[String]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, routes.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// GET /small on a new connection: the body's last line.
fn small(addr: SocketAddr) -> String {
    let mut c = connect(addr);
    c.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    all.lines().last().unwrap_or_default().to_string()
}

/// Wait until the log has `n` lines of `event` (reload or reload-failed).
fn wait_events(p: &mut Proxy, event: &str, n: usize) {
    let pat = format!(" {event} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.log().iter().filter(|l| l.contains(&pat)).count() < n {
        p.assert_alive();
        assert!(Instant::now() < deadline, "no {n}th {event}; log:\n{}", p.log().join("\n"));
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn routes_reload_while_traffic_runs_without_dropping_anything(rt: Runtime) {
    let big = pattern(64 << 20, 14);
    let a = nginx(&[("big", &big), ("small", b"from a\n")]);
    let b = nginx(&[("small", b"from b\n")]);
    let echo = Server::echo();
    let (ua, ub) = (format!("127.0.0.1:{}", a.port), format!("127.0.0.1:{}", b.port));
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let main = format!("127.0.0.1:{p1}={ua}");
    let doomed = format!("127.0.0.1:{p2}={}", echo.remote());
    let extra = format!("127.0.0.1:{p3}={ub}");
    let dir = TempDir::new("reload");
    let file = dir.path().join("routes");
    write_routes(&file, &[main.clone(), doomed.clone()]);
    let args = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "100ms", "--quiet", "--metrics", "127.0.0.1:0"];
    let (mut p, addrs) = Proxy::start_routes_in(rt, Some(dir.path()), 2, &[], &args);
    let at = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    assert_eq!(addrs, vec![at(p1), at(p2)]);

    // Traffic: one 64 MiB download, 50 keep-alive clients, one held connection on the doomed route.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let download = thread::spawn(move || {
        let mut c = connect(at(p1));
        c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        let body = all.windows(4).position(|w| w == b"\r\n\r\n").map(|i| all.split_off(i + 4)).unwrap_or_default();
        body
    });
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            thread::spawn(move || {
                // A keep-alive client that reconnects only when the server
                // says it closes (nginx does after 1000 requests): anything
                // else that ends an exchange early is a failed request.
                let mut c = connect(at(p1));
                let mut reader = BufReader::new(c.try_clone().unwrap());
                while !stop.load(Ordering::Relaxed) {
                    let mut closing = false;
                    let ok = c.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n").is_ok() && {
                        let mut len = 0;
                        let mut line = String::new();
                        let mut good = reader.read_line(&mut line).is_ok() && line.starts_with("HTTP/1.1 200");
                        while good {
                            line.clear();
                            good = reader.read_line(&mut line).is_ok() && !line.is_empty();
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            closing |= lower.starts_with("connection: close");
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        good && len == 7 && reader.read_exact(&mut body).is_ok()
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    if closing {
                        c = connect(at(p1));
                        reader = BufReader::new(c.try_clone().unwrap());
                    }
                }
            })
        })
        .collect();
    let mut held = connect(at(p2));
    held.write_all(b"held").unwrap();
    assert_eq!(read_exact_n(&mut held, 4), b"held");

    let pool_ab = format!("127.0.0.1:{p1}={ua},{ub};policy=round-robin");
    let (mut good, mut bad) = (0, 0);
    let mut apply = |p: &mut Proxy, routes: &[String], broken: bool| {
        write_routes(&file, routes);
        if broken {
            bad += 1;
            wait_events(p, "reload-failed", bad);
        } else {
            good += 1;
            wait_events(p, "reload", good);
        }
    };
    // 1. add a route: it listens.
    apply(&mut p, &[main.clone(), doomed.clone(), extra.clone()], false);
    assert_eq!(small(at(p3)), "from b");
    // 2. change the main route's pool: new connections go round-robin over a and b.
    apply(&mut p, &[pool_ab.clone(), doomed.clone(), extra.clone()], false);
    let answers: Vec<String> = (0..4).map(|_| small(at(p1))).collect();
    assert!(answers.iter().any(|a| a == "from a") && answers.iter().any(|a| a == "from b"), "{answers:?}");
    // 3. remove the doomed route: no new client, while the held one goes on.
    apply(&mut p, &[pool_ab.clone(), extra.clone()], false);
    assert!(TcpStream::connect(at(p2)).is_err(), "the removed route refuses new clients");
    held.write_all(b"still").unwrap();
    assert_eq!(read_exact_n(&mut held, 5), b"still", "its open connection finishes on its own");
    // 4. a broken file: logged, ignored.
    apply(&mut p, &[pool_ab.clone(), extra.clone(), "127.0.0.1:1=nowhere".into()], true);
    assert_eq!(small(at(p3)), "from b", "the routes that ran still run");
    let failure = p.log().into_iter().find(|l| l.contains(" reload-failed ")).unwrap();
    assert!(failure.contains("line 3") && failure.contains("bad upstream"), "{failure}");
    // 5. fixed again, and more back and forth (ten reloads in all).
    apply(&mut p, &[pool_ab.clone(), extra.clone(), doomed.clone()], false);
    apply(&mut p, &[main.clone(), extra.clone(), doomed.clone()], false);
    apply(&mut p, &[main.clone(), doomed.clone()], false);
    apply(&mut p, &[main.clone(), doomed.clone(), extra.clone()], false);
    apply(&mut p, &[pool_ab.clone(), doomed.clone(), extra.clone()], false);
    apply(&mut p, &[main.clone(), doomed.clone()], false);
    assert!(TcpStream::connect(at(p3)).is_err(), "removed again");
    ping(at(p2), b"back again");

    let body = download.join().unwrap();
    assert_eq!(body.len(), big.len(), "the download arrived whole");
    assert!(body == big, "and intact");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no keep-alive request failed ({} served)", served.load(Ordering::Relaxed));
    assert!(served.load(Ordering::Relaxed) >= 50);
    drop(held);
    let m = scrape(p.metrics.as_ref().unwrap());
    assert_eq!(sample(&m, "wasiter_reloads_total", Some(("result", "ok"))), 9.0);
    assert_eq!(sample(&m, "wasiter_reloads_total", Some(("result", "failed"))), 1.0);
    p.assert_alive();

    // Natively, SIGHUP reads the file at once (the wasm runtimes have no
    // signals for a module: there the schedule above is the way).
    if rt == Runtime::Native {
        drop(p); // its ports, for the next one
        let args = ["--routes-file", file.to_str().unwrap(), "--reload-interval", "1h"];
        let (mut q, _) = Proxy::start_routes_in(rt, Some(dir.path()), 2, &[], &args);
        write_routes(&file, &[main.clone(), doomed.clone(), extra.clone()]);
        thread::sleep(Duration::from_millis(300));
        assert!(!q.log().iter().any(|l| l.contains(" reload ")), "not before the signal");
        q.signal(libc::SIGHUP);
        wait_events(&mut q, "reload", 1);
        assert_eq!(small(at(p3)), "from b");
    }
}
