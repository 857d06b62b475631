//! The file, the derived placeholders and the redactor.

use super::placeholder::{base64, unbase64};
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

pub fn parse(text: &str) -> Result<Secrets, String> {
    Secrets::parse(text, "keys", &no_env)
}

/// Derivation needs SHA-256: in the build without TLS, it says so instead.
fn derived(text: &str) -> Option<Secrets> {
    match crate::tls::sha256(b"") {
        Ok(_) => Some(parse(text).unwrap()),
        Err(_) => {
            assert!(parse(text).unwrap_err().contains("--secrets needs the default build"));
            None
        }
    }
}

const GHP: &str = "ghp_R2d2C3poLuke4Skywalker0123456789ab";

#[test]
fn every_line_of_the_file_is_checked_and_an_error_names_its_line() {
    let cases = [
        ("9X value=abcdefgh1 to=a.test as=bearer placeholder=zzzzzzzz9", "keys:1: \"9X\" is no NAME"),
        ("X value=abcdefgh1 to=a.test as=bearer placeholder=zzzzzzzz9 extra", "keys:1: X: \"extra\" is no KEY=VALUE"),
        ("X value=abcdefgh1 to=a.test as=bearer colour=red", "keys:1: X: unknown option colour="),
        ("X value=abcdefgh1 value=abcdefgh2 to=a.test as=bearer", "keys:1: X: value= given twice"),
        ("X to=a.test as=bearer", "keys:1: X: no value="),
        ("X value=abcdefgh1 as=bearer placeholder=zzzzzzzz9", "keys:1: X: no to="),
        ("X value=abcdefgh1 to=a.test placeholder=zzzzzzzz9", "keys:1: X: no as="),
        ("X value=env:NOPE to=a.test as=bearer", "keys:1: X: value=env:NOPE, but NOPE is not set in the proxy's environment"),
        ("X value=short to=a.test as=bearer placeholder=zzzzz", "keys:1: X: its value has 5 characters (at least 8"),
        ("X value=abcdefgh1 to=a..test as=bearer placeholder=zzzzzzzz9", "keys:1: X: to=a..test: bad name"),
        ("X value=abcdefgh1 to=* as=bearer placeholder=zzzzzzzz9", "keys:1: X: to=*: * would send the value anywhere"),
        ("X value=abcdefgh1 to=a.test as=digest placeholder=zzzzzzzz9", "keys:1: X: as=digest: expected as=bearer"),
        ("X value=abcdefgh1 to=a.test as=header: placeholder=zzzzzzzz9", "keys:1: X: as=header:: expected"),
        ("X value=abcdefgh1 to=a.test as=header:Host placeholder=zzzzzzzz9", "keys:1: X: as=header:Host: that header frames or routes"),
        ("X value=abcdefgh1 to=a.test as=bearer placeholder=zzz", "keys:1: X: its placeholder has 3 characters, its value 9"),
        ("X value=abcdefgh1 to=a.test as=bearer placeholder=ABCDEFGH1", "keys:1: X: its placeholder is its value"),
        ("X value=abcdefgh1 to=a.test as=bearer", "keys:1: X: a value of 9 characters needs placeholder="),
        ("\n# c\nX value=abcdefgh1 to=a.test as=bearer placeholder=zzzzzzzz9\nX value=abcdefgh2 to=a.test as=bearer placeholder=yyyyyyyy9", "keys:4: X: its NAME is another entry's"),
        ("X value=abcdefgh1 to=a.test as=bearer placeholder=zzzzzzzz9\nY value=abcdefgh2 to=a.test as=bearer placeholder=ZZZZZZZZ9", "keys:2: Y: its placeholder is X's"),
        ("X value=abcdefgh1 to=a.test as=bearer placeholder=zzzzzzzz9\nY value=zzzzzzzz9 to=a.test as=bearer placeholder=yyyyyyyy9", "keys:2: Y: a placeholder of one is the value of the other (X)"),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.starts_with(want), "{text:?}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    let env = |var: &str| (var == "SPACE").then(|| "has a space".to_string());
    let e = Secrets::parse("X value=env:SPACE to=a.test as=bearer", "f", &env).unwrap_err();
    assert_eq!(e, "f:1: X: its value (env:SPACE) holds the byte 0x20 (visible ASCII only: it goes in a header)");
    let e = parse("X value=abcdéfgh1 to=a.test as=bearer placeholder=zzzzzzzzzz").unwrap_err();
    assert!(e.contains("holds a non-ASCII character"), "{e}");
}

#[test]
fn an_entry_reads_as_written() {
    let env = |var: &str| (var == "GH").then(|| "s3cr3t-value".to_string());
    let text = "# keys\n\n  GITHUB_TOKEN value=env:GH to=api.github.com,*.githubusercontent.com as=bearer placeholder=P1aceholder9  # the CI's\n\
                NPM value=npm_abcdefgh to=registry.npmjs.org as=header:X-Api-Key placeholder=npm_zzzzzzzz\n\
                GIT value=abcdefgh to=github.com as=basic placeholder=hgfedcba\n";
    let s = Secrets::parse(text, "f", &env).unwrap();
    let [gh, npm, git] = s.entries() else { panic!() };
    assert_eq!((gh.name.as_str(), gh.value.as_slice(), gh.placeholder.as_slice(), &gh.place), ("GITHUB_TOKEN", &b"s3cr3t-value"[..], &b"P1aceholder9"[..], &Place::Bearer));
    assert!(gh.goes_to("api.github.com") && gh.goes_to("raw.githubusercontent.com") && !gh.goes_to("github.com"));
    assert_eq!(gh.names(), "api.github.com, *.githubusercontent.com");
    assert_eq!(npm.place, Place::Header("X-Api-Key".into()));
    assert_eq!(git.place, Place::Basic);
    assert_eq!(s.placeholders(), [("GITHUB_TOKEN".into(), "P1aceholder9".into()), ("NPM".into(), "npm_zzzzzzzz".into()), ("GIT".into(), "hgfedcba".into())]);
    assert!(!s.is_empty() && parse("# nothing\n").unwrap().is_empty());
}

#[test]
fn a_derived_placeholder_keeps_the_prefix_and_the_classes_and_is_the_same_every_time() {
    let values = [GHP, "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz", "npm_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "glpat-AbCdEfGhIjKlMnOpQrSt"];
    let prefixes = ["ghp_", "github_pat_", "sk-ant-api03-", "npm_", "glpat-"];
    for (value, prefix) in values.iter().zip(prefixes) {
        let text = format!("T value={value} to=a.test as=bearer");
        let Some(s) = derived(&text) else { return };
        let p = &s.entries()[0].placeholder;
        assert_eq!(p.len(), value.len());
        assert!(p.starts_with(prefix.as_bytes()), "{}", String::from_utf8_lossy(p));
        let class = |b: u8| if b.is_ascii_digit() { 0 } else if b.is_ascii_lowercase() { 1 } else if b.is_ascii_uppercase() { 2 } else { b };
        for (a, b) in value.bytes().zip(p.iter().copied()) {
            assert_eq!(class(a), class(b), "{value} {}", String::from_utf8_lossy(p));
        }
        for (a, b) in value.bytes().zip(p.iter().copied()).skip(prefix.len()) {
            assert!(a != b || !a.is_ascii_alphanumeric(), "every letter and digit past the prefix differs: {}", String::from_utf8_lossy(p));
        }
        assert_eq!(parse(&text).unwrap().entries()[0].placeholder, *p, "deterministic");
        let other = parse(&format!("U value={value} to=a.test as=bearer")).unwrap();
        assert_ne!(other.entries()[0].placeholder, *p, "another NAME, another placeholder");
    }
    // The kept prefix is the last _ or - among the first 16 characters only.
    assert_eq!(super::placeholder::prefix_len(b"abcdefghijklmnop_rest"), 0);
    assert_eq!(super::placeholder::prefix_len(b"a-b_cdefghijklmno-rest"), 4);
    // Too short, or too little to draw.
    let e = parse("T value=ghp_0123456789abcde to=a.test as=bearer").unwrap_err();
    assert!(e.contains("a value of 19 characters needs placeholder="), "{e}");
    if crate::tls::sha256(b"").is_ok() {
        let e = parse("T value=ab-____________-______cd to=a.test as=bearer").unwrap_err();
        assert!(e.contains("needs placeholder= (too few"), "{e}");
    }
}

#[test]
fn base64_both_ways() {
    for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("user:ghp_x", "dXNlcjpnaHBfeA==")] {
        assert_eq!(base64(plain.as_bytes()), coded.as_bytes());
        assert_eq!(unbase64(coded.as_bytes()).unwrap(), plain.as_bytes());
        assert_eq!(unbase64(coded.trim_end_matches('=').as_bytes()).unwrap(), plain.as_bytes(), "padding optional");
    }
    assert_eq!(unbase64(b"Pz8_"), unbase64(b"Pz8/"), "URL-safe too");
    assert_eq!(unbase64(b"not base64!"), None);
}

fn one(value: &str, placeholder: &str) -> Secrets {
    parse(&format!("K value={value} to=a.test as=bearer placeholder={placeholder}")).unwrap()
}

/// `stream` through a fresh redactor in reads that end at `cuts`.
fn through(s: &Secrets, echoes: &[(Vec<u8>, Vec<u8>)], stream: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut r = s.redactor(echoes.to_vec());
    let mut out = stream.to_vec();
    let mut from = 0;
    for &cut in cuts.iter().chain([&stream.len()]) {
        r.redact(&mut out[from..cut]);
        assert!(r.carry.len() < r.longest.max(1), "memory: {} bytes held", r.carry.len());
        from = cut;
    }
    out
}

#[test]
fn the_redactor_replaces_every_value_whatever_the_reads() {
    let (value, placeholder) = ("tok_SECRETvalue42", "tok_PLACEHOLDER17");
    let s = one(value, placeholder);
    let stream = format!("HTTP/1.1 200 OK\r\nX-Echo: Bearer {value}\r\n\r\n{{\"t\":\"{value}\",\"u\":\"tok_\"}}{value}");
    let want = stream.replace(value, placeholder);
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let got = through(&s, &[], stream.as_bytes(), &[a, b]);
            assert_eq!(String::from_utf8_lossy(&got), want, "reads cut at {a} and {b}");
        }
    }
    // One byte a read: the worst case for the carry.
    let cuts: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(String::from_utf8_lossy(&through(&s, &[], stream.as_bytes(), &cuts)), want);
    // A stream with no value passes byte for byte, however cut (a piece of
    // the value no longer than its common prefix, "tok_", is no value).
    let clean = b"HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\ntok_tok_ SECRETvalue42 tok_";
    for a in 0..=clean.len() {
        assert_eq!(through(&s, &[], clean, &[a]), clean, "cut at {a}");
    }
    // A read that ends in a piece of a value (past the common prefix) has
    // it replaced at once, though no value follows: no byte of it leaves.
    assert_eq!(through(&s, &[], b"..tok_SECR", &[]), b"..tok_PLAC");
}

#[test]
fn echoes_and_overlapping_values_are_replaced_too() {
    let s = one("abcabcabcX", "zyxwvutsrQ");
    assert_eq!(through(&s, &[], b"abcabcabcabcX!", &[]), b"abczyxwvutsrQ!");
    let echo = (b"dXNlcjpzM2NyM3Q=".to_vec(), b"dXNlcjpwbGFjZWg=".to_vec());
    let got = through(&s, std::slice::from_ref(&echo), b"Authorization: Basic dXNlcjpzM2NyM3Q=\r\n", &[30]);
    assert_eq!(got, b"Authorization: Basic dXNlcjpwbGFjZWg=\r\n");
}

#[test]
fn a_run_of_a_repeated_value_becomes_placeholders_not_one_byte_over_and_over() {
    // The fuzzer's find: overlapping matches written one over another left
    // runs of the placeholder's first byte, which can spell such a value.
    let value = "h".repeat(23);
    let placeholder = format!("h{}", "q".repeat(22));
    let s = one(&value, &placeholder);
    let stream = format!("x{}y", "h".repeat(50));
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let got = String::from_utf8(through(&s, &[], stream.as_bytes(), &[a, b])).unwrap();
            assert!(!got.contains(&value), "cut at {a}, {b}: {got}");
            assert!(got.starts_with(&format!("x{placeholder}{placeholder}")), "cut at {a}, {b}: {got}");
        }
    }
}

#[test]
fn a_value_inside_another_values_match_cannot_hide_one_after_it() {
    // The fuzzer's second find: matches taken value by value let A match
    // inside B's, and skip the A that followed B.
    let (a, b) = ("a".repeat(23), format!("hh{}", "a".repeat(22)));
    let text = format!("A value={a} to=a.test as=bearer placeholder={}\nB value={b} to=a.test as=bearer placeholder={}", "q".repeat(23), "z".repeat(24));
    let s = parse(&text).unwrap();
    let stream = format!("{b}{a}!");
    for cut in 0..=stream.len() {
        let got = String::from_utf8(through(&s, &[], stream.as_bytes(), &[cut])).unwrap();
        // A read that ends in pieces of both has both replaced at once
        // (zzq for hha), each in its own alignment: no byte of either left.
        assert!(!got.contains(['a', 'h']) && got.ends_with(&format!("{}!", "q".repeat(23))), "cut at {cut}: {got}");
        if cut == 0 || cut >= b.len() {
            assert_eq!(got, format!("{}{}!", "z".repeat(24), "q".repeat(23)), "cut at {cut}");
        }
    }
}

#[test]
fn no_value_byte_past_the_common_prefix_leaves_at_any_cut() {
    // Every split of a value among three reads, with bytes either side:
    // the output holds no value byte where it differs from the placeholder.
    let (value, placeholder) = ("ghp_abcdefghijKLMNOP0123", "ghp_qrstuvwxyzABCDEF4567");
    let s = one(value, placeholder);
    let stream = format!("xx{value}yy");
    for a in 0..stream.len() {
        for b in a..stream.len() {
            let got = through(&s, &[], stream.as_bytes(), &[a, b]);
            assert_eq!(&got[2..2 + value.len()], placeholder.as_bytes(), "cut at {a}, {b}");
            assert_eq!((&got[..2], &got[got.len() - 2..]), (&b"xx"[..], &b"yy"[..]));
        }
    }
}

#[test]
fn a_log_line_never_carries_a_value() {
    let s = one("s3cr3t-value", "p1aceholder9");
    assert_eq!(s.redact_text("sent s3cr3t-value and s3cr3t-value"), "sent p1aceholder9 and p1aceholder9");
    assert!(matches!(s.redact_text("nothing here"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn the_file_must_be_private_before_it_is_read() {
    let path = std::env::temp_dir().join(format!("wasiter-secrets-{}", std::process::id()));
    std::fs::write(&path, "K value=s3cr3t-value to=a.test as=bearer placeholder=p1aceholder9\n").unwrap();
    let name = path.display().to_string();
    let private = crate::sys::check_private(&name);
    let loaded = Secrets::load(&name, &no_env);
    match private {
        Ok(()) => assert_eq!(loaded.unwrap().entries().len(), 1),
        Err(e) => assert_eq!(loaded.unwrap_err(), e),
    }
    let _ = std::fs::remove_file(&path);
}

