//! Arbitrary request targets and rules through `wasiter::forward::http_rules`.
//! Nothing may panic; a normalized path starts with `/`, holds no dot
//! segment, no `//` and no `\`, and normalizing it again changes nothing;
//! and a target that `a.test/safe/**:GET` allows lands under `/safe` also
//! as a lax server reads it (every `%XX` decoded once, `\` as `/`, segment
//! parameters dropped, dot segments removed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::forward::http_rules::{normalize, parse, HttpRules};

/// The path as a lax server would take it.
fn lax(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default().as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < path.len() {
        let hex = |at: usize| path.get(at).and_then(|&h| char::from(h).to_digit(16));
        match (path[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                decoded.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'\\', ..) => {
                decoded.push(b'/');
                i += 1;
            }
            (b, ..) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/').skip(1) {
        match seg.split(|&b| b == b';').next().unwrap_or_default() {
            b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    String::from_utf8_lossy(&out.join(&b"/"[..])).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(path) = normalize(&text) {
        assert!(path.starts_with('/'), "{path:?}");
        assert!(!path.contains("//") && !path.contains('\\'), "{path:?}");
        assert!(path.split('/').all(|s| s != "." && s != ".."), "{path:?}");
        assert_eq!(normalize(&path).as_deref(), Ok(path.as_str()), "one normalisation is two");
    }
    let _ = parse(&text).map(|r| r.to_string());
    let mut rules = HttpRules::default();
    rules.push(parse("a.test/safe/**:GET").unwrap());
    rules.push(parse("a.test/x/*.git/*:POST").unwrap());
    if rules.check("a.test", "GET", &text).is_ok() {
        let seen = lax(&text);
        assert!(seen == "safe" || seen.starts_with("safe/"), "{text:?} allowed, a lax server reads /{seen}");
    }
    assert!(rules.check("other.test", "DELETE", &text).is_ok());
});
