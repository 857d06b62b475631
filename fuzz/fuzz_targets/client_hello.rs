//! Arbitrary bytes as the first bytes of a client on a port routed by TLS
//! server name. The parser must never panic, and must decide as the loop
//! sees bytes arrive: whatever it concluded from a prefix (a name, or a
//! refusal) stays true once more bytes come.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::client_hello::{parse, MAX_HELLO};
use wasiter::front::Failure;

fuzz_target!(|data: &[u8]| {
    let full = parse(data);
    if let Err(Failure::BadClientHello(why) | Failure::TooLarge(why) | Failure::BadRequest(why)) = &full {
        assert!(!why.contains('\n'), "one line: {why:?}");
    }
    if let Ok(Some(hello)) = &full {
        if let Some(name) = &hello.server_name {
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()), "a name fit for a log line: {name:?}");
        }
    }
    // A split point from the data itself: the prefix's verdict must hold.
    let cut = data.first().map_or(0, |&b| (b as usize * 97) % (data.len() + 1));
    match parse(&data[..cut]) {
        Ok(None) => {}
        Ok(Some(early)) => assert_eq!(full, Ok(Some(early)), "bytes after the ClientHello change nothing"),
        Err(e) => assert_eq!(full, Err(e), "a refusal is final"),
    }
    assert!(MAX_HELLO >= 16 * 1024);
});
