//! Arbitrary bytes as a datagram arriving at one of the resolver's query
//! sockets (an answer, a stray, a forgery). The parser must never panic,
//! and what it takes as an answer must be to the query asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::dns::message::{parse, Answer, MAX_TTL};
use wasiter::dns::Family;

fuzz_target!(|data: &[u8]| {
    // The id the query would have had: the datagram's own first two bytes
    // half the time, so that the fuzzer gets past the id check.
    let id = match data {
        [a, b, c, ..] if c & 1 == 0 => u16::from_be_bytes([*a, *b]),
        _ => 4242,
    };
    let family = if data.len() % 2 == 0 { Family::V4 } else { Family::V6 };
    match parse(data, id, family) {
        Ok(Answer::Addrs(addrs, ttl)) => {
            assert!(ttl <= MAX_TTL);
            assert!(addrs.iter().all(|a| a.is_ipv4() == (family == Family::V4)), "only the family asked");
        }
        Ok(Answer::NoSuchName(ttl)) => assert!(ttl <= MAX_TTL),
        Ok(_) => {}
        Err(why) => assert!(!why.contains('\n'), "one line: {why:?}"),
    }
});
