//! Arbitrary bytes as what a client of a forward route sends first. The
//! parser must never panic; a head it takes names a destination fit for a
//! log line and a connect, and a plain request it rewrites is a complete
//! head that ends the way HTTP heads end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::proxy_request::{parse, Method};
use wasiter::front::Failure;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(None) => {}
        Ok(Some(req)) => {
            assert!(req.head_len <= data.len());
            assert!(req.port != 0);
            assert!(!req.host.is_empty() && req.host.bytes().all(|b| b.is_ascii_graphic()), "{:?}", req.host);
            if let Method::Http { head, .. } = &req.method {
                assert!(head.ends_with(b"\r\n\r\n"), "a complete head");
                // Host is the target's, once, right after the request line.
                let text = String::from_utf8_lossy(head);
                let hosts = text.lines().filter(|l| l.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("host:"))).count();
                assert_eq!(hosts, 1, "one Host: {text:?}");
                assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("Host: ")), "{text:?}");
            }
        }
        Err(Failure::BadRequest(why) | Failure::TooLarge(why) | Failure::BadClientHello(why)) => {
            assert!(!why.contains('\n'), "one line: {why:?}")
        }
    }
});
