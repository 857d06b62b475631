//! Arbitrary bytes as a destination's name, as any front takes it (a URL's
//! host, a CONNECT target, Host, SNI, a SOCKS5 name): the one name check
//! (`names::check`) and the policy around it. Nothing may panic; one
//! normalisation is the same as two; a name the policy lets through is a
//! host name (or an address) that matches the patterns as written; and
//! the resolver asks for exactly that name, label for label, or refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::dns::message::{query, Family};
use wasiter::forward::{Forward, Rule};
use wasiter::names::{check, destination_host, normalize, Pattern};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(normalize(&normalize(&text)), normalize(&text), "one normalisation is two");
    let Some(host) = destination_host(&text) else { return };
    assert_eq!(normalize(&host), host, "a destination host is normalized");
    let pats = |l: &[&str]| l.iter().map(|p| Pattern::parse(p).unwrap()).collect();
    let policy = Forward { to: pats(&["*.wild.test", "*"]), not_to: pats(&["blocked.wild.test"]), ..Forward::default() };
    let checked = check(&host, false);
    match policy.check_host(&host, 443) {
        Ok(_) if host.parse::<std::net::IpAddr>().is_err() => {
            assert_eq!(checked, Ok(()), "{host:?} passed the policy without passing the name check");
            assert!(host.len() <= 253 && host.split('.').all(|l| (1..=63).contains(&l.len())), "{host:?}");
            assert!(host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'), "{host:?}");
            assert_ne!(host, "blocked.wild.test");
            // The resolver asks for this name as the policy saw it.
            let bytes = query(7, &host, Family::V4).expect("a checked name can be asked for");
            let asked = simple_dns::Packet::parse(&bytes).unwrap().questions[0].qname.as_bytes().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>().join(".");
            assert_eq!(asked, host, "the resolver asked for another name");
        }
        Ok(_) => {}
        Err(r) => {
            assert!(!r.text.contains('\n'), "one line: {:?}", r.text);
            if checked.is_err() && r.rule != Rule::IpLiteral {
                assert_eq!(r.rule, Rule::BadName, "{host:?}: {:?}", r.text);
            }
        }
    }
    // What the resolver refuses to ask for, no policy can have let through.
    if query(7, &host, Family::V4).is_err() {
        assert!(check(&host, true).is_err() || host.parse::<std::net::IpAddr>().is_ok(), "{host:?}");
    }
});
