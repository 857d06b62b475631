//! Timeouts and limits: idle and connect timeouts, the connection limit, pairs that never finish.

use super::*;

pub fn idle_timeout_closes_a_silent_pair(rt: Runtime) {
    let echo = Server::echo();
    let mut proxy = Proxy::start(rt, &echo.remote(), &[("WASITER_IDLE_TIMEOUT", "1s")], &[]);
    let mut c = proxy.connect();
    c.write_all(b"x").unwrap();
    assert_eq!(read_exact_n(&mut c, 1), b"x");
    let t = Instant::now();
    assert!(is_closed(&mut c), "silent pair must be closed");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(8), "closed after {waited:?}");
    proxy.wait_for_log("idle-timeout close", |l| l.contains("reason=idle-timeout"));
}

pub fn connect_timeout_closes_the_client(rt: Runtime) {
    // A listener whose accept queue is full drops new SYNs: connects hang.
    let sock = socket2_listener_backlog_zero();
    let addr = sock.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    thread::sleep(Duration::from_millis(200));
    let mut proxy = Proxy::start(rt, &addr.to_string(), &[("WASITER_CONNECT_TIMEOUT", "500ms")], &[]);
    let mut c = proxy.connect();
    let t = Instant::now();
    assert!(is_closed(&mut c));
    assert!(t.elapsed() < Duration::from_secs(8), "closed after {:?}", t.elapsed());
    proxy.wait_for_log("connect-timeout close", |l| l.contains("reason=connect-timeout"));
}

pub fn socket2_listener_backlog_zero() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    s.listen(0).unwrap();
    s.into()
}

pub fn connection_limit_holds_back_extra_clients(rt: Runtime) {
    let echo = Server::echo();
    let proxy = Proxy::start(rt, &echo.remote(), &[("WASITER_MAX_CONNS", "2")], &["--quiet"]);
    let mut a = proxy.connect();
    let mut b = proxy.connect();
    for s in [&mut a, &mut b] {
        s.write_all(b"1").unwrap();
        assert_eq!(read_exact_n(s, 1), b"1");
    }
    // The third waits in the backlog: not served while two are open.
    let mut c = proxy.connect();
    c.write_all(b"3").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut one = [0u8; 1];
    match c.read(&mut one) {
        Err(e) if io_err_is_timeout(&e) => {}
        other => panic!("third client was served over the limit: {other:?}"),
    }
    assert_eq!(echo.accepted(), 2);
    drop(a); // a slot frees: the third is accepted and served
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_exact_n(&mut c, 1), b"3");
}

pub fn upstream_that_never_answers_is_bounded_by_the_idle_timeout(rt: Runtime) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::start(move |mut s| {
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got); // never answers; ends when the proxy gives up
        let _ = tx.lock().unwrap().send((got.len(), r.is_ok()));
    });
    let mut p = Proxy::start(rt, &server.remote(), &[("WASITER_IDLE_TIMEOUT", "1s")], &[]);
    let mut c = p.connect();
    c.write_all(b"anyone there?").unwrap();
    let t = Instant::now();
    assert!(is_closed(&mut c), "client closed when the idle timeout fires");
    assert!(t.elapsed() >= Duration::from_millis(800), "not before the timeout: {:?}", t.elapsed());
    let (len, _) = rx.recv_timeout(PATIENCE).expect("upstream connection ended too");
    assert_eq!(len, 13);
    p.wait_for_log("idle-timeout close", |l| l.contains("reason=idle-timeout"));
}

/// (state, local port, peer port) of every TCP socket touching these ports, from `ss`.
pub fn tcp_states(ports: &[u16]) -> Vec<(String, u16, u16)> {
    let out = Command::new("ss").args(["-tanH"]).output().expect("ss (iproute2) must be installed");
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 5).then(|| (cols[0].to_string(), port(cols[3]), port(cols[4])))
        })
        .filter(|(_, local, peer)| ports.contains(local) || ports.contains(peer))
        .collect()
}

pub fn half_closed_pair_that_never_finishes_leaves_no_socket_behind(rt: Runtime) {
    // The upstream reads the request to its end and then neither answers nor closes.
    let hold = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = hold.clone();
    let server = Server::start(move |mut s| {
        let _ = s.read_to_end(&mut Vec::new());
        keep.lock().unwrap().push(s); // held open: the other side "never closes"
    });
    let mut p = Proxy::start(rt, &server.remote(), &[("WASITER_IDLE_TIMEOUT", "1s")], &[]);
    let mut c = p.connect();
    c.write_all(b"request").unwrap();
    c.shutdown(Shutdown::Write).unwrap(); // half-closed: waits for an answer that never comes
    assert!(is_closed(&mut c), "the idle timeout ends the pair");
    p.wait_for_log("idle-timeout close", |l| l.contains("reason=idle-timeout"));
    let (proxy_port, upstream_port) = (p.addr.port(), server.addr.port());
    // WASI 0.2 has no SO_LINGER, so under wasmtime an abort is a graceful close:
    // the silent peer keeps its CLOSE-WAIT and the kernel an orphaned FIN-WAIT-2
    // for a while. What must hold everywhere: the proxy closed its own sockets.
    let can_reset = rt != Runtime::Wasmtime;
    let stuck = || -> Vec<(String, u16, u16)> {
        tcp_states(&[proxy_port, upstream_port])
            .into_iter()
            .filter(|(state, local, _)| match state.as_str() {
                "CLOSE-WAIT" => can_reset || *local == proxy_port,
                "FIN-WAIT-2" => can_reset,
                _ => false,
            })
            .collect()
    };
    let deadline = Instant::now() + PATIENCE;
    while !stuck().is_empty() {
        assert!(Instant::now() < deadline, "left behind: {:?}\nlog:\n{}", stuck(), p.log().join("\n"));
        thread::sleep(Duration::from_millis(50));
    }
    drop(hold);
}
