//! The `wasiter` command: read the settings, resolve, bind, run the loop.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use wasiter::cli::{self, Command};
use wasiter::limits::{self, Budget};
use wasiter::log::{self, Level, Record};
use wasiter::pool::FailPolicy;
use wasiter::route::{self, RouteSpec};
use wasiter::secrets::Secrets;
use wasiter::served::Serves;
use wasiter::{ask, dns, nagle, proxy, sys, tls, udp_relay};

fn main() -> ExitCode {
    let cfg = match cli::parse(std::env::args_os().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Check(cfg)) => {
            // Everything that can be known without the network: the routes
            // parsed and told apart on each shared address. Names are not
            // looked up (a service may not exist yet when this runs, as in
            // a container's build), and nothing is bound.
            // And the descriptors this process would have: what they fit.
            let doors = route::doors(&cfg.routes).map(|d| d.len()).unwrap_or_default();
            sys::init();
            let http = usize::from(cfg.metrics.is_some()) + usize::from(cfg.admin.as_ref().is_some_and(|(a, _)| Some(*a) != cfg.metrics));
            let budget = Budget::measure(cfg.max_conns, doors + http);
            println!("wasiter: configuration ok: {} route(s) on {doors} listen address(es); {}", cfg.routes.len(), fits(&budget));
            for r in &cfg.routes {
                if let Some(f) = r.forward.as_ref().filter(|f| !f.presets.is_empty()) {
                    println!("wasiter: {} ({}): presets {}", r.listen, r.origin, preset_expansion(f));
                }
            }
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            println!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("wasiter {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::MakeCa(dir)) => {
            return match tls::make_ca(&dir) {
                Ok((tls::Made::New, cert)) => {
                    println!("wasiter: made a CA in {dir}: give the sandbox {cert} to trust; {dir}/ca-key.pem stays with the proxy's user");
                    ExitCode::SUCCESS
                }
                Ok((tls::Made::Kept, cert)) => {
                    println!("wasiter: {dir} already holds a CA, kept as it is ({cert})");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format_args!("{e}")),
            };
        }
        Ok(Command::Ask(ask)) => {
            return match wasiter::ask::client::run(&ask) {
                Ok(out) => {
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format_args!("{e}")),
            };
        }
        Ok(Command::Presets(name)) => {
            return match wasiter::presets::describe(name.as_deref()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format_args!("{e}")),
            };
        }
        Ok(Command::Placeholders(file)) => {
            return match Secrets::load(&file, &|k| std::env::var(k).ok()) {
                Ok(secrets) => {
                    for (name, placeholder) in secrets.placeholders() {
                        println!("{name}={placeholder}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format_args!("{e}")),
            };
        }
        Err(e) => {
            eprintln!("wasiter: {e}");
            return ExitCode::from(2);
        }
    };
    log::configure(cfg.log_level, cfg.log_format, cfg.trace);
    sys::init();
    udp_relay::configure(cfg.udp_buffer);
    // The CA and the secrets before anything is bound: a launcher that waits
    // for the start line finds ca.pem written, and a bad secrets file is a
    // configuration error (exit 2) that no start line came before.
    let keys = match keys(&cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("wasiter: {e}");
            return ExitCode::from(2);
        }
    };

    // Every listen address (a door, shared by the routes on it): bind it;
    // every route: resolve its upstreams. Any failure stops the start with
    // a line naming the route.
    let health = FailPolicy { threshold: cfg.fail_threshold, cooldown: cfg.cooldown };
    let groups = match route::doors(&cfg.routes) {
        Ok(g) => g,
        Err(e) => return fail(format_args!("{e}")),
    };
    let mut doors = Vec::new();
    let mut routes = Vec::new();
    let (backlog, backlog_from) = limits::backlog(cfg.backlog);
    for group in &groups {
        let specs: Vec<(usize, &RouteSpec)> = group.iter().filter_map(|&i| Some((i, cfg.routes.get(i)?))).collect();
        let Some(&(_, first)) = specs.first() else { continue };
        let listener = match proxy::Door::bind(first, backlog) {
            Ok(l) => l,
            Err(e) => {
                // The LOCAL/REMOTE route listens where LOCAL says.
                let what = match first.origin.as_str() {
                    "REMOTE" => "LOCAL",
                    "--remote" => "--local",
                    other => other,
                };
                return fail(format_args!("{what}: cannot listen on {}: {}", first.place(), sys::describe(&e)));
            }
        };
        let Some(door) = proxy::Door::new(&specs, listener) else { continue };
        doors.push(door);
    }
    // Routes in the order given, so that a door's table indexes them. Names
    // are looked up as the loop will look them up later: by our resolver
    // when there are nameservers to ask, else by the runtime's getaddrinfo.
    let mut resolver = resolver(&cfg);
    for (spec, door) in cfg.routes.iter().zip(door_of(&groups, cfg.routes.len())) {
        let mut resolved = Vec::new();
        for remote in &spec.upstreams {
            if remote.unix_path().is_some() {
                resolved.push(vec![sys::UNIX_PEER]); // one server: the socket
                continue;
            }
            match resolver.upstream_now(&remote.host, remote.port) {
                Ok(addrs) if !addrs.is_empty() => resolved.push(addrs),
                Ok(_) => return fail(format_args!("{}: {:?} resolved to no address", spec.origin, remote.to_string())),
                Err(e) => return fail(format_args!("{}: cannot resolve {:?}: {}", spec.origin, remote.to_string(), sys::describe(&e))),
            }
        }
        let tls = match spec.load_tls() {
            Ok(t) => t,
            Err(e) => return fail(format_args!("{e}")),
        };
        let Some(door) = doors.get(door) else { continue };
        routes.push(proxy::RouteState::new(spec, door, resolved, health, tls));
    }
    let (served, metrics_addr, admin_addr) = match served(&cfg) {
        Ok(s) => s,
        Err(e) => return fail(format_args!("{e}")),
    };
    // Whether small writes can go out at once here decides whether the relay
    // must hold split answers together (`coalesce`).
    let nodelay = nagle::probe();
    let coalesce = match cfg.coalesce.cap(nodelay.works()) {
        Some(cap) => format!("{}us", cap.as_micros()),
        None => "off".to_string(),
    };
    let names = if resolver.configured() {
        let servers: Vec<String> = resolver.conf().nameservers.iter().map(|s| s.to_string()).collect();
        format!("dns:{}", servers.join(","))
    } else {
        "getaddrinfo".to_string()
    };
    // The descriptors this process has (a wasm module counts them), with
    // every listener open: how many clients they fit.
    let budget = Budget::measure(cfg.max_conns, sys::open_sockets());
    // One start line per listen address, naming its real address and, on a
    // port routed by name, what each of its routes serves.
    for (door, group) in doors.iter().zip(&groups) {
        let specs: Vec<&RouteSpec> = group.iter().filter_map(|&i| cfg.routes.get(i)).collect();
        let upstreams = |spec: &RouteSpec| spec.upstreams.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",");
        let mut line = Record::always("start").str("listen", door.name());
        // Forward routes sharing the address: one policy per client, said below.
        let one = specs.len() == 1 || specs.iter().all(|s| s.forward.is_some());
        if let (true, Some(only)) = (one, specs.first().copied()) {
            let resolved = group.first().and_then(|&i| routes.get(i)).map(|r| r.upstream_list()).unwrap_or_default();
            let remote = match &only.forward { Some(f) if f.dns => "dns".to_string(), Some(_) => "forward".to_string(), None => upstreams(only) };
            line = line.str("remote", remote).str("upstreams", resolved).str("policy", only.policy.name());
            if !only.matches.is_default() {
                line = line.str("routes", format_args!("{}>{}", only.matches.label(), upstreams(only)));
            }
            if only.forward.is_some() {
                // Where a forward route's names are looked up.
                let conf = resolver.conf();
                let servers: Vec<String> = conf.nameservers.iter().map(|s| s.to_string()).collect();
                line = line.str("resolver", if servers.is_empty() { "none".to_string() } else { servers.join(",") });
                if !conf.search.is_empty() {
                    line = line.str("search", conf.search.join(",")).num("ndots", conf.ndots as u64);
                }
                line = line.num("hosts", resolver.hosts().len() as u64);
                let presets: Vec<String> = specs.iter().filter_map(|s| s.forward.as_ref()).filter(|f| !f.presets.is_empty()).map(preset_expansion).collect();
                if !presets.is_empty() {
                    line = line.str("presets", presets.join(" "));
                }
                if specs.len() > 1 || only.client().is_some() {
                    let id = |s: &&RouteSpec| s.forward.as_ref().map(|f| format!("{}<{}>", s.client().unwrap_or("-"), f.identity.describe()));
                    line = line.str("clients", specs.iter().filter_map(id).collect::<Vec<_>>().join(" "));
                }
            }
        } else {
            let each: Vec<String> = specs.iter().map(|s| format!("{}>{}", s.matches.label(), upstreams(s))).collect();
            line = line.str("routes", each.join(" "));
        }
        // TLS, when any route of the port speaks it: terminated here (with
        // which certificate files), and toward the upstreams (verified or not).
        let tls: Vec<String> = specs.iter().filter_map(|s| s.tls.as_ref().map(|f| f.cert.clone())).collect();
        if !tls.is_empty() {
            line = line.str("tls", tls.join(","));
        }
        let origin: Vec<&str> = specs.iter().filter_map(|s| s.upstream_tls.as_ref()).map(|u| if u.insecure { "unverified" } else { "verified" }).collect();
        if !origin.is_empty() {
            line = line.str("upstream_tls", origin.join(","));
        }
        // A UDP route's buffers as the kernel granted them, and whether its drops can be counted here.
        if let Some((rcv, snd, counted)) = door.udp_buffers() {
            line = line.num("udp_rcvbuf", rcv as u64).num("udp_sndbuf", snd as u64).str("udp_kernel_drops", if counted { "counted" } else { "uncounted" });
        }
        if let Some(admin) = &admin_addr {
            line = line.str("admin", admin);
        }
        line.str("names", &names)
            .str("metrics", &metrics_addr)
            .str("runtime", sys::RUNTIME)
            .str("version", env!("CARGO_PKG_VERSION"))
            .num("max_conns", budget.max_conns as u64)
            .str("fds", budget.fds())
            .str("fds_from", budget.descriptors.from)
            .num("backlog", u64::from(backlog))
            .str("backlog_from", backlog_from)
            .num("buffer", cfg.buffer_size as u64)
            .str("nodelay", if nodelay.works() { "yes" } else { "no" })
            .str("nodelay_probe", nodelay.name())
            .str("coalesce", &coalesce)
            .emit();
    }

    if let Some(fits) = budget.short() {
        // A soft limit left low (a runtime never raises it, and a wasm
        // module cannot): said once, with the way out.
        Record::new(Level::Warn, "fd-limit")
            .str("fds", budget.fds())
            .str("fds_from", budget.descriptors.from)
            .num("fits", fits as u64)
            .num("max_conns", budget.max_conns as u64)
            .str("action", "clients beyond it wait in the backlog; give it more: ulimit -n \"$(ulimit -Hn)\" before starting it")
            .emit();
    }

    for spec in cfg.routes.iter().filter(|r| r.upstream_tls.as_ref().is_some_and(|u| u.insecure)) {
        Record::new(Level::Warn, "upstream-unverified")
            .str("route", &spec.origin)
            .str("why", "upstream-insecure: any certificate is taken, so anyone on the path can pose as the upstream; for a dev backend's self-signed certificate only")
            .emit();
    }

    for spec in cfg.routes.iter().filter(|r| r.forward.as_ref().is_some_and(|f| !f.nets.is_empty())) {
        // A change of meaning users must know about: to-net= once also let
        // IP literals through, which opened a whole network to any client.
        Record::new(Level::Warn, "to-net-for-names-only")
            .str("route", &spec.origin)
            .str("why", "to-net= says where allowed names may resolve to; an IP-literal destination passes only where to= names it (the address, or a network such as to=10.1.2.0/24)")
            .emit();
    }

    if cfg.routes.iter().any(|r| r.forward.is_some()) && !resolver.configured() {
        Record::new(log::Level::Warn, "no-resolver")
            .str("error", format_args!("no nameserver in {} and no --resolver", cfg.resolv_conf))
            .str("action", "forward routes reach only IP addresses and hosts-file names; give --resolver, or on WasmEdge and wasmtime --dir /etc")
            .emit();
    }
    let mut proxy = match proxy::Proxy::new(&cfg, (doors, routes), resolver, served, nodelay.works(), (budget, backlog), keys) {
        Ok(p) => p,
        Err(e) => return fail(format_args!("cannot create the poller: {e}")),
    };
    // Lines are written once per pass of the loop (`log::hold`), never
    // blocking it; whatever ends it, the held lines go out first (for a
    // second at most, should nobody read stderr).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::release();
        default_hook(info);
    }));
    log::hold(log::Sink { write: sys::log_write, wait: sys::log_wait });
    let result = proxy.run();
    log::release();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format_args!("event loop failed: {e}")),
    }
}

/// `--check`'s words for the descriptors and the clients they fit.
fn fits(budget: &Budget) -> String {
    let clients = match budget.short() {
        Some(fits) if budget.max_conns_given => format!("room for {fits} clients at once, fewer than --max-conns {}", budget.max_conns),
        Some(fits) => format!("room for {fits} clients at once"),
        None => format!("room for {} clients at once", budget.max_conns),
    };
    let raise = if budget.short().is_some() { "; give it more: ulimit -n \"$(ulimit -Hn)\" before starting it (see docs/reliability-and-security.md)" } else { "" };
    format!("{} descriptors ({}): {clients}{raise}", budget.fds(), budget.descriptors.from)
}

fn fail(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("wasiter: {msg}");
    ExitCode::from(1)
}

/// The in-loop resolver: resolv.conf's servers, search list and options
/// (`--resolver`'s servers instead, if given), and the hosts file, each
/// when readable (on WasmEdge and wasmtime: with `--dir`).
fn resolver(cfg: &wasiter::settings::Config) -> dns::Resolver {
    let mut conf = std::fs::read_to_string(&cfg.resolv_conf).map(|t| dns::ResolvConf::parse(&t)).unwrap_or_default();
    if let Some(servers) = &cfg.resolver {
        conf.nameservers = servers.clone();
    }
    if let Some(t) = cfg.dns_timeout {
        conf.timeout = t;
    }
    let hosts = std::fs::read_to_string(&cfg.hosts_file).map(|t| dns::Hosts::parse(&t)).unwrap_or_default();
    dns::Resolver::new(conf, hosts)
}

/// The CA, when a route opens TLS (`open=`), and the secrets (`--secrets`):
/// an error is one line naming what to give.
fn keys(cfg: &wasiter::settings::Config) -> Result<proxy::Keys, String> {
    let mut keys = proxy::Keys::default();
    let opening: Vec<&RouteSpec> = cfg.routes.iter().filter(|r| r.forward.as_ref().is_some_and(|f| !f.open.is_empty())).collect();
    if let Some(route) = opening.iter().find(|r| r.forward.as_ref().is_some_and(|f| f.parent.is_some())) {
        return Err(format!("{}: open= with parent= is not supported: an opened name's requests would not go through the parent; leave one out", route.origin));
    }
    if let Some(route) = opening.first() {
        let Some(dir) = cfg.ca.as_deref() else {
            return Err(format!("{}: open= needs the sandbox's CA: give --ca DIR (made there at first start; the sandbox trusts DIR/ca.pem)", route.origin));
        };
        let (opener, made) = tls::opener(dir, cfg.upstream_ca.as_deref())?;
        let names: Vec<String> = opening.iter().filter_map(|r| r.forward.as_ref()).flat_map(|f| f.open.iter().map(|p| p.to_string())).collect();
        Record::always("ca")
            .str("cert", opener.cert_file())
            .str("made", if made == tls::Made::New { "now" } else { "before" })
            .str("open", names.join(","))
            .str("upstream_ca", cfg.upstream_ca.as_deref().unwrap_or("system"))
            .emit();
        keys.opener = Some(opener);
    }
    if let Some(file) = &cfg.secrets {
        keys.secrets = Secrets::load(file, &|k| std::env::var(k).ok())?;
        keys.secrets_file = Some(file.clone());
        let names: Vec<String> = keys.secrets.placeholders().into_iter().map(|(n, _)| n).collect();
        Record::always("secrets").str("file", file).str("entries", names.join(",")).emit();
    }
    Ok(keys)
}

/// The metrics and admin listeners (one, when they share an address), the
/// admin token (read, or made), and their URLs for the start line.
fn served(cfg: &wasiter::settings::Config) -> Result<(proxy::Served, String, Option<String>), String> {
    let mut served = proxy::Served::default();
    let both = cfg.admin.as_ref().is_some_and(|(a, _)| Some(*a) == cfg.metrics);
    let mut metrics_addr = "off".to_string();
    if let Some(addr) = cfg.metrics {
        let l = sys::Listener::bind(addr, 64).map_err(|e| format!("WASITER_METRICS: cannot listen on {addr}: {}", sys::describe(&e)))?;
        metrics_addr = l.local_addr().map(|a| format!("http://{a}/metrics")).unwrap_or_default();
        served.listeners.push((l, Serves { metrics: true, admin: both }));
    }
    let Some((addr, file)) = &cfg.admin else { return Ok((served, metrics_addr, None)) };
    let (token, made) = ask::admin::token_file(file)?;
    let own = if both {
        served.listeners.first().and_then(|(l, _)| l.local_addr().ok())
    } else {
        let l = sys::Listener::bind(*addr, 64).map_err(|e| format!("WASITER_ADMIN: cannot listen on {addr}: {}", sys::describe(&e)))?;
        let own = l.local_addr().ok();
        served.listeners.push((l, Serves { metrics: false, admin: true }));
        own
    };
    let own = own.unwrap_or(*addr);
    served.admin = Some(ask::admin::Gate::new(token, own));
    // Where the token is, never the token.
    Record::always("admin").str("page", format_args!("http://{own}/")).str("token_file", file).str("made", if made == ask::admin::Made::Now { "now" } else { "before" }).emit();
    Ok((served, metrics_addr, Some(format!("http://{own}/"))))
}

/// For each route (by index), the index of its door.
fn door_of(groups: &[Vec<usize>], routes: usize) -> Vec<usize> {
    let mut of = vec![0; routes];
    for (door, group) in groups.iter().enumerate() {
        for &i in group {
            if let Some(slot) = of.get_mut(i) {
                *slot = door;
            }
        }
    }
    of
}

/// A forward route's presets as the start line shows them:
/// `@python(pypi.org,files.pythonhosted.org) ...`, and the names among them
/// whose ports the route's `ports=` leaves out (`:22!`).
fn preset_expansion(f: &wasiter::forward::Forward) -> String {
    let each = f.presets.iter().filter_map(|name| wasiter::presets::get(name)).map(|p| {
        let names = p.entries.iter().map(|e| {
            let refused: Vec<String> = e.ports.iter().filter(|port| !f.ports.is_empty() && !f.ports.contains(port)).map(|port| format!(":{port}!")).collect();
            format!("{}{}", e.pattern, refused.concat())
        });
        format!("@{}({})", p.name, names.collect::<Vec<_>>().join(","))
    });
    each.collect::<Vec<_>>().join(" ")
}
