//! Arbitrary bytes as the first bytes of a client on a port routed by HTTP
//! Host. The parser must never panic, must keep to its size limit, and
//! must decide as the loop sees bytes arrive: what it concluded from a
//! prefix stays true once more bytes come.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::http_head::{parse, without_port, MAX_HEAD};
use wasiter::front::Failure;

fuzz_target!(|data: &[u8]| {
    let full = parse(data);
    match &full {
        Ok(None) => assert!(data.len() <= MAX_HEAD, "more than the limit is never 'wait for more'"),
        Ok(Some(head)) => {
            if let Some(host) = &head.host {
                assert!(!host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()), "{host:?}");
                let bare = without_port(host);
                assert!(host.contains(bare), "the name is part of the header");
            }
        }
        Err(Failure::BadRequest(why) | Failure::TooLarge(why) | Failure::BadClientHello(why)) => {
            assert!(!why.contains('\n'), "one line: {why:?}")
        }
    }
    let cut = data.first().map_or(0, |&b| (b as usize * 97) % (data.len() + 1));
    match parse(&data[..cut]) {
        Ok(None) => {}
        Ok(Some(early)) => assert_eq!(full, Ok(Some(early)), "bytes after the head change nothing"),
        Err(Failure::TooLarge(_)) => assert!(matches!(full, Err(Failure::TooLarge(_)))),
        Err(e) => assert_eq!(full, Err(e), "a refusal is final"),
    }
});
