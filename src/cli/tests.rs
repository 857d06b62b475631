//! The command line and environment, read the way users give them.

use super::*;
use crate::route::Remote;
use std::collections::HashMap;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match parse(args.iter().map(OsString::from), |k| env.get(k).cloned())? {
        Command::Run(c) => Ok(*c),
        other => panic!("expected a run, got {other:?}"),
    }
}

fn err(args: &[&str], env: &[(&str, &str)]) -> String {
    run(args, env).expect_err("should be rejected").0
}

const BASE: [(&str, &str); 2] = [("LOCAL", "0.0.0.0:8080"), ("REMOTE", "backend:80")];

#[test]
fn env_alone_is_enough_and_defaults_apply() {
    let c = run(&[], &BASE).unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.routes[0].upstreams, vec![Remote { host: "backend".into(), port: 80 }]);
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!((c.fail_threshold, c.cooldown), (3, Duration::from_secs(10)));
    assert_eq!((c.health_check, c.resolve_interval), (None, Some(Duration::from_secs(30))));
    assert_eq!(c.proxy_header_timeout, Duration::from_secs(5));
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!((c.max_conns, c.backlog, c.buffer_size, c.log_level), (None, None, 256 * 1024, Level::Info));
    assert_eq!((c.log_format, c.dump.mode, c.metrics, c.summary_interval, c.trace), (Format::Text, DumpMode::Off, None, None, false));
}

#[test]
fn flags_win_over_env() {
    let c = run(&["--local", "127.0.0.1:9000", "--remote=10.0.0.1:6379", "-q"], &BASE).unwrap();
    assert_eq!(c.routes[0].listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(c.routes[0].upstreams[0].to_string(), "10.0.0.1:6379");
    assert_eq!(c.log_level, Level::Warn, "--quiet is --log-level warn");
}

#[test]
fn every_setting_parses() {
    let c = run(
        &["--connect-timeout", "250ms", "--idle-timeout", "0", "--max-conns", "3", "--backlog", "8192", "--buffer-size", "16k"],
        &[("LOCAL", ":9"), ("REMOTE", "[::1]:443"), ("WASITER_QUIET", "yes")],
    )
    .unwrap();
    assert_eq!(c.routes[0].listen, "0.0.0.0:9".parse().unwrap());
    assert_eq!(c.routes[0].upstreams, vec![Remote { host: "::1".into(), port: 443 }]);
    assert_eq!(c.routes[0].upstreams[0].to_string(), "[::1]:443");
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.idle_timeout, None);
    assert_eq!((c.max_conns, c.backlog, c.buffer_size, c.log_level), (Some(3), Some(8192), 16384, Level::Warn));
    assert_eq!(run(&["--idle-timeout", "1m 30s"], &BASE).unwrap().idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!(run(&["--buffer-size", "1MiB"], &BASE).unwrap().buffer_size, 1 << 20);
}

#[test]
fn help_lists_every_setting_and_every_flag_parses() {
    let text = help();
    for s in ROUTING.iter().chain(TUNING.iter()) {
        assert!(text.contains(s.flag) && text.contains(s.env), "{} missing from --help", s.flag);
    }
    assert!(!text.lines().any(|l| l.ends_with(' ')), "no trailing blanks");
    // Every flag of the table is known to the parser (a switch takes no value).
    for s in TUNING {
        let args: Vec<&str> = if s.value.is_empty() { vec![s.flag] } else { vec![s.flag, "x"] };
        let env: HashMap<String, String> = BASE.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let err = parse(args.iter().map(OsString::from), |k| env.get(k).cloned()).err().map(|e| e.0).unwrap_or_default();
        assert!(!err.contains("unexpected"), "{}: {err}", s.flag);
    }
}

#[test]
fn the_keys_flags_ask_for_what_they_need() {
    let c = run(&["--ca", "/ca", "--upstream-ca", "/roots.pem", "--secrets", "/s"], &BASE).unwrap();
    assert_eq!((c.ca.as_deref(), c.upstream_ca.as_deref(), c.secrets.as_deref()), (Some("/ca"), Some("/roots.pem"), Some("/s")));
    let make = parse(["--make-ca", "/ca"].iter().map(OsString::from), |_| None).unwrap();
    assert!(matches!(make, Command::MakeCa(d) if d == "/ca"), "needs no route");
    let e = parse(["--placeholders"].iter().map(OsString::from), |k| BASE.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap_err();
    assert!(e.0.contains("--secrets FILE"), "{}", e.0);
    let p = parse(["--placeholders", "--secrets", "/s"].iter().map(OsString::from), |_| None).unwrap();
    assert!(matches!(p, Command::Placeholders(f) if f == "/s"), "needs no route");
}

#[test]
fn coalesce_is_auto_off_or_a_duration() {
    assert_eq!(run(&[], &BASE).unwrap().coalesce, Coalesce::Auto);
    assert_eq!(run(&["--coalesce", "off"], &BASE).unwrap().coalesce, Coalesce::Off);
    assert_eq!(run(&["--coalesce=2ms"], &BASE).unwrap().coalesce, Coalesce::UpTo(Duration::from_millis(2)));
    let env = [("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_COALESCE", "300us")];
    assert_eq!(run(&[], &env).unwrap().coalesce, Coalesce::UpTo(Duration::from_micros(300)));
}

#[test]
fn observability_settings_parse() {
    let c = run(
        &["--log-format", "json", "--dump", "hex", "--dump-limit", "1k", "--metrics", "9090", "--trace"],
        &[("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_LOG_LEVEL", "debug"), ("WASITER_SUMMARY_INTERVAL", "10s")],
    )
    .unwrap();
    assert_eq!((c.log_level, c.log_format), (Level::Debug, Format::Json));
    assert_eq!(c.dump, Dump { mode: DumpMode::Hex, limit: 1024 });
    assert_eq!(c.metrics, Some("127.0.0.1:9090".parse().unwrap()), "a bare port is loopback");
    assert_eq!((c.summary_interval, c.trace), (Some(Duration::from_secs(10)), true));
    let c = run(&["--metrics", "0.0.0.0:9100"], &BASE).unwrap();
    assert_eq!(c.metrics, Some("0.0.0.0:9100".parse().unwrap()), "told otherwise");
    assert_eq!(run(&["--metrics", "off"], &BASE).unwrap().metrics, None);
}

#[test]
fn routes_add_up_from_every_source() {
    let dir = std::env::temp_dir().join(format!("wasiter-routes-{}", std::process::id()));
    std::fs::write(&dir, "# the file\n127.0.0.1:7001=f:1 # trailing\n\n[::1]:7002=g:2;policy=rr\n").unwrap();
    let c = run(
        &["--route", ":7003=a:1,b:2;policy=least-conn", "--route=:7004=c:3", "--routes-file", dir.to_str().unwrap()],
        &[("LOCAL", ":7000"), ("REMOTE", "x:1,y:2;send-proxy=v1"), ("WASITER_ROUTES", ":7999=ignored:1")],
    )
    .unwrap();
    let listens: Vec<String> = c.routes.iter().map(|r| r.listen.to_string()).collect();
    assert_eq!(listens, ["0.0.0.0:7000", "0.0.0.0:7003", "0.0.0.0:7004", "127.0.0.1:7001", "[::1]:7002"], "flags replace the variable");
    assert_eq!(c.routes[0].upstreams.len(), 2);
    assert_eq!(c.routes[0].send_proxy, Some(crate::route::ProxyVersion::V1));
    assert_eq!(c.routes[1].policy, crate::route::Policy::LeastConn);
    let c = run(&[], &[("WASITER_ROUTES", " :7001=a:1\n :7002=b:2 ")]).unwrap();
    assert_eq!(c.routes.len(), 2, "the variable holds routes separated by white space");
    std::fs::write(&dir, "ok:1\n").unwrap();
    let e = err(&["--routes-file", dir.to_str().unwrap()], &[]);
    assert!(e.contains(", line 1: \"ok:1\" is not valid: no '='"), "{e}");
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn missing_settings_name_the_variable() {
    let e = err(&[], &[("REMOTE", "a:1")]);
    assert!(e.starts_with("LOCAL is not set"), "{e}");
    let e = err(&[], &[("LOCAL", ":1")]);
    assert!(e.starts_with("REMOTE is not set"), "{e}");
}

#[test]
fn bad_values_name_the_setting_the_value_and_the_form() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str); // args, env, error start
    let cases: &[Case] = &[
        (&[], &[("LOCAL", "8080"), ("REMOTE", "a:1")], "LOCAL: \"8080\" is not valid; expected [udp:]IP:PORT"),
        (&[], &[("LOCAL", "localhost:80"), ("REMOTE", "a:1")], "LOCAL: \"localhost:80\""),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "backend")], "REMOTE: \"backend\" is not valid: bad upstream \"backend\"; expected HOST:PORT"),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "backend:0")], "REMOTE: \"backend:0\""),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "backend:99999")], "REMOTE: \"backend:99999\""),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "::1:80")], "REMOTE: \"::1:80\""),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "ba d:80")], "REMOTE: \"ba d:80\""),
        (&[], &[("LOCAL", ":1"), ("REMOTE", ":80")], "REMOTE: \":80\""),
        (&["--remote", "x"], &BASE, "--remote: \"x\" is not valid"),
        (&["--connect-timeout", "soon"], &BASE, "--connect-timeout: \"soon\" is not valid; expected a duration"),
        (&["--connect-timeout", "0"], &BASE, "--connect-timeout: \"0\""),
        (&["--idle-timeout", "-1"], &BASE, "--idle-timeout: \"-1\""),
        (&["--max-conns", "0"], &BASE, "--max-conns: \"0\" is not valid; expected a whole number"),
        (&["--backlog", "0"], &BASE, "--backlog: \"0\" is not valid; expected a whole number from 1 to 1000000"),
        (&["--coalesce", "1s"], &BASE, "--coalesce: \"1s\" is not valid; expected auto, off, or a duration"),
        (&["--coalesce", "sometimes"], &BASE, "--coalesce: \"sometimes\" is not valid; expected auto"),
        (&["--buffer-size", "10"], &BASE, "--buffer-size: \"10\" is not valid; expected a size"),
        (&["--buffer-size", "64q"], &BASE, "--buffer-size: \"64q\""),
        (&["--log-level", "loud"], &BASE, "--log-level: \"loud\" is not valid; expected error, warn, info or debug"),
        (&["--log-format", "xml"], &BASE, "--log-format: \"xml\""),
        (&["--dump", "raw"], &BASE, "--dump: \"raw\""),
        (&["--metrics", "localhost:9090"], &BASE, "--metrics: \"localhost:9090\""),
        (&["--summary-interval", "often"], &BASE, "--summary-interval: \"often\""),
        (&["--route", ":80="], &[], "--route: \":80=\" is not valid: no upstream (an empty pool); expected LISTEN="),
        (&["--route", ":80=a:1;allow=10.0.0.0/33"], &[], "--route: \":80=a:1;allow=10.0.0.0/33\" is not valid: bad CIDR"),
        (&[], &[("WASITER_ROUTES", ":80=a:1 :81")], "WASITER_ROUTES: \":81\" is not valid: no '='"),
        (&[], &[("LOCAL", ":1"), ("REMOTE", "a:1;deny=x")], "REMOTE: \"a:1;deny=x\" is not valid: bad CIDR \"x\""),
        (&["--route", ":80=a:1", "--route", "0.0.0.0:80=b:1"], &[], "two routes listen on 0.0.0.0:80 and neither says what it serves"),
        (&["--fail-threshold", "0"], &BASE, "--fail-threshold: \"0\""),
        (&["--cooldown", "0"], &BASE, "--cooldown: \"0\""),
        (&["--health-check", "often"], &BASE, "--health-check: \"often\""),
        (&["--resolve-interval", "x"], &BASE, "--resolve-interval: \"x\""),
        (&["--proxy-header-timeout", "0"], &BASE, "--proxy-header-timeout: \"0\""),
        (&["--routes-file", "/nonexistent/routes"], &[], "--routes-file: cannot read \"/nonexistent/routes\": No such file"),
    ];
    for (args, env, want) in cases {
        let e = err(args, env);
        assert!(e.starts_with(want), "got {e:?}, want it to start with {want:?}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
    let e = err(&[], &[("LOCAL", ":1"), ("REMOTE", "a:1"), ("WASITER_MAX_CONNS", "many")]);
    assert!(e.starts_with("WASITER_MAX_CONNS: \"many\""), "{e}");
}

#[test]
fn unknown_flags_and_stray_arguments_are_rejected() {
    assert!(err(&["--frobnicate"], &BASE).contains("--frobnicate"));
    assert!(err(&["extra"], &BASE).contains("extra"));
    assert!(err(&["--local"], &BASE).starts_with("--local needs a value"));
}

#[test]
fn check_parses_everything_and_stops_there() {
    let got = parse(["--check".into(), "--route".into(), ":8080=db:5432".into()], |_| None);
    assert!(matches!(got, Ok(Command::Check(c)) if c.routes.len() == 1));
    let bad = parse(["--check".into(), "--route".into(), "8080=db:5432".into()], |_| None);
    assert!(matches!(bad, Err(ConfigError(m)) if m.contains("bad listen address")));
}

#[test]
fn help_and_version() {
    assert!(matches!(parse(["--help".into()], |_| None), Ok(Command::Help)));
    assert!(matches!(parse(["-V".into()], |_| None), Ok(Command::Version)));
}

#[test]
fn udp_buffer_is_a_size_within_what_a_socket_takes() {
    assert_eq!(run(&[], &BASE).unwrap().udp_buffer, 4 << 20);
    assert_eq!(run(&["--udp-buffer", "16m"], &BASE).unwrap().udp_buffer, 16 << 20);
    assert_eq!(run(&[], &[BASE[0], BASE[1], ("WASITER_UDP_BUFFER", "64KiB")]).unwrap().udp_buffer, 64 << 10);
    assert_eq!(err(&["--udp-buffer", "1k"], &BASE), r#"--udp-buffer: "1k" is not valid; expected a size from 4KiB to 512MiB, e.g. 4m or 16MiB"#);
    assert!(err(&["--udp-buffer", "1024m"], &BASE).starts_with(r#"--udp-buffer: "1024m" is not valid"#));
}
