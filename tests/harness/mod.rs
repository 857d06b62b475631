//! Shared helpers for the black-box suite: start wasiter under a runtime,
//! start real peers on loopback, and wait for things with a deadline.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Long enough for a slow, loaded 2-core machine; a hang fails, it never waits forever.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Runtime {
    Native,
    Wasmtime,
    WasmEdge,
    WasmEdgeAot,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn artifact(path: &str) -> PathBuf {
    let p = root().join(path);
    assert!(p.exists(), "{} is missing: run scripts/build first", p.display());
    p
}

impl Runtime {
    /// The command that runs wasiter with these environment variables and flags.
    pub fn command(self, env: &[(&str, String)], args: &[&str]) -> Command {
        self.command_in(None, env, args)
    }

    /// The same, with `dir` readable inside the sandbox (`--dir` for the wasm runtimes).
    pub fn command_in(self, dir: Option<&Path>, env: &[(&str, String)], args: &[&str]) -> Command {
        let mut cmd = match self {
            Runtime::Native => Command::new(env!("CARGO_BIN_EXE_wasiter")),
            Runtime::Wasmtime => {
                let mut c = Command::new("wasmtime");
                c.args(["run", "-S", "inherit-network", "-S", "allow-ip-name-lookup"]);
                c
            }
            Runtime::WasmEdge => Command::new("wasmedge"),
            Runtime::WasmEdgeAot => {
                let mut c = Command::new("wasmedge");
                c.arg("--run-mode=aot");
                c
            }
        };
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        match self {
            Runtime::Native => {
                for (k, v) in env {
                    cmd.env(k, v);
                }
            }
            _ => {
                for (k, v) in env {
                    cmd.arg("--env").arg(format!("{k}={v}"));
                }
                if let Some(dir) = dir {
                    cmd.arg("--dir").arg(dir);
                }
                cmd.arg(match self {
                    Runtime::Wasmtime => artifact("target/wasm32-wasip2/release/wasiter.wasm"),
                    Runtime::WasmEdge => artifact("target/wasm32-wasip1/release/wasiter.wasm"),
                    _ => artifact("target/wasm32-wasip1/release/wasiter.aot.wasm"),
                });
            }
        }
        cmd.args(args);
        cmd
    }

    /// Run to completion (for configuration errors, --help and such).
    pub fn run(self, env: &[(&str, String)], args: &[&str]) -> (ExitStatus, String, String) {
        let out = self.command(env, args).stdin(Stdio::null()).output().expect("runtime starts");
        (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A running wasiter, killed on drop. Its stderr is collected line by line.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The metrics URL from the start line, when --metrics is on.
    pub metrics: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// The reader has seen the end of stderr: every line is in `log`.
    log_done: Arc<AtomicBool>,
    /// stdout, held open and never read (`start_unread`).
    unread: Option<ChildStdout>,
}

impl Proxy {
    /// Start with LOCAL=127.0.0.1:0 and the given REMOTE, plus more env and flags.
    pub fn start(rt: Runtime, remote: &str, env: &[(&str, &str)], args: &[&str]) -> Proxy {
        Self::start_limited(rt, remote, env, args, None)
    }

    /// The same, with the process's open-file limit set (soft and hard) to `nofile`.
    pub fn start_limited(rt: Runtime, remote: &str, env: &[(&str, &str)], args: &[&str], nofile: Option<u32>) -> Proxy {
        Self::start_prlimit(rt, remote, env, args, nofile.map(|n| (n, n)))
    }

    /// The same, with the open-file limit's soft and hard values apart.
    pub fn start_prlimit(rt: Runtime, remote: &str, env: &[(&str, &str)], args: &[&str], nofile: Option<(u32, u32)>) -> Proxy {
        // LOCAL is 127.0.0.1:0 unless the test gives its own.
        let local = env.iter().find(|(k, _)| *k == "LOCAL").map_or("127.0.0.1:0", |(_, v)| *v);
        let mut all = vec![("LOCAL", local.to_string()), ("REMOTE", remote.to_string())];
        all.extend(env.iter().filter(|(k, _)| *k != "LOCAL").map(|(k, v)| (*k, v.to_string())));
        let mut cmd = rt.command(&all, args);
        if let Some((soft, hard)) = nofile {
            // prlimit sets the limit and execs the command: same pid, measurable.
            let mut limited = Command::new("prlimit");
            limited.arg(format!("--nofile={soft}:{hard}")).arg(cmd.get_program()).args(cmd.get_args());
            limited.env_clear();
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    limited.env(k, v);
                }
            }
            cmd = limited;
        }
        let mut proxy = Proxy::spawn(cmd);
        let start = proxy.wait_for_log("start line", |l| l.contains(" start listen=") || l.contains("\"event\":\"start\""));
        let start = record(&start);
        proxy.addr = listen_addr(&start["listen"]);
        proxy.metrics = Some(start["metrics"].clone()).filter(|m| m != "off");
        proxy
    }

    /// Run `cmd`, collecting its stderr line by line; the address is set by the caller.
    fn spawn(mut cmd: Command) -> Proxy {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runtime starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sink, log_done) = (log.clone(), Arc::new(AtomicBool::new(false)));
        let done = log_done.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            done.store(true, Ordering::SeqCst);
        });
        Proxy { child, addr: "0.0.0.0:0".parse().unwrap(), metrics: None, log, log_done, unread: None }
    }

    /// Start as `start` does, but leave stdout and stderr pipes that nobody
    /// reads (a stuck log shipper's): stderr is read up to the end of the
    /// start line, a byte at a time so that nothing after it is taken, and
    /// handed back unread from there on.
    pub fn start_unread(rt: Runtime, remote: &str, args: &[&str]) -> (Proxy, ChildStderr) {
        let env = [("LOCAL", "127.0.0.1:0".to_string()), ("REMOTE", remote.to_string())];
        let mut child = rt
            .command(&env, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runtime starts");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stderr.read(&mut byte).expect("read stderr") == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        assert!(line.contains(" start listen=") || line.contains("\"event\":\"start\""), "a start line first, got: {line}");
        let start = record(&line);
        let proxy = Proxy {
            addr: listen_addr(&start["listen"]),
            metrics: Some(start["metrics"].clone()).filter(|m| m != "off"),
            log: Arc::new(Mutex::new(vec![line])),
            log_done: Arc::new(AtomicBool::new(true)),
            unread: child.stdout.take(),
            child,
        };
        (proxy, stderr)
    }

    /// Start with no LOCAL/REMOTE: the routes come from `args` (--route) or
    /// `env`. Waits for one start line per route; `addrs` are their listen
    /// addresses, in the order given.
    pub fn start_routes(rt: Runtime, routes: usize, env: &[(&str, &str)], args: &[&str]) -> (Proxy, Vec<SocketAddr>) {
        Self::start_routes_in(rt, None, routes, env, args)
    }

    /// The same, with `dir` readable inside the sandbox (a routes file).
    pub fn start_routes_in(rt: Runtime, dir: Option<&Path>, routes: usize, env: &[(&str, &str)], args: &[&str]) -> (Proxy, Vec<SocketAddr>) {
        let all: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut proxy = Proxy::spawn(rt.command_in(dir, &all, args));
        let is_start = |l: &str| l.contains(" start listen=") || l.contains("\"event\":\"start\"");
        eventually_log(&mut proxy, routes, is_start);
        let addrs: Vec<SocketAddr> =
            proxy.log().iter().filter(|l| is_start(l)).map(|l| listen_addr(&record(l)["listen"])).collect();
        assert_eq!(addrs.len(), routes, "one start line per route; log:\n{}", proxy.log().join("\n"));
        proxy.addr = addrs[0];
        let first = proxy.log().into_iter().find(|l| is_start(l)).unwrap();
        proxy.metrics = Some(record(&first)["metrics"].clone()).filter(|m| m != "off");
        (proxy, addrs)
    }

    /// Connect to `addr` from the loopback source address `from` (e.g.
    /// 127.0.0.2: a different client as far as the proxy can tell).
    pub fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
        let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
        sock.bind(&format!("{from}:0").parse::<SocketAddr>().unwrap().into()).expect("bind the client's source address");
        sock.connect(&addr.into()).expect("connect to the proxy");
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.set_write_timeout(Some(PATIENCE)).unwrap();
        s
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Send the process a signal (SIGTERM, SIGINT).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill only sends a signal to our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0, "kill");
    }

    /// Wait for the process to exit, at most PATIENCE.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running; log:\n{}", self.log().join("\n"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait until a log line matches; panics with the whole log after PATIENCE.
    pub fn wait_for_log(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.log().into_iter().find(|l| pred(l)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // It exited: its last lines may still be on their way to the
                // reader. Look once more when the reader has seen the end.
                let read_all = Instant::now() + Duration::from_secs(5);
                while !self.log_done.load(Ordering::SeqCst) && Instant::now() < read_all {
                    thread::sleep(Duration::from_millis(10));
                }
                if let Some(l) = self.log().into_iter().find(|l| pred(l)) {
                    return l;
                }
                panic!("wasiter exited ({status}) before logging {what}; log:\n{}", self.log().join("\n"));
            }
            assert!(Instant::now() < deadline, "no {what} in the log within {PATIENCE:?}; log:\n{}", self.log().join("\n"));
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's id (for prlimit --pid and the like).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far, from /proc (utime + stime).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc/PID/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
        let ticks = f[11] + f[12]; // utime, stime (fields 14 and 15)
        Duration::from_millis(ticks * 1000 / 100) // CLK_TCK is 100 on Linux
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("/proc/PID/fd").count()
    }

    /// The proxy is still running (nothing a peer did made it exit).
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("wasiter exited with {status}; log:\n{}", self.log().join("\n"));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line, text or JSON, as field -> value (numbers as their digits).
/// Text lines are `ts level event key=value ...`, values quoted when needed.
pub fn record(line: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for (k, v) in v.as_object().expect("a JSON object") {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
        return out;
    }
    let mut rest = line;
    for key in ["ts", "level", "event"] {
        let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        out.insert(key.to_string(), word.to_string());
        rest = tail;
    }
    while !rest.is_empty() {
        let (key, tail) = rest.split_once('=').unwrap_or_else(|| panic!("key=value expected in: {line}"));
        let (value, tail) = if let Some(quoted) = tail.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => {
                        let (_, c) = chars.next().expect("escape");
                        value.push('\\');
                        value.push(c);
                    }
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated quote in: {line}"),
                }
            };
            (value, quoted[end + 1..].trim_start())
        } else {
            let (v, t) = tail.split_once(' ').unwrap_or((tail, ""));
            (v.to_string(), t)
        };
        out.insert(key.to_string(), value);
        rest = tail;
    }
    out
}

/// A thread-per-connection server on 127.0.0.1:0 running `serve` for each
/// client; counts the connections it accepted.
pub struct Server {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap(), serve)
    }

    pub fn on(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let serve = Arc::new(serve);
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                thread::spawn(move || serve(stream));
            }
        });
        Server { addr, accepted }
    }

    pub fn remote(&self) -> String {
        self.addr.to_string()
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Echo every byte back; on EOF, pass the FIN back too.
    pub fn echo() -> Server {
        Server::start(|mut s| {
            let mut buf = [0u8; 16384];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        })
    }
}

/// Deterministic bytes that make truncation, reordering and duplication visible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Send `data` while reading the reply concurrently (as a real client does);
/// half-close after sending; return everything read until EOF.
pub fn exchange(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&data).expect("send through the proxy");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut got = Vec::new();
    let mut reader = stream;
    reader.read_to_end(&mut got).expect("read until the proxy passes EOF on");
    sender.join().unwrap();
    got
}

/// A client connection to `addr` whose reads and writes give up after
/// PATIENCE (a hang fails the test; it never waits forever).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Read exactly `n` bytes or fail with what was read.
pub fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Make close() send RST instead of FIN (SO_LINGER with a zero timeout).
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
}

/// A start line's `listen=`: `IP:PORT`, `udp:IP:PORT`, or `unix:/path`
/// (no address: 0.0.0.0:0 stands for it).
fn listen_addr(listen: &str) -> SocketAddr {
    if listen.starts_with("unix:") {
        return "0.0.0.0:0".parse().unwrap();
    }
    listen.trim_start_matches("udp:").parse().expect("listen address parses")
}

/// A port nothing listens on, TCP or UDP (bound, then released): a peer
/// such as tests/dns_server.py or iperf3 binds both (a UDP relay's flow
/// sockets hold UDP ports that a TCP-only check would not see). Picked
/// below the kernel's ephemeral range (32768 up): a port from that range
/// could be handed to another test's connection or listener before this
/// one binds it ("Address in use"), while these are only ever taken on
/// purpose, and each call of this process picks the next one.
pub fn free_port() -> u16 {
    const FIRST: usize = 20_000;
    const COUNT: usize = 12_000;
    static NEXT: AtomicUsize = AtomicUsize::new(usize::MAX);
    let seed = std::process::id() as usize * 7919 + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as usize);
    let _ = NEXT.compare_exchange(usize::MAX, seed % COUNT, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Wait until a TCP port accepts connections.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("wasiter-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A background program (nginx, redis-server), stopped on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Daemon {
    /// SIGTERM first, as users stop it: nginx's master then ends its worker
    /// before it exits. A SIGKILL alone ended only the master, and every
    /// test left an orphaned nginx worker behind, still listening. SIGKILL
    /// only if it has not exited after a while.
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_daemon(mut cmd: Command, port: u16, dir: TempDir, what: &str) -> Daemon {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} must be installed (.ci/run installs it): {e}"));
    let d = Daemon { child, port, _dir: dir };
    wait_port(port);
    d
}

/// nginx serving `files` (name, bytes) from a fresh root on 127.0.0.1.
pub fn nginx(files: &[(&str, &[u8])]) -> Daemon {
    nginx_server(files, "")
}

/// nginx over TLS with this certificate (`Certs::leaf`), answering every
/// request with `body`; `http2` offers h2 by ALPN (else only http/1.1).
pub fn nginx_tls(certs: &Certs, name: &str, http2: bool, body: &str) -> Daemon {
    let (cert, key) = certs.leaf(name);
    nginx_tls_with(&cert, &key, http2, body)
}

/// nginx over TLS with this certificate and key files.
pub fn nginx_tls_with(cert: &Path, key: &Path, http2: bool, body: &str) -> Daemon {
    let extra = format!(
        "ssl_certificate {}; ssl_certificate_key {}; location / {{ return 200 \"{body}\\n\"; }}",
        cert.display(),
        key.display()
    );
    let listen = if http2 { "ssl http2" } else { "ssl" };
    nginx_server(&[], &format!("LISTEN {listen}; {extra}"))
}

/// nginx speaking HTTP/2 in clear text (h2c, prior knowledge) and 1.1,
/// answering every request with `body`: a plain backend behind a route that
/// terminates TLS and offers h2.
pub fn nginx_h2c(body: &str) -> Daemon {
    nginx_server(&[], &format!("LISTEN http2; location / {{ return 200 \"{body}\\n\"; }}"))
}

/// nginx on a port of the test's choosing (80 and 443 in a network
/// namespace of its own, where the lock-down sends the web): over TLS with
/// `cert` when given, answering every request with `body`.
pub fn nginx_on(port: u16, cert: Option<(&Path, &Path)>, body: &str) -> Daemon {
    let answer = format!("location / {{ return 200 \"{body}\\n\"; }}");
    match cert {
        Some((c, k)) => nginx_server_on(port, &[], &format!("LISTEN ssl; ssl_certificate {}; ssl_certificate_key {}; {answer}", c.display(), k.display())),
        None => nginx_server_on(port, &[], &answer),
    }
}

/// nginx with one server on 127.0.0.1; `server` adds to its block (a
/// leading `LISTEN x;` adds `x` to the listen line).
fn nginx_server(files: &[(&str, &[u8])], server: &str) -> Daemon {
    nginx_server_on(free_port(), files, server)
}

fn nginx_server_on(port: u16, files: &[(&str, &[u8])], server: &str) -> Daemon {
    let dir = TempDir::new("nginx");
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    for (name, data) in files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let d = dir.path().display();
    let (listen_extra, server) = match server.strip_prefix("LISTEN ") {
        Some(rest) => rest.split_once(';').unwrap(),
        None => ("", server),
    };
    let conf = format!(
        "worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{ worker_connections 256; }}
         http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
                 fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
                 server {{ listen 127.0.0.1:{port} {listen_extra}; root {root}; {server} }} }}",
        root = root.display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(nginx_bin());
    cmd.arg("-c").arg(dir.path().join("nginx.conf")).args(["-g", "daemon off;"]);
    cmd.arg("-p").arg(dir.path());
    spawn_daemon(cmd, port, dir, "nginx")
}

/// A test certificate authority and leaf certificates it signed, made with
/// the `openssl` command in a fresh directory. Clients trust `ca` only, so
/// a client that verifies (curl without -k) proves which server it reached.
pub struct Certs {
    pub dir: TempDir,
}

impl Certs {
    /// A CA, and a leaf for each name (its CN and only subjectAltName; a
    /// name may be a wildcard such as `*.wild.test`).
    pub fn new(names: &[&str]) -> Certs {
        let dir = TempDir::new("certs");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl must be installed");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"];
        openssl(&[&["req", "-x509"], &ec[..], &["-subj", "/CN=wasiter test CA", "-keyout", "ca.key", "-out", "ca.pem"]].concat());
        // Leaves as a CA issues them: signed with `x509 -req`, which (unlike
        // `req -x509` in OpenSSL 3.0) does not mark them CA:TRUE, which
        // verifiers such as rustls' webpki rightly refuse for a server.
        for name in names {
            let file = Self::file(name);
            let (key, csr, pem, subj, ext) = (format!("{file}.key"), format!("{file}.csr"), format!("{file}.pem"), format!("/CN={name}"), format!("{file}.ext"));
            std::fs::write(dir.path().join(&ext), format!("subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n")).unwrap();
            openssl(&[&["req", "-new"], &ec[..5], &["-subj", &subj, "-keyout", &key, "-out", &csr]].concat());
            openssl(&["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", &ext, "-out", &pem]);
        }
        Certs { dir }
    }

    fn file(name: &str) -> String {
        name.replace('*', "star")
    }

    /// A leaf for `name` signed by the CA that expired in 2020 (openssl ca,
    /// which alone takes explicit dates in OpenSSL 3.0): (certificate, key).
    pub fn expired(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        let conf = "[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n";
        std::fs::write(d.join("ca.cnf"), conf).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(d).output().expect("openssl must be installed");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let (subj, san) = (format!("/CN={name}"), format!("subjectAltName=DNS:{name}"));
        run(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", &subj, "-addext", &san, "-keyout", "expired.key", "-out", "expired.csr"]);
        run(&["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr", "-out", "expired.pem", "-notext", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]);
        (d.join("expired.pem"), d.join("expired.key"))
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// (certificate, key) of `name`.
    pub fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let f = Self::file(name);
        (self.dir.path().join(format!("{f}.pem")), self.dir.path().join(format!("{f}.key")))
    }
}

/// Run curl with `args`: (exit code, stdout, stderr). It gives up after 10 s.
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl must be installed");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A ClientHello as a client sends one, and the same in TLS records: the
/// crate's own builder, so that a test can split one any way it likes.
pub use wasiter::front::client_hello::{in_records as tls_records, sample as client_hello};

fn nginx_bin() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// redis-server on 127.0.0.1, no persistence.
pub fn redis() -> Daemon {
    let dir = TempDir::new("redis");
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
    cmd.arg("--dir").arg(dir.path());
    spawn_daemon(cmd, port, dir, "redis-server")
}

/// Wait until `n` log lines match `pred`.
fn eventually_log(proxy: &mut Proxy, n: usize, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while proxy.log().iter().filter(|l| pred(l)).count() < n {
        proxy.assert_alive();
        assert!(Instant::now() < deadline, "fewer than {n} matching lines; log:\n{}", proxy.log().join("\n"));
        thread::sleep(Duration::from_millis(20));
    }
}

/// HAProxy as a PROXY-protocol-aware HTTP server: it takes a PROXY header
/// (v1 or v2, `accept-proxy`) on every connection and answers every request
/// with the client address the header gave it: `src=IP:PORT`.
pub fn haproxy_proxy_aware() -> Daemon {
    haproxy(|port| {
        format!(
            "defaults\n  mode http\n  timeout connect 5s\n  timeout client 20s\n  timeout server 20s\n\
             frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n\
             \x20 http-request return status 200 content-type text/plain lf-string \"src=%[src]:%[src_port]\\n\"\n"
        )
    })
}

/// HAProxy in TCP mode in front of `backend`, sending it a PROXY header
/// (`send-proxy` or `send-proxy-v2`): a load balancer before wasiter.
pub fn haproxy_sending(backend: SocketAddr, send: &str) -> Daemon {
    haproxy(|port| {
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 20s\n  timeout server 20s\n\
             listen lb\n  bind 127.0.0.1:{port}\n  server s1 {backend} {send}\n"
        )
    })
}

fn haproxy(conf: impl Fn(u16) -> String) -> Daemon {
    let dir = TempDir::new("haproxy");
    let port = free_port();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf(port)).unwrap();
    let bin = if Path::new("/usr/sbin/haproxy").exists() { "/usr/sbin/haproxy" } else { "haproxy" };
    let mut cmd = Command::new(bin);
    cmd.arg("-db").arg("-f").arg(&path);
    spawn_daemon(cmd, port, dir, "haproxy")
}

/// Poll `cond` until true or PATIENCE runs out.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// True once the peer has closed: a read returns EOF or an error such as a
/// reset; false if a byte arrives. A read that times out (the stream's read
/// timeout, PATIENCE unless the test set another) is no close: it fails the
/// test, so "it was closed" can never pass by waiting.
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if io_err_is_timeout(&e) => panic!("still open after the read timeout ({:?})", s.read_timeout().ok().flatten()),
        Err(_) => true,
    }
}

pub fn io_err_is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// tests/dns_server.py: a real DNS server (dnslib) on 127.0.0.1, UDP and
/// TCP, answering `records` (NAME=IP,...), slow for `slow` names,
/// truncating `truncate` ones over UDP; killed on drop. `queries()` is what
/// it was asked ("query NAME TYPE udp|tcp").
pub struct DnsServer {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    pub fn start(records: &[(&str, &str)], slow: &[(&str, f64)], truncate: &[&str]) -> DnsServer {
        // A free port can be taken between the check and the server's bind
        // (by another test's UDP socket): then the server exits at once,
        // and another port is tried.
        let mut tries = 0;
        let (mut child, port) = loop {
            let port = free_port();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dns_server.py");
            let mut cmd = Command::new("python3");
            cmd.arg(script).arg(port.to_string());
            cmd.args(records.iter().map(|(n, ip)| format!("{n}={ip}")));
            for (n, secs) in slow {
                cmd.arg("--slow").arg(format!("{n}={secs}"));
            }
            for n in truncate {
                cmd.arg("--truncate").arg(n);
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 with dnslib (scripts/setup --peers installs it)");
            let mut ready = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
            if ready.trim() == "ready" {
                break (child, port);
            }
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.wait();
            tries += 1;
            assert!(tries < 5, "tests/dns_server.py did not start (is dnslib installed?): {err}");
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        DnsServer { child, port, log }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn queries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The queries, once every line in `lines` is among them. The server
    /// logs a query before it answers, but a thread carries the line from
    /// its stderr to us: on a loaded machine the proxy can act on the
    /// answer before that line is here. A line that never comes fails
    /// after PATIENCE, with what came.
    pub fn queries_with(&self, lines: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let q = self.queries();
            if lines.iter().all(|l| q.iter().any(|got| got == l)) {
                return q;
            }
            assert!(Instant::now() < deadline, "DNS queries {lines:?} not all seen within {PATIENCE:?}: {q:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
