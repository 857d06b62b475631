//! Request heads and response streams through `wasiter::secrets` with two
//! entries whose values the input shapes (their placeholders derived, as
//! most files will have them). Marker bytes in the input stand for the
//! entries' placeholders, values and Basic credentials, which the fuzzer
//! could not guess. Nothing may panic; a head `inject` lets through holds
//! no placeholder of an entry that may not go where it goes; the redactor,
//! however the stream is cut, leaves no value (nor a Basic echo) of the
//! stream where it was, and changes no length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::secrets::Secrets;

// Letters and digits: every character of a derived placeholder then differs
// from its value's, so a byte the redactor wrote is never the byte it hid.
const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn b64(bytes: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i)) as usize & 63] } else { b'=' });
        }
    }
    out
}

fn lower_contains(hay: &[u8], needle: &[u8]) -> bool {
    let (hay, needle) = (hay.to_ascii_lowercase(), needle.to_ascii_lowercase());
    hay.windows(needle.len()).any(|w| w == needle.as_slice())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (la, lb) = (20 + data[0] as usize % 28, 20 + data[1] as usize % 28);
    let (host, opened, cuts) = (["a.test", "b.test", "evil.test"][data[2] as usize % 3], data[3] & 1 == 1, data[4] as usize % 8);
    let rest = &data[5..];
    if rest.len() < la + lb {
        return;
    }
    let value = |bytes: &[u8]| bytes.iter().map(|&b| char::from(ALPHABET[b as usize % 62])).collect::<String>();
    let (va, vb) = (value(&rest[..la]), value(&rest[la..la + lb]));
    let text = format!("A value={va} to=a.test as=bearer\nB value={vb} to=b.test,*.b.test as=basic\n");
    let Ok(keys) = Secrets::parse(&text, "fuzz", &|_| None) else { return };
    let [a, b] = keys.entries() else { panic!("two entries") };
    let (pa, pb) = (a.placeholder.clone(), b.placeholder.clone());
    let basic_b = [&b"Basic "[..], &b64(&[&b"u:"[..], &pb].concat())].concat();
    let rest = &rest[la + lb..];
    let (head_part, stream_part) = match rest.iter().position(|&x| x == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    // Markers: 1 A's placeholder, 2 B's, 3 B's Basic credential, 4 A's value, 5 B's value, 6 A's placeholder lower-cased.
    let expand = |part: &[u8]| -> Vec<u8> {
        let mut out = Vec::new();
        for &x in part {
            match x {
                1 => out.extend_from_slice(&pa),
                2 => out.extend_from_slice(&pb),
                3 => out.extend_from_slice(&basic_b),
                4 => out.extend_from_slice(&a.value),
                5 => out.extend_from_slice(&b.value),
                6 => out.extend_from_slice(&pa.to_ascii_lowercase()),
                _ => out.push(x),
            }
        }
        out
    };
    let head = expand(head_part);
    let mut echoes = Vec::new();
    match keys.inject(&head, host, opened) {
        Ok(sent) => {
            let sent = sent.map(|i| {
                for (real, asked) in &i.echoes {
                    assert_eq!(real.len(), asked.len(), "an echo is replaced in place");
                }
                echoes = i.echoes;
                i.head
            });
            let sent = sent.as_deref().unwrap_or(&head);
            for e in keys.entries() {
                if !(opened && e.goes_to(host)) {
                    assert!(!lower_contains(sent, &e.placeholder), "{}'s placeholder let through to {host} (opened: {opened})", e.name);
                }
            }
        }
        Err(leak) => {
            assert!(!leak.why.contains('\n'));
            assert!(!contains(leak.why.as_bytes(), &a.value) && !contains(leak.why.as_bytes(), &b.value), "a value in a leak's words");
        }
    }
    let stream = expand(stream_part);
    let mut out = stream.clone();
    let mut r = keys.redactor(echoes.clone());
    let mut at = 0;
    let mut ends = Vec::new();
    for (i, cut) in stream_part.iter().take(cuts).enumerate() {
        let end = (at + *cut as usize + i).min(out.len());
        r.redact(&mut out[at..end]);
        at = end;
        ends.push(end);
    }
    let cuts = ends;
    r.redact(&mut out[at..]);
    assert_eq!(out.len(), stream.len());
    for secret in [&a.value, &b.value].into_iter().chain(echoes.iter().map(|(real, _)| real)) {
        // A value the stream held is nowhere left as it was. (Placeholder
        // bytes beside stream bytes can spell a value that is not there, as
        // any bytes can: an origin that knows a value can send it encoded
        // however it likes; the redactor stops echoes, not an origin.)
        for (at, w) in out.windows(secret.len()).enumerate() {
            if w == secret.as_slice() && &stream[at..at + secret.len()] == secret.as_slice() {
                let show = |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(40)..(at + secret.len() + 30).min(b.len())]).into_owned();
                panic!("a value left the redactor at {at}: {:?}\nin:  {:?}\nout: {:?}\nA {:?} B {:?} cuts {cuts:?}", String::from_utf8_lossy(secret), show(&stream), show(&out), String::from_utf8_lossy(&a.value), String::from_utf8_lossy(&b.value));
            }
        }
    }
});
