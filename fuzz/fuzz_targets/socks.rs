//! Arbitrary bytes as what a SOCKS5 client of a forward route sends: its
//! greeting, a login, then its request, each taken from what is left as
//! the front takes them. The parsers must never panic, never claim more
//! bytes than they were given, and a request they take names a host fit
//! for the policy, a log line and a connect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::socks::{greeting, login, reply, request, Rep};

fuzz_target!(|data: &[u8]| {
    let one_line = |why: &str| assert!(!why.contains('\n') && !why.is_empty(), "one line: {why:?}");
    let mut rest = data;
    match greeting(rest) {
        Ok(Some((_, used))) => {
            assert!((3..=257).contains(&used) && used <= rest.len());
            rest = &rest[used..];
        }
        Ok(None) => return,
        Err(why) => return one_line(&why),
    }
    // A login, when the bytes look like one (the front asks for it only
    // when the route has auth=).
    if rest.first() == Some(&1) {
        match login(rest) {
            Ok(Some(((user, pass), used))) => {
                assert!(used == 3 + user.len() + pass.len() && used <= rest.len());
                rest = &rest[used..];
            }
            Ok(None) => return,
            Err(why) => return one_line(&why),
        }
    }
    match request(rest) {
        Ok(Some((req, used))) => {
            assert!(used <= rest.len() && used >= 8, "a name of one byte is the shortest: {used}");
            assert!(req.port != 0);
            // Odd names go on to the policy's name check, which must refuse them.
            assert!(!req.host.is_empty() && !req.host.chars().any(|c| c.is_control() || c.is_whitespace()), "{:?}", req.host);
            assert_eq!(req.host, req.host.to_ascii_lowercase());
            let any = wasiter::forward::Forward { to: vec![wasiter::names::Pattern::Any], ..Default::default() };
            if any.check_host(&req.host, req.port).is_ok() && req.host.parse::<std::net::IpAddr>().is_err() {
                assert!(req.host.len() <= 253 && req.host.bytes().all(|b| b.is_ascii_graphic()), "{:?} passed the policy", req.host);
            }
        }
        Ok(None) => {}
        Err((rep, why)) => {
            assert_ne!(rep, Rep::Succeeded);
            one_line(&why);
            let r = reply(rep, None);
            assert_eq!((r.len(), r[0], r[1]), (10, 5, rep as u8));
        }
    }
});
