//! The policy's checks, rule by rule.

use super::*;

mod checks {
    use super::*;

    fn fwd(to: &[&str], not_to: &[&str], nets: &[&str], ports: &[u16]) -> Forward {
        let pats = |l: &[&str]| l.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        Forward { to: pats(to), not_to: pats(not_to), nets: nets.iter().map(|n| n.parse().unwrap()).collect(), ports: ports.to_vec(), ..Forward::default() }
    }

    #[test]
    fn names_and_ports_are_checked_before_any_connection() {
        let f = fwd(&["pypi.org", "*.pythonhosted.org"], &["bad.pythonhosted.org"], &[], &[]);
        assert_eq!(f.check_name("pypi.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert_eq!(f.check_name("files.pythonhosted.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert!(f.check_name("bad.pythonhosted.org", 443, true).unwrap_err().text.contains("not-to=bad.pythonhosted.org"));
        assert!(f.check_name("evil.test", 443, true).unwrap_err().text.contains("not in to= (allowed: pypi.org,*.pythonhosted.org)"));
        assert!(f.check_name("pypi.org", 22, true).unwrap_err().text.contains("443 for CONNECT"));
        assert_eq!(f.check_name("pypi.org", 80, false), Ok((Decision::Allow, Rule::Listed)), "plain HTTP: port 80");
        assert!(f.check_name("pypi.org", 443, false).is_err());
        let any = fwd(&["*"], &[], &[], &[8443]);
        assert_eq!(any.check_name("x.test", 8443, true), Ok((Decision::Allow, Rule::Listed)));
        assert!(any.check_name("x.test", 443, true).unwrap_err().text.contains("ports: 8443"));
        assert!(Forward::default().check_name("x.test", 443, true).unwrap_err().text.contains("allowed: none"));
    }

    #[test]
    fn ask_mode_asks_only_what_no_rule_decides() {
        let f = Forward { ask: Some(crate::ask::DEFAULT_TIMEOUT), ..fwd(&["pypi.org"], &["evil.test"], &[], &[]) };
        assert_eq!(f.check_name("pypi.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert_eq!(f.check_name("new.test", 443, true), Ok((Decision::Ask, Rule::NotListed)), "not listed: a person is asked");
        assert_eq!(f.check_host("new.test", 0), Ok((Decision::Ask, Rule::NotListed)), "a DNS question too");
        // Refused at once, never asked: what a rule other than to= decides.
        assert_eq!(f.check_name("evil.test", 443, true).unwrap_err().rule, Rule::NotTo);
        assert_eq!(f.check_name("new.test", 22, true).unwrap_err().rule, Rule::Port);
        for literal in ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "2130706433", "0x7f.1"] {
            assert_eq!(f.check_name(literal, 443, true).unwrap_err().rule, Rule::IpLiteral, "{literal}");
        }
        for bad in ["a..b", "-a.test", "a b.test", "é.test"] {
            assert_eq!(f.check_name(bad, 443, true).unwrap_err().rule, Rule::BadName, "{bad}");
        }
    }

    #[test]
    fn resolved_addresses_are_checked_too() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let f = fwd(&["*"], &[], &[], &[]);
        for guarded in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "239.1.1.1"] {
            assert!(f.check_addrs("x.test", 443, &[ip(guarded)]).is_err(), "{guarded}");
        }
        assert_eq!(f.check_addrs("x.test", 443, &[ip("127.0.0.1"), ip("93.184.215.14")]).unwrap(), vec![ip("93.184.215.14")], "the guarded ones are dropped");
        assert!(f.check_addrs("x.test", 443, &[ip("127.0.0.1")]).unwrap_err().text.contains("x.test resolves to 127.0.0.1"));
        let lo = fwd(&["*"], &[], &["127.0.0.0/8"], &[]);
        assert_eq!(lo.check_addrs("x.test", 443, &[ip("127.0.0.1")]).unwrap(), vec![ip("127.0.0.1")]);
        assert!(lo.check_addrs("x.test", 443, &[ip("10.1.2.3")]).unwrap_err().text.contains("to-net=127.0.0.0/8"), "to-net= is the whole list");
    }

    #[test]
    fn every_guarded_range_parses() {
        for g in GUARDED {
            assert!(g.parse::<IpNet>().is_ok(), "{g}: none may be dropped silently");
        }
    }

    #[test]
    fn private_networks_and_ipv4_hidden_in_ipv6_are_refused_by_default() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let f = fwd(&["*"], &[], &[], &[]);
        for refused in [
            "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "198.18.0.1", "192.0.0.8", "255.255.255.255", "240.0.0.1",
            "fd00::1", "fc12::1", "fec0::1",
            "64:ff9b::7f00:1",       // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",    // NAT64 of 169.254.169.254
            "64:ff9b:1::a00:1",      // local-use NAT64
            "2002:7f00:1::1",        // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::",      // 6to4 of 169.254.169.254
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1 (inverted)
            "::7f00:1", "::a00:1",   // IPv4-compatible
            "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
        ] {
            assert!(f.check_addrs("x.test", 443, &[ip(refused)]).is_err(), "{refused}");
        }
        for allowed in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "172.32.0.1", "100.128.0.1"] {
            assert!(f.check_addrs("x.test", 443, &[ip(allowed)]).is_ok(), "{allowed}");
        }
        // to-net= opens exactly what it names.
        let private = fwd(&["*"], &[], &["10.0.0.0/8"], &[]);
        assert!(private.check_addrs("x.test", 443, &[ip("10.1.2.3")]).is_ok());
        assert!(private.check_addrs("x.test", 443, &[ip("192.168.1.1")]).is_err());
    }

    #[test]
    fn an_ip_destination_passes_only_where_a_rule_names_it() {
        let any = fwd(&["*"], &[], &[], &[443]);
        for host in ["93.184.215.14", "10.1.2.3", "::1", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
            assert!(any.check_name(host, 443, true).unwrap_err().text.contains("is an IP address"), "to=* names no address: {host}");
        }
        for odd in ["127.1", "2130706433", "0177.0.0.1", "0x7f.1", "0X7F000001", "a.b.1"] {
            assert!(any.check_name(odd, 443, true).unwrap_err().text.contains("not dotted-quad"), "{odd}");
        }
        assert_eq!(any.check_name("1password.com", 443, true), Ok((Decision::Allow, Rule::Listed)), "a label may start with a digit");
        assert_eq!(fwd(&["93.184.215.14"], &[], &[], &[443]).check_name("93.184.215.14", 443, true), Ok((Decision::Allow, Rule::Listed)));
        // to-net= says where names may lead, never which literals pass: a
        // network opened for one name is not opened to a scan.
        let net = fwd(&["registry.corp"], &[], &["10.0.0.0/8"], &[443]);
        for literal in ["10.1.2.3", "::ffff:10.1.2.3", "10.0.0.1"] {
            assert_eq!(net.check_name(literal, 443, true).unwrap_err().rule, Rule::IpLiteral, "{literal}");
        }
        let cidr = Forward { to_nets: vec!["10.1.2.0/24".parse().unwrap()], ..fwd(&["registry.corp"], &[], &["10.0.0.0/8"], &[443]) };
        assert_eq!(cidr.check_name("10.1.2.3", 443, true), Ok((Decision::Allow, Rule::Listed)), "a network in to= names it");
        assert_eq!(cidr.check_name("::ffff:10.1.2.3", 443, true), Ok((Decision::Allow, Rule::Listed)), "in any spelling");
        assert!(cidr.check_name("10.1.3.3", 443, true).is_err());
        assert!(cidr.check_name("10.1.2.3", 22, true).unwrap_err().text.contains("port 22"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(cidr.check_addrs("10.1.2.3", 443, &[ip("10.1.2.3")]), Ok(vec![ip("10.1.2.3")]), "to= is all a literal needs");
        assert!(fwd(&["10.1.2.3"], &["10.1.2.3"], &[], &[443]).check_name("10.1.2.3", 443, true).is_err(), "not-to= wins");
        assert!(fwd(&["10.1.2.3"], &["::ffff:10.1.2.3"], &[], &[443]).check_name("10.1.2.3", 443, true).is_err(), "in any spelling");
    }
}

mod decisions {
    use super::*;

    fn fwd(to: &[&str], report: bool) -> Forward {
        Forward { to: to.iter().map(|p| Pattern::parse(p).unwrap()).collect(), report, ..Forward::default() }
    }

    #[test]
    fn a_refusal_names_the_destination_the_rule_and_the_fix_on_one_line() {
        let f = Forward { not_to: vec![Pattern::parse("bad.pypi.org").unwrap()], ports: vec![443], ..fwd(&["pypi.org", "*.pypi.org"], false) };
        for (host, port, rule, fix) in [
            ("example.com", 443, Rule::NotListed, "add it to to= (to=...,example.com)"),
            ("files.example.com", 443, Rule::NotListed, "*.example.com"),
            ("bad.pypi.org", 443, Rule::NotTo, "take bad.pypi.org out of not-to="),
            ("pypi.org", 22, Rule::Port, "add 22 to ports="),
            ("10.1.2.3", 443, Rule::IpLiteral, "to=...,10.1.2.3/32"),
        ] {
            let r = f.check_name(host, port, true).unwrap_err();
            assert_eq!(r.rule, rule, "{host}");
            assert!(r.text.starts_with(&format!("{host}:{port} refused (rule {})", rule.id())) && r.text.contains(fix) && !r.text.contains('\n'), "{}", r.text);
        }
        let a = f.check_addrs("pypi.org", 443, &["169.254.169.254".parse().unwrap()]).unwrap_err();
        assert_eq!(a.rule, Rule::Address);
        assert!(a.text.contains("resolves to 169.254.169.254") && a.text.contains("to-net=169.254.169.254/32"), "{}", a.text);
    }

    #[test]
    fn report_mode_lets_unlisted_names_through_as_would_deny_and_nothing_else() {
        let f = Forward { not_to: vec![Pattern::parse("bad.test").unwrap()], ..fwd(&["pypi.org"], true) };
        assert_eq!(f.check_name("pypi.org", 443, true), Ok((Decision::Allow, Rule::Listed)));
        assert_eq!(f.check_name("example.com", 443, true), Ok((Decision::WouldDeny, Rule::NotListed)));
        assert_eq!(f.check_name("bad.test", 443, true).unwrap_err().rule, Rule::NotTo, "not-to= still refuses");
        assert_eq!(f.check_name("example.com", 22, true).unwrap_err().rule, Rule::Port, "so do ports");
        assert_eq!(f.check_name("10.1.2.3", 443, true).unwrap_err().rule, Rule::IpLiteral, "and addresses");
        assert!(f.check_addrs("example.com", 443, &["10.1.2.3".parse().unwrap()]).is_err(), "and the address ranges");
    }
}

mod bad_names {
    use super::*;

    fn fwd(to: &[&str], not_to: &[&str], report: bool, underscore: bool) -> Forward {
        let pats = |l: &[&str]| l.iter().map(|p| Pattern::parse(p).unwrap()).collect();
        Forward { to: pats(to), not_to: pats(not_to), report, underscore, ..Forward::default() }
    }

    #[test]
    fn a_name_no_pattern_was_written_for_is_refused_before_any_pattern_sees_it() {
        let f = fwd(&["*.wild.test"], &["blocked.wild.test"], false, false);
        assert_eq!(f.check_name("blocked.wild.test", 443, true).unwrap_err().rule, Rule::NotTo);
        for (name, why) in [
            ("blocked..wild.test", "empty label"),
            ("blocked.wild.test.", "empty label"), // a second trailing dot, after normalize took one
            (".blocked.wild.test", "empty label"),
            ("x%2eblocked.wild.test", "'%'"),
            ("blocked.wild.test:443", "':'"),
            ("b\u{fc}cher.wild.test", "non-ASCII"),
            ("a_b.wild.test", "does not allow"),
            ("-a.wild.test", "'-'"),
        ] {
            let r = f.check_name(name, 443, true).unwrap_err();
            assert_eq!(r.rule, Rule::BadName, "{name}");
            assert!(r.text.contains("(rule bad-name)") && r.text.contains("is not a host name") && r.text.contains(why), "{name}: {}", r.text);
            assert!(!r.text.contains('\n'), "one line");
        }
        let long = format!("{}.wild.test", "a".repeat(64));
        assert!(f.check_name(&long, 443, true).unwrap_err().text.contains("label of 64 octets"));
        let deep = format!("{}wild.test", "a.".repeat(125));
        assert!(f.check_name(&deep, 443, true).unwrap_err().text.contains("octets (at most 253)"));
        assert_eq!(f.check_host("xn--bcher-kva.wild.test", 0), Ok((Decision::Allow, Rule::Listed)), "an A-label is a name like any other");
    }

    #[test]
    fn report_mode_and_to_star_do_not_let_a_bad_name_through() {
        for f in [fwd(&["*"], &[], false, false), fwd(&[], &[], true, false)] {
            assert_eq!(f.check_host("a..test", 0).unwrap_err().rule, Rule::BadName);
        }
        let u = fwd(&["*.test"], &[], false, true);
        assert_eq!(u.check_host("_acme.a.test", 0), Ok((Decision::Allow, Rule::Listed)), "underscore: '_' allowed");
        assert_eq!(u.check_host("a..test", 0).unwrap_err().rule, Rule::BadName, "and nothing else");
    }

    #[test]
    fn ip_literals_still_meet_their_own_rule() {
        let f = fwd(&["*"], &[], false, false);
        assert_eq!(f.check_host("::1", 0).unwrap_err().rule, Rule::IpLiteral);
        assert_eq!(f.check_host("127.1", 0).unwrap_err().rule, Rule::IpLiteral);
    }
}
