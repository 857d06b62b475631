//! The route syntax's unit tests: every option parsed, every mistake
//! refused with its own words. A file of their own, beside `route.rs`.

use super::*;

/// A rule that must be exactly one route.
fn parse_route(s: &str) -> Result<RouteSpec, String> {
    let mut routes = parse_rule(s)?;
    assert_eq!(routes.len(), 1, "{s} is one route");
    Ok(routes.remove(0))
}

#[test]
fn a_full_route_parses() {
    let r = parse_route("[::]:8080=web1:80, [::1]:81 ;policy=least-conn;allow=10.0.0.0/8,::1;deny=10.1.2.3;send-proxy=v2;accept-proxy")
        .unwrap();
    assert_eq!(r.listen, "[::]:8080".parse().unwrap());
    assert_eq!(r.upstreams, vec![Remote { host: "web1".into(), port: 80 }, Remote { host: "::1".into(), port: 81 }]);
    assert_eq!((r.policy, r.send_proxy, r.accept_proxy), (Policy::LeastConn, Some(ProxyVersion::V2), true));
    assert_eq!(r.acl.allow, vec!["10.0.0.0/8".parse::<IpNet>().unwrap(), "::1/128".parse().unwrap()]);
    assert_eq!(r.acl.deny, vec!["10.1.2.3/32".parse::<IpNet>().unwrap()]);
    let plain = parse_route(":9=a:1").unwrap();
    assert_eq!((plain.policy, plain.send_proxy, plain.accept_proxy, plain.acl.is_open()), (Policy::Failover, None, false, true));
}

#[test]
fn routes_on_one_address_share_a_door_when_names_tell_them_apart() {
    let parse = |specs: &[&str]| -> Vec<RouteSpec> {
        specs.iter().enumerate().map(|(i, s)| RouteSpec { origin: format!("route {i}"), ..parse_route(s).unwrap() }).collect()
    };
    let routes = parse(&[":443=a:1;sni=app.test", ":80=w:1", ":443=b:1;sni=*.api.test;alpn=h2;policy=rr", ":443=c:1", ":0=d:1", ":0=e:1"]);
    assert_eq!(doors(&routes).unwrap(), vec![vec![0, 2, 3], vec![1], vec![4], vec![5]]);
    assert_eq!(routes[2].matches.label(), "sni=*.api.test;alpn=h2");
    for (specs, want) in [
        (&[":443=a:1", ":443=b:1"][..], "two routes listen on 0.0.0.0:443 and neither says"),
        (&[":443=a:1;sni=x.test", ":443=b:1;sni=X.test."], "two routes on 0.0.0.0:443 both serve sni=x.test"),
        (&[":443=a:1;sni=x.test;allow=10.0.0.0/8", ":443=b:1;sni=y.test"], "the routes on 0.0.0.0:443 (route 0 and route 1) differ"),
        (&[":443=a:1;host=x.test", ":443=b:1;accept-proxy"], "the routes on 0.0.0.0:443 (route 0 and route 1) differ"),
    ] {
        let e = doors(&parse(specs)).unwrap_err();
        assert!(e.starts_with(want), "{specs:?}: {e}");
    }
}

#[test]
fn forward_routes_parse_and_refuse_to_be_open_proxies() {
    let r = parse_route("127.0.0.1:3128=forward;to=pypi.org,*.github.com;not-to=gist.github.com;to-net=10.0.0.0/8;ports=443,8443").unwrap();
    let f = r.forward.clone().unwrap();
    assert!(r.upstreams.is_empty());
    assert_eq!((f.to.len(), f.not_to.len(), f.nets.len(), f.ports.as_slice()), (2, 1, 1, &[443u16, 8443][..]));
    assert!(doors(&[r]).is_ok());
    let open = RouteSpec { origin: "--route".into(), ..parse_route("0.0.0.0:3128=forward").unwrap() };
    let report = RouteSpec { origin: "--route".into(), ..parse_route("0.0.0.0:3128=forward;to=*;report").unwrap() };
    assert!(doors(&[report]).unwrap_err().contains("report lets every name through"));
    let asks = RouteSpec { origin: "--route".into(), ..parse_route("0.0.0.0:3128=forward;ask").unwrap() };
    assert!(doors(&[asks]).is_ok(), "ask with an empty list: nothing goes by without a person");
    assert!(parse_route("127.0.0.1:3128=forward;to=pypi.org;report").unwrap().forward.unwrap().report);
    let ask = parse_route("127.0.0.1:3128=forward;to=pypi.org;ask").unwrap().forward.unwrap();
    assert_eq!(ask.ask, Some(crate::ask::DEFAULT_TIMEOUT));
    assert_eq!(parse_route("127.0.0.1:53=dns;ask-timeout=5s").unwrap().forward.unwrap().ask, Some(std::time::Duration::from_secs(5)), "ask-timeout= alone asks");
    assert!(parse_route("127.0.0.1:3128=forward;to=a.test;ask;report").unwrap_err().contains("choose one"));
    assert!(parse_route("127.0.0.1:3128=forward;ask-timeout=2h").unwrap_err().contains("bad ask-timeout"));
    assert!(doors(&[open]).unwrap_err().starts_with("--route: a forward route on 0.0.0.0:3128 with no to= would be an open proxy"));
    assert!(doors(&[parse_route("127.0.0.1:3128=forward").unwrap()]).is_ok(), "loopback only: allowed (it refuses every name)");
    assert!(parse_route(":80=a:1;to=x.test").unwrap_err().contains("applies to a forward route"));
    assert!(parse_route(":80=forward;ports=0").unwrap_err().contains("bad port"));
    let shared = [parse_route("127.0.0.1:9=forward;to=*").unwrap(), parse_route("127.0.0.1:9=a:1;sni=a.test").unwrap()];
    assert!(doors(&shared).unwrap_err().contains("needs a listen address of its own"));
}

#[test]
fn a_diff_tells_added_removed_changed_and_kept_routes() {
    let set = |specs: &[&str]| -> Vec<RouteSpec> { specs.iter().map(|s| parse_route(s).unwrap()).collect() };
    let old = set(&[":8080=a:1", ":8443=b:1;sni=b.test", ":8443=c:1;sni=c.test", ":9000=d:1", ":0=e:1"]);
    let new = set(&[
        ":9000=d:1",                         // kept (moved in the file)
        ":8080=a:1,a2:1;policy=rr",          // changed pool
        ":8443=c:1;sni=c.test;send-proxy=v2", // changed option
        ":8443=x:1;sni=x.test",              // added name on a kept port
        ":7000=f:1",                         // added port
        ":0=e:1",                            // port 0: always new
    ]);
    let d = diff(&old, &new);
    assert_eq!(d.kept, vec![(3, 0)]);
    assert_eq!(d.changed, vec![(0, 1), (2, 2)]);
    assert_eq!(d.added, vec![3, 4, 5]);
    assert_eq!(d.removed, vec![1, 4], "sni=b.test and the old port-0 route");
    assert!(!d.is_empty());
    let fixed = &old[..4];
    assert!(diff(fixed, fixed).is_empty());
}

#[test]
fn the_acl_denies_first_then_admits_only_the_allowed() {
    let acl = Acl { allow: parse_cidrs("127.0.0.0/8,::1").unwrap(), deny: parse_cidrs("127.0.0.2").unwrap() };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(acl.permits(ip("127.0.0.1")));
    assert!(!acl.permits(ip("127.0.0.2")), "denied, though inside an allowed range");
    assert!(!acl.permits(ip("10.0.0.1")), "not in the allow list");
    assert!(acl.permits(ip("::1")));
    assert!(acl.permits(ip("::ffff:127.0.0.1")), "IPv4-mapped is IPv4");
    assert!(!acl.permits(ip("::ffff:127.0.0.2")));
    let deny_only = Acl { allow: vec![], deny: parse_cidrs("192.168.0.0/16").unwrap() };
    assert!(deny_only.permits(ip("10.0.0.1")) && !deny_only.permits(ip("192.168.3.4")));
    assert_eq!(parse_cidrs("10.9.8.7/8").unwrap(), vec!["10.0.0.0/8".parse::<IpNet>().unwrap()], "host bits dropped");
}

#[test]
fn tls_options_parse() {
    let r = parse_route(":443=a:1;sni=app.test;cert=/c/app.pem;key=/c/app.key").unwrap();
    assert_eq!(r.tls, Some(TlsFiles { cert: "/c/app.pem".into(), key: "/c/app.key".into() }));
    assert_eq!(r.upstream_tls, None);
    let r = parse_route(":80=db.internal:443;upstream-tls").unwrap();
    assert_eq!(r.upstream_tls, Some(UpstreamTls::default()));
    let r = parse_route(":80=10.0.0.5:443;upstream-ca=/c/ca.pem;upstream-name=db.test").unwrap();
    let up = r.upstream_tls.unwrap();
    assert_eq!((up.ca.as_deref(), up.name.as_deref(), up.insecure), (Some("/c/ca.pem"), Some("db.test"), false));
    assert!(parse_route(":80=a:443;upstream-insecure").unwrap().upstream_tls.is_some_and(|u| u.insecure));
}

#[test]
fn bad_routes_say_what_is_wrong() {
    for (spec, want) in [
        ("0.0.0.0:80", "no '='"),
        ("nowhere=a:1", "bad listen address \"nowhere\""),
        (":80=", "no upstream (an empty pool)"),
        (":80=;policy=rr", "no upstream"),
        (":80=a:1,b", "bad upstream \"b\""),
        (":80=a:1;allow=10.0.0.0/33", "bad CIDR \"10.0.0.0/33\""),
        (":80=a:1;deny=10.0.0.x", "bad CIDR \"10.0.0.x\""),
        (":80=a:1;allow=", "an empty address list"),
        (":80=a:1;policy=random", "bad policy \"random\""),
        (":80=a:1;send-proxy=v3", "bad send-proxy \"v3\""),
        (":80=a:1;color=blue", "unknown option \"color\""),
        (":80=a:1;sni=a*.test", "bad name \"a*.test\""),
        (":80=a:1;host=", "bad name \"\""),
        (":80=a:1;alpn=h2,", "bad alpn \"\""),
        (":443=a:1;cert=c.pem", "cert= without key="),
        (":443=a:1;key=k.pem", "key= without cert="),
        (":443=a:1;cert=;key=k.pem", "cert= needs a PEM file's path"),
        (":443=a:1;cert=c.pem;key=k.pem;host=x.test", "host= reads plain HTTP"),
        (":3128=forward;to=*;cert=c.pem;key=k.pem", "cert= and key= apply to a relay route"),
        (":3128=forward;to=*;upstream-tls", "upstream-tls applies to a relay route"),
        (":80=a:1;upstream-ca=", "upstream-ca= needs a value"),
        ("127.0.0.1:53=dns;to=a.test;ports=53", "ports does not apply to a DNS route"),
        ("127.0.0.1:53=dns;to=a.test;auth=u:p", "auth does not apply to a DNS route"),
        ("127.0.0.1:53=dns;to=a.test;transparent=443", "transparent does not apply to a DNS route"),
        ("127.0.0.1:53=dns;to=a.test;parent=http://p:3128", "parent does not apply to a DNS route"),
        ("127.0.0.1:53=dns;to=a.test;send-proxy=v2", "a DNS route takes to=, not-to=, to-net=, report, ask, ask-timeout=, underscore, allow= and deny= only"),
        ("127.0.0.1:53=dns;to=a.test;sni=a.test", "a DNS route takes"),
    ] {
        let e = parse_route(spec).expect_err(spec);
        assert!(e.starts_with(want), "{spec}: got {e:?}, want {want:?}");
    }
}

#[test]
#[cfg(feature = "tls")]
fn upstream_tls_takes_the_system_roots_or_says_where_it_looked() {
    let spec = RouteSpec { origin: "--route".into(), ..parse_route(":80=db.test:443;upstream-tls").unwrap() };
    let bundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];
    match (bundles.iter().any(|f| std::path::Path::new(f).exists()), spec.load_tls().map(|(_, o)| o)) {
        (true, Ok(Some(origin))) => assert_eq!(origin.name, rustls::pki_types::ServerName::try_from("db.test").unwrap()),
        (false, Err(e)) => assert!(e.contains("no system CA bundle is readable") && e.contains("upstream-ca="), "{e}"),
        (found, other) => panic!("bundle found: {found}, got {:?}", other.map(|o| o.is_some())),
    }
    let named = parse_route(":80=10.0.0.5:443;upstream-insecure;upstream-name=db.test").unwrap();
    let origin = named.load_tls().unwrap().1.unwrap();
    assert_eq!(origin.name, rustls::pki_types::ServerName::try_from("db.test").unwrap(), "upstream-name= wins over the address");
    let bad = parse_route(":80=a:443;upstream-insecure;upstream-name=not a name").unwrap();
    assert!(bad.load_tls().is_err_and(|e| e.contains("is not a DNS name or an IP address")));
}

#[test]
fn a_dns_route_takes_the_allowlist_options() {
    let r = parse_route("127.0.0.1:3053=dns;to=*.github.com;not-to=evil.github.com;to-net=0.0.0.0/0;report;allow=127.0.0.0/8").unwrap();
    let f = r.forward.unwrap();
    assert!(f.dns && f.report && f.to.len() == 1 && f.not_to.len() == 1 && f.nets.len() == 1);
    assert!(r.upstreams.is_empty()); // the options it refuses: in the table of bad routes above
    // As a forward route: no accidental open resolver off loopback.
    let open = parse_route("0.0.0.0:53=dns;to=").map(|r| vec![r]);
    assert!(open.is_err() || doors(&open.unwrap()).is_err());
    let open = vec![RouteSpec { origin: "x".into(), ..parse_route("0.0.0.0:53=dns;report").unwrap() }];
    assert!(doors(&open).unwrap_err().contains("open proxy"));
}

#[test]
fn a_udp_route_takes_its_flow_options_and_nothing_it_cannot_do() {
    let r = parse_route("udp:127.0.0.1:5353=a:53,b:53;idle=5s;flows=10;policy=rr;allow=10.0.0.0/8").unwrap();
    assert_eq!(r.udp, Some(Udp { idle: Duration::from_secs(5), flows: 10 }));
    assert_eq!((r.upstreams.len(), r.policy), (2, Policy::RoundRobin));
    assert_eq!(parse_route("udp::53=a:53").unwrap().udp, Some(Udp::default()));
    assert_eq!(parse_route("tcp::53=a:53").unwrap().udp, None);
    for (rule, want) in [
        ("udp::53=a:53;send-proxy=v2", "a UDP route takes policy="),
        ("udp::53=a:53;sni=x.test", "a UDP route takes policy="),
        ("udp::53=forward;to=x.test", "forward and dns are TCP routes"),
        ("udp::53=a:53;idle=0", "bad idle"),
        ("udp::53=a:53;flows=0", "bad flows"),
        ("udp::53=a:53;flows=100000", "bad flows"),
        (":53=a:53;idle=5s", "idle applies to a UDP route"),
    ] {
        let e = parse_rule(rule).unwrap_err();
        assert!(e.contains(want), "{rule}: {e}");
    }
    // UDP and TCP on one port are two doors and two identities.
    let both: Vec<RouteSpec> = ["udp:127.0.0.1:53=a:53", "127.0.0.1:53=a:53"].iter().flat_map(|r| parse_rule(r).unwrap()).collect();
    assert_eq!(doors(&both).unwrap(), vec![vec![0], vec![1]]);
    let d = diff(&both[..1], &both[1..]);
    assert_eq!((d.added, d.removed), (vec![0], vec![0]));
}

#[test]
fn a_range_becomes_one_route_per_port_offsets_kept() {
    let routes = parse_rule("127.0.0.1:20000-20002=b:30000-30002,c:9;policy=rr").unwrap();
    let got: Vec<(u16, Vec<String>)> = routes.iter().map(|r| (r.listen.port(), r.upstreams.iter().map(|u| u.to_string()).collect())).collect();
    assert_eq!(
        got,
        vec![(20000, vec!["b:30000".into(), "c:9".into()]), (20001, vec!["b:30001".into(), "c:9".into()]), (20002, vec!["b:30002".into(), "c:9".into()])]
    );
    assert!(routes.iter().all(|r| r.policy == Policy::RoundRobin));
    let udp = parse_rule("udp:[::1]:7000-7009=b:7000-7009").unwrap();
    assert_eq!((udp.len(), udp[9].listen.port(), udp[9].udp.is_some()), (10, 7009, true));
    assert_eq!(parse_rule("127.0.0.1:5-5=b:6").unwrap().len(), 1);
    assert_eq!(parse_rule(&format!("127.0.0.1:1000-{}=b:1", 1000 + MAX_RANGE - 1)).unwrap().len(), MAX_RANGE as usize);
    for (rule, want) in [
        (format!("127.0.0.1:1000-{}=b:1", 1000 + MAX_RANGE), "one rule may open at most 1024"),
        ("127.0.0.1:20000-20002=b:30000-30005".into(), "has 6 ports and the listen range 3"),
        ("127.0.0.1:20002-20000=b:1".into(), "bad port range"),
        ("127.0.0.1:0-3=b:1".into(), "bad port range"),
        ("127.0.0.1:20000-x=b:1".into(), "bad listen address"),
        ("127.0.0.1:20000-20001=b:5-x".into(), "bad upstream range"),
        ("127.0.0.1:20000-20001=forward;to=x.test".into(), "a port range applies to relay routes"),
        ("127.0.0.1:20000-20001=b:65535-65536".into(), "bad upstream range"),
    ] {
        let e = parse_rule(&rule).unwrap_err();
        assert!(e.contains(want), "{rule}: {e}");
    }
}

#[test]
#[cfg(not(feature = "tls"))]
fn a_build_without_tls_refuses_a_route_that_asks_for_it_in_one_line() {
    for rule in [":8443=a:1;cert=/c/app.pem;key=/c/app.key", ":5432=db:5432;upstream-tls"] {
        let route = RouteSpec { origin: "--route".into(), ..parse_route(rule).unwrap() };
        let e = route.load_tls().err().unwrap_or_else(|| panic!("{rule} loads without TLS"));
        assert!(e.starts_with("--route: this build has no TLS (it was built without the `tls` feature)") && !e.contains('\n'), "{rule}: {e}");
    }
    assert!(RouteSpec { origin: "--route".into(), ..parse_route(":80=a:1").unwrap() }.load_tls().is_ok_and(|(s, o)| s.is_none() && o.is_none()));
}

#[test]
fn underscore_lets_names_hold_it_and_a_to_that_needs_it_says_so() {
    assert!(!parse_route("127.0.0.1:3128=forward;to=*.test").unwrap().forward.unwrap().underscore);
    assert!(parse_route("127.0.0.1:3128=forward;to=_acme.a.test;underscore").unwrap().forward.unwrap().underscore);
    assert!(parse_route("127.0.0.1:3053=dns;to=*.test;underscore").unwrap().forward.unwrap().underscore);
    let err = parse_route("127.0.0.1:3128=forward;to=my_host.test").unwrap_err();
    assert!(err.contains("to=my_host.test holds '_'") && err.contains(";underscore"), "{err}");
    assert!(parse_route("127.0.0.1:3128=forward;to=*;not-to=my_host.test").is_ok(), "a not-to= with '_' refuses nothing more");
    assert!(parse_route("127.0.0.1:8080=a:80;underscore").unwrap_err().contains("applies to a forward route"));
}

#[test]
fn forward_routes_share_an_address_one_policy_per_client() {
    let routes = |specs: &[&str]| specs.iter().map(|s| parse_route(s).unwrap()).collect::<Vec<_>>();
    let two = routes(&["0.0.0.0:3128=forward;client=app;from=10.0.0.2;to=a.test", "0.0.0.0:3128=forward;client=others;to=b.test"]);
    assert_eq!(doors(&two).unwrap(), vec![vec![0, 1]]);
    let e = |specs: &[&str]| doors(&routes(specs)).unwrap_err();
    assert!(e(&["0.0.0.0:3128=forward;from=10.0.0.2;to=a.test", "0.0.0.0:3128=forward;client=b;to=b.test"]).contains("give each its own client=NAME"));
    assert!(e(&["0.0.0.0:3128=forward;client=a;from=10.0.0.2;to=a.test", "0.0.0.0:3128=forward;client=a;from=10.0.0.3;to=b.test"]).contains("give each its own client=NAME"));
    assert!(e(&["0.0.0.0:3128=forward;client=a;to=a.test", "0.0.0.0:3128=forward;client=b;to=b.test"]).contains("only one may be the default"));
    assert!(e(&["0.0.0.0:3128=forward;client=a;from=10.0.0.2;to=a.test;allow=10.0.0.0/8", "0.0.0.0:3128=forward;client=b;to=b.test"]).contains("differ in allow="));
    assert!(e(&["127.0.0.1:53=dns;to=a.test", "127.0.0.1:53=dns;to=b.test"]).contains("a listen address of its own"));
    assert!(e(&["0.0.0.0:3128=forward;client=a;uid=1000;to=a.test"]).contains("uid= picks clients of a Unix listener"));
    assert!(e(&["0.0.0.0:3128=forward;client=a;from=10.0.0.2;accept-proxy;to=a.test"]).contains("without accept-proxy"));
    assert!(parse_route("127.0.0.1:53=dns;from=10.0.0.2;to=a.test").unwrap_err().contains("does not apply to a DNS route"));
    assert!(parse_route(":80=a:1;client=x").unwrap_err().contains("applies to a forward route"));
    // uid= policies share a Unix socket; DNS and transparent= stay on TCP.
    let unix = routes(&["unix:/run/w.sock=forward;client=a;uid=1000;to=a.test", "unix:/run/w.sock=forward;client=b;uid=1001;to=b.test"]);
    assert_eq!(doors(&unix).unwrap(), vec![vec![0, 1]]);
    assert!(parse_route("unix:/run/w.sock=dns;to=a.test").unwrap_err().contains("need a TCP listener"));
    assert!(parse_route("unix:/run/w.sock=forward;to=a.test;transparent=443").unwrap_err().contains("need a TCP listener"));
    // Routes are told apart by client= in a reload: a changed list is a
    // change of that client's route, not another route.
    let changed = routes(&["0.0.0.0:3128=forward;client=app;from=10.0.0.2;to=c.test", "0.0.0.0:3128=forward;client=others;to=b.test"]);
    let d = diff(&two, &changed);
    assert_eq!((d.changed, d.kept, d.added, d.removed), (vec![(0, 0)], vec![(1, 1)], vec![], vec![]));
}

#[test]
fn a_login_tells_clients_apart_where_an_address_cannot() {
    let routes = |specs: &[&str]| specs.iter().map(|s| parse_route(s).unwrap()).collect::<Vec<_>>();
    let logins = routes(&["0.0.0.0:3128=forward;client=a;auth=a:pw1;to=a.test", "0.0.0.0:3128=forward;client=b;auth=b:pw2;to=b.test", "0.0.0.0:3128=forward;client=c;to=c.test"]);
    assert!(logins.iter().take(2).all(|r| r.forward.as_ref().unwrap().identity.login));
    assert_eq!(doors(&logins).unwrap(), vec![vec![0, 1, 2]], "two logins and a default");
    let same = routes(&["0.0.0.0:3128=forward;client=a;auth=x:pw;to=a.test", "0.0.0.0:3128=forward;client=b;auth=x:pw;to=b.test"]);
    assert!(doors(&same).unwrap_err().contains("the same auth="));
    // A forward proxy on a Unix socket, told apart by uid=; not by from=.
    assert!(doors(&routes(&["unix:/tmp/w.sock=forward;client=a;uid=1000;to=a.test", "unix:/tmp/w.sock=forward;client=b;uid=1001;to=b.test"])).is_ok());
    assert!(parse_route("unix:/tmp/w.sock=forward;client=a;from=10.0.0.1;to=a.test").unwrap_err().contains("need a TCP listener"));
    assert!(parse_route("unix:/tmp/w.sock=dns;to=a.test").is_err());
}
