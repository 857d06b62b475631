//! Under load: descriptors running out, slow peers, a soak, quiet connections while others are busy.

use super::*;

pub fn running_out_of_descriptors_does_not_spin_and_recovers(rt: Runtime) {
    let echo = Server::echo();
    // 256 descriptors: the runtime's own, plus room for some pairs, then EMFILE.
    let mut p = Proxy::start_limited(rt, &echo.remote(), &[], &["--quiet"], Some(256));
    let mut clients: Vec<TcpStream> = (0..300).map(|_| p.connect()).collect();
    // It takes what its descriptors fit (it keeps a reserve: no accept
    // fails), then leaves the rest in the backlog.
    eventually("the proxy holds what its descriptors fit", || p.open_fds() >= 240);
    thread::sleep(Duration::from_millis(500));
    let (cpu0, t0) = (p.cpu_time(), Instant::now());
    thread::sleep(Duration::from_secs(2));
    let share = (p.cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    assert!(share < 0.3, "the loop spins while out of descriptors: {:.0}% of a core", share * 100.0);
    p.assert_alive();
    // Descriptors free up: a newcomer is served. The clients just gone that
    // still sit in the accept queue, closed, are accepted and ended first;
    // the newcomer waits its turn behind them (the reserve keeps a
    // descriptor for its upstream: limits.rs has the case where none is
    // closed empty).
    clients.truncate(100);
    drop(clients);
    eventually("a newcomer is served once descriptors are free again", || {
        let mut late = p.connect();
        let _ = late.set_read_timeout(Some(Duration::from_secs(5)));
        let mut back = [0u8; 10];
        late.write_all(b"still here").is_ok() && late.read_exact(&mut back).is_ok() && &back == b"still here"
    });
    p.assert_alive();
}

pub fn slow_peers_keep_memory_flat_and_others_unaffected(rt: Runtime) {
    // A fast upstream for a slow reader, and a slow upstream for a fast writer.
    let fast = Server::start(|mut s| while s.write_all(&[5u8; 65536]).is_ok() {});
    let slow = Server::start(|mut s| {
        let mut b = [0u8; 1024];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(100)); // ~10 KiB/s
        }
    });
    let echo = Server::echo();
    let reader_proxy = Proxy::start(rt, &fast.remote(), &[], &["--quiet"]);
    let writer_proxy = Proxy::start(rt, &slow.remote(), &[], &["--quiet"]);
    let others = Proxy::start(rt, &echo.remote(), &[], &["--quiet"]);
    let baseline = (reader_proxy.rss_kib(), writer_proxy.rss_kib());

    let mut reader = reader_proxy.connect();
    let mut writer = writer_proxy.connect();
    writer.set_nonblocking(true).unwrap();
    let t = Instant::now();
    let mut peak = baseline;
    let mut buf = [0u8; 1024];
    while t.elapsed() < Duration::from_secs(4) {
        reader.read_exact(&mut buf).unwrap(); // 1 KiB per 100 ms: ~10 KiB/s
        let _ = writer.write(&[6u8; 65536]); // as fast as the proxy takes it
        peak = (peak.0.max(reader_proxy.rss_kib()), peak.1.max(writer_proxy.rss_kib()));
        thread::sleep(Duration::from_millis(100));
    }
    // Bounded by the buffers (2 x 64 KiB per connection), not by the stream.
    let grew = (peak.0 - baseline.0, peak.1 - baseline.1);
    assert!(grew.0 < 4096 && grew.1 < 4096, "RSS grew by {grew:?} KiB with slow peers");

    // Meanwhile, others are served at full speed.
    let t = Instant::now();
    let data = pattern(4 << 20, 11);
    assert!(exchange(others.connect(), data.clone()) == data);
    assert!(t.elapsed() < Duration::from_secs(10), "others slowed down: {:?}", t.elapsed());
}

pub fn soak_of_short_connections_and_a_bulk_stream_returns_to_baseline(rt: Runtime) {
    // scripts/soak runs 100,000; the everyday suite a tenth of that.
    let total: usize = std::env::var("WASITER_SOAK_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let echo = Server::echo();
    let p = Proxy::start(rt, &echo.remote(), &[], &["--quiet"]);
    // Warm up, then take the baseline.
    for i in 0..200 {
        assert_eq!(exchange(p.connect(), vec![i as u8; 64]), vec![i as u8; 64]);
    }
    thread::sleep(Duration::from_millis(300));
    let (fds0, rss0) = (p.open_fds(), p.rss_kib());

    // A steady bulk stream through the proxy for the whole soak.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bulk = {
        let (addr, stop) = (p.addr, stop.clone());
        thread::spawn(move || {
            let (mut rounds, mut bytes) = (0u64, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let s = connect(addr);
                let data = pattern(2 << 20, rounds);
                assert!(exchange(s, data.clone()) == data, "bulk stream corrupted in round {rounds}");
                rounds += 1;
                bytes += data.len();
            }
            bytes
        })
    };
    let threads = 8;
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let addr = p.addr;
            thread::spawn(move || {
                for i in 0..total / threads {
                    let s = connect(addr);
                    let msg = format!("{w}:{i}").into_bytes();
                    assert_eq!(exchange(s, msg.clone()), msg, "short connection {w}:{i}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a short-connection worker failed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let streamed = bulk.join().expect("the bulk stream failed");
    assert!(streamed >= 2 << 20, "the bulk stream moved {streamed} bytes");

    // Back to baseline: every descriptor returned, memory not growing with the count.
    eventually("descriptors back to baseline", || p.open_fds() <= fds0);
    let rss = p.rss_kib();
    assert!(rss <= rss0 + 8192, "RSS {rss} KiB after the soak vs {rss0} KiB before");
}

pub fn quiet_connections_are_served_and_timed_out_while_others_are_busy(rt: Runtime) {
    // While others keep the loop busy, connections quiet for over a second
    // are watched in slices (a round of them at most 1 s) where the poller
    // lists afresh, and left to epoll natively: they must still be heard,
    // and still time out.
    let echo = Server::echo();
    let mut p = Proxy::start(rt, &echo.remote(), &[], &["--quiet", "--idle-timeout", "3s"]);
    let mut quiet: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut c = p.connect();
            c.write_all(&[i as u8]).unwrap();
            assert_eq!(read_exact_n(&mut c, 1), [i as u8]);
            c
        })
        .collect();
    thread::sleep(Duration::from_millis(1500)); // now they are quiet
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = p.addr;
    let busy = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut c = connect(addr);
            let mut rounds = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.write_all(b"busy").unwrap();
                assert_eq!(read_exact_n(&mut c, 4), b"busy");
                rounds += 1;
            }
            rounds
        })
    };
    thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for (i, c) in quiet.iter_mut().enumerate().step_by(10) {
        let t = Instant::now();
        c.write_all(b"wake").unwrap();
        assert_eq!(read_exact_n(c, 4), b"wake", "quiet connection {i} was heard");
        slowest = slowest.max(t.elapsed());
    }
    // A quiet connection waits at most for its slice (`ROTATION_MAX`, 1 s),
    // plus a busy 2-core machine's scheduling.
    println!("slowest answer to a quiet connection while busy: {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "a quiet connection waited {slowest:?} while others were busy");
    // The rest stay silent: the idle timeout closes them, busy loop or not.
    let mut silent = quiet.pop().unwrap();
    assert!(is_closed(&mut silent), "idle timeout while the loop is busy");
    // One that was busy a moment ago and then falls silent: natively most
    // passes list only the connections touched since the last, so its
    // deadline must come from what the loop noted when it last listed it.
    let mut late = p.connect();
    late.write_all(b"late").unwrap();
    assert_eq!(read_exact_n(&mut late, 4), b"late");
    let t = Instant::now();
    late.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(is_closed(&mut late), "idle timeout of a lately busy connection");
    let waited = t.elapsed();
    println!("a lately busy connection closed after {waited:?} of silence (idle timeout 3 s)");
    assert!(waited > Duration::from_millis(2900) && waited < Duration::from_secs(5), "closed after {waited:?} of silence, with a 3 s idle timeout");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = busy.join().unwrap();
    assert!(rounds > 0);
    p.assert_alive();
}
