//! The text of `--help`: how this build is started, the settings from the
//! table, and the route syntax.

use std::fmt::Write as _;

use super::table::{Setting, ROUTING, TUNING};

const INTRO: &str = "wasiter: a TCP proxy for WebAssembly runtimes and Linux\n\nUSAGE:\n";

/// How this build is started, as the usage shows it: each runtime passes a
/// module only the variables it is told about, flags after the module.
fn usage() -> &'static str {
    match crate::sys::RUNTIME {
        "wasmedge" => "    wasmedge --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasmedge --run-mode=aot wasiter.aot.wasm --local 0.0.0.0:8080 --remote backend:80
    wasmedge wasiter.wasm --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin' --route :6379=cache:6379
",
        "wasmtime" => "    wasmtime run -S inherit-network -S allow-ip-name-lookup --env LOCAL=0.0.0.0:8080 --env REMOTE=backend:80 wasiter.wasm
    wasmtime run -S inherit-network wasiter.wasm --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin'
",
        _ => "    wasiter --local 0.0.0.0:8080 --remote backend:80
    LOCAL=0.0.0.0:8080 REMOTE=backend:80 wasiter
    wasiter --route '0.0.0.0:8080=web1:80,web2:80;policy=round-robin' --route :6379=cache:6379
",
    }
}

const ROUTES_HEADER: &str = "\nROUTES (at least one: LOCAL with REMOTE, or --route, or a routes file):\n";

const ROUTE_OPTIONS: &str = "  OPTIONs, after the upstreams, each after a ';':
        policy=failover|round-robin|least-conn   how an upstream is picked
                                                 (default failover: in order)
        allow=CIDR,...  deny=CIDR,...            who may connect (deny wins;
                                                 an allow list admits only itself)
        send-proxy=v1|v2                         PROXY protocol to the upstream
        accept-proxy                             expect a PROXY header (v1 or v2)
                                                 from the client (a load balancer)
        sni=NAME,...  alpn=PROTO,...             serve the TLS clients asking for
                                                 these (bytes relayed unchanged)
        host=NAME,...                            serve the plain HTTP clients whose
                                                 first request names these hosts
        cert=PEM;key=PEM                         terminate TLS with this certificate
                                                 chain and key: the upstream gets plain
                                                 bytes (with sni=: the cert for those
                                                 names; alpn=: the protocols offered)
  Routes with these may share one listen address; a route there without
  them is its default. NAME: app.test, *.app.test (any subdomain, one label
  or more) or *. The most specific name wins, then the client's preferred
  ALPN, then the order given. No match and no default: TLS clients get an
  unrecognized_name alert, HTTP ones a 421. For example, on one port:
        --route ':8443=127.0.0.1:3000;sni=app.test'
        --route ':8443=127.0.0.1:8000;sni=api.test,*.api.test'
        --route ':8443=127.0.0.1:9000'
  A forward proxy (HTTP CONNECT and absolute URLs, and SOCKS5 on the same
  port), its clients naming where to go: LISTEN=forward;OPTION...
        to=NAME,...  not-to=NAME,...             names allowed (* for any, @python for a
                                                 preset: wasiter presets) and refused;
                                                 no to= only on a loopback address
        ports=PORT,...                           default 443 for CONNECT, 80 for HTTP
        to-net=CIDR,...                          addresses a name may resolve to
                                                 (default: not loopback, link-local
                                                 or private networks)
        auth=USER:PASS                           ask for a login (407 without)
        report                                   let unlisted names through as
                                                 would-deny; draft the list on stop
        ask[;ask-timeout=60s]                    hold unlisted names while a person
                                                 answers (--admin page, wasiter ask)
        budget=NAME[+NAME]:200req,5MiB-up/1h     what one client may ask of these
                                                 names per window (429 past it)
        client=NAME;from=CIDR,...|uid=N,...      this policy is for these clients:
                                                 forward routes on one address, one
                                                 per client (the one with neither is
                                                 the default; unclaimed: refused);
                                                 or client=NAME;auth=USER:PASS: by login
        underscore                               names may hold '_' (else refused,
                                                 rule bad-name)
        parent=http://[USER:PASS@]HOST:PORT      go out through this proxy (after
                                                 the list is checked)...
        direct=NAME,...                          ...except to these names
        transparent=PORT                         for connections redirected from PORT:
                                                 the name from SNI or Host
        --route '127.0.0.1:3128=forward;to=pypi.org,*.github.com'
    LISTEN=dns;to=NAME,...       an allowlist DNS server (UDP and TCP): A/AAAA for
                                 listed names, REFUSED for any other, never asked
                                 upstream; takes not-to=, to-net=, report,
                                 ask, ask-timeout=, underscore
        --route '127.0.0.1:3053=dns;to=pypi.org,*.github.com'
";

const OUTRO: &str = "\
    --check                read the settings and routes (the routes file too),
                           say whether they are valid, and exit: nothing is bound
                           or resolved (as nginx -t, haproxy -c)
    -h, --help             this text
    -V, --version          the version
    presets [@NAME]        the presets to= takes (to=@python,@github): each one's
                           names, ports and the documentation that names them

DUR is 500ms, 10s, 5m, 1h, 300us or plain seconds. SIZE is bytes, or with KiB/MiB (k/m).
Flags also take the form --name=value.";

/// The text of --help, from the table.
pub fn help() -> String {
    let mut out = String::from(INTRO);
    out.push_str(usage());
    // Talking to a running proxy in ask mode (docs/ask.md).
    let _ = writeln!(out, "    {}", super::ask::USAGE);
    out.push_str(ROUTES_HEADER);
    let entry = |out: &mut String, s: &Setting| {
        let mut left = match s.short {
            Some(c) => format!("-{c}, {}", s.flag),
            None => s.flag.to_string(),
        };
        if !s.value.is_empty() {
            left = format!("{left} {}", s.value);
        }
        let line = format!("    {left:<22} {:<24} {}", s.env, s.default);
        let _ = writeln!(out, "{}", line.trim_end());
        for line in s.help.lines() {
            let _ = writeln!(out, "        {}", line.trim_start());
        }
    };
    for s in ROUTING {
        entry(&mut out, s);
    }
    out.push_str(ROUTE_OPTIONS);
    out.push_str("\nSETTINGS (flag, environment variable, default):\n");
    for s in TUNING {
        entry(&mut out, s);
    }
    out.push_str(OUTRO);
    out
}
