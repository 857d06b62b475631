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
            if let Method::Http { head } = &req.method {
                assert!(head.ends_with(b"Connection: close\r\n\r\n"));
            }
        }
        Err(Failure::BadRequest(why) | Failure::TooLarge(why) | Failure::BadClientHello(why)) => {
            assert!(!why.contains('\n'), "one line: {why:?}")
        }
    }
});
