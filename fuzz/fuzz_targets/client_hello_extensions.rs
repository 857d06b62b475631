//! Arbitrary bytes as a ClientHello's extension block, in a well-formed
//! ClientHello around it. Against an oracle written here, apart from the
//! parser: a ClientHello is taken only if its extensions add up exactly,
//! no type comes twice, and a server_name extension holds one host_name;
//! the name it reads is that one, the only one a server could act on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::client_hello::{in_records, parse, with_extensions};

/// The extensions as (type, data), if their lengths add up exactly.
fn walk(mut block: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !block.is_empty() {
        if block.len() < 4 {
            return None;
        }
        let kind = u16::from_be_bytes([block[0], block[1]]);
        let len = usize::from(u16::from_be_bytes([block[2], block[3]]));
        let data = block.get(4..4 + len)?;
        out.push((kind, data));
        block = &block[4 + len..];
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let block = &data[..data.len().min(16_000)];
    let got = parse(&in_records(&with_extensions(block), 1 << 14));
    let Ok(Some(hello)) = got else { return };
    let exts = walk(block).expect("taken, so its extensions add up");
    let mut kinds: Vec<u16> = exts.iter().map(|(k, _)| *k).collect();
    kinds.sort_unstable();
    let before = kinds.len();
    kinds.dedup();
    assert_eq!(kinds.len(), before, "two extensions of one type were taken");
    let sni: Vec<&[u8]> = exts.iter().filter(|(k, _)| *k == 0).map(|(_, d)| *d).collect();
    match (sni.as_slice(), &hello.server_name) {
        ([], None) => {}
        ([d], Some(name)) => {
            // list length, then exactly one entry: type 0, length, the name.
            assert_eq!(usize::from(u16::from_be_bytes([d[0], d[1]])), d.len() - 2);
            assert_eq!(d[2], 0, "host_name");
            assert_eq!(usize::from(u16::from_be_bytes([d[3], d[4]])), d.len() - 5, "one entry, nothing after it");
            assert_eq!(&d[5..], name.as_bytes());
        }
        other => panic!("server_name extensions {:?} read as {:?}", other.0, other.1),
    }
});
