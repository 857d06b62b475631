//! Request heads: swapped where `as=` says, refused where a placeholder may
//! not go, untouched otherwise.

use super::placeholder::base64;
use super::tests::parse;
use super::*;

const FILE: &str = "\
GITHUB_TOKEN value=ghp_REALrealREAL0123456789 to=api.github.com as=bearer placeholder=ghp_fakeFAKEfake9876543210
GIT value=ghp_GITgitGIT0123456789abc to=github.com as=basic placeholder=ghp_xyzXYZxyz9876543210zyx
NPM value=npm_NPMnpm0123456789 to=registry.npmjs.org,*.npmjs.org as=header:X-Api-Key placeholder=npm_zzzZZZ9876543210
";

fn keys() -> Secrets {
    parse(FILE).unwrap()
}

fn head(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut h = format!("{line}\r\nHost: x\r\n");
    for x in headers {
        h.push_str(x);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn sent(s: &Secrets, h: &[u8], host: &str) -> String {
    String::from_utf8(s.inject(h, host, true).unwrap().unwrap().head).unwrap()
}

#[test]
fn a_bearer_credential_of_any_scheme_is_swapped_for_its_host_only() {
    let s = keys();
    for scheme in ["Bearer ", "token ", ""] {
        let h = head("GET /user HTTP/1.1", &["Accept: */*", &format!("Authorization: {scheme}ghp_fakeFAKEfake9876543210")]);
        let out = sent(&s, &h, "api.github.com");
        assert_eq!(out, String::from_utf8(h.clone()).unwrap().replace("ghp_fakeFAKEfake9876543210", "ghp_REALrealREAL0123456789"));
    }
}

#[test]
fn a_basic_password_is_swapped_and_its_echo_returned() {
    let s = keys();
    let asked = base64(b"x-access-token:ghp_xyzXYZxyz9876543210zyx");
    let h = head("POST /me/proj.git/git-receive-pack HTTP/1.1", &[&format!("authorization: Basic {}", String::from_utf8_lossy(&asked))]);
    let out = s.inject(&h, "github.com", true).unwrap().unwrap();
    let real = base64(b"x-access-token:ghp_GITgitGIT0123456789abc");
    assert_eq!(String::from_utf8(out.head).unwrap(), String::from_utf8(head("POST /me/proj.git/git-receive-pack HTTP/1.1", &[&format!("authorization: Basic {}", String::from_utf8_lossy(&real))])).unwrap());
    assert!(real.ends_with(b"=") && asked.ends_with(b"="), "padded, as the test means it");
    let unpadded = |b: &[u8]| b.strip_suffix(b"=").unwrap().to_vec();
    assert_eq!(out.echoes, [(unpadded(&real), unpadded(&asked))], "the echo without its padding, which an origin may drop");
    let mut answer = [b"X-Echo: ".as_slice(), &real, b"\r\nX-Bare: ", &unpadded(&real), b"\r\n"].concat();
    s.redactor(out.echoes.clone()).redact(&mut answer);
    let want = [b"X-Echo: ".as_slice(), &asked, b"\r\nX-Bare: ", &unpadded(&asked), b"\r\n"].concat();
    assert_eq!(String::from_utf8_lossy(&answer), String::from_utf8_lossy(&want));
    // The placeholder as the user name is no password: it passes as it is.
    let h = head("GET / HTTP/1.1", &[&format!("Authorization: Basic {}", String::from_utf8_lossy(&base64(b"ghp_xyzXYZxyz9876543210zyx:x")))]);
    assert_eq!(s.inject(&h, "github.com", true), Ok(None));
}

#[test]
fn a_named_header_is_swapped_for_every_name_its_entry_lists() {
    let s = keys();
    for host in ["registry.npmjs.org", "a.npmjs.org"] {
        let h = head("GET /pkg HTTP/1.1", &["x-api-key: npm_zzzZZZ9876543210"]);
        assert_eq!(sent(&s, &h, host), String::from_utf8(head("GET /pkg HTTP/1.1", &["x-api-key: npm_NPMnpm0123456789"])).unwrap());
    }
}

#[test]
fn what_is_no_placeholder_or_not_in_its_place_passes_unchanged() {
    let s = keys();
    // A client's own token, and a request with no credential.
    for h in [head("GET /user HTTP/1.1", &["Authorization: Bearer ghp_MyOwnScopedToken0000000000"]), head("GET / HTTP/1.1", &[])] {
        assert_eq!(s.inject(&h, "api.github.com", true), Ok(None));
        assert_eq!(s.inject(&h, "evil.test", false), Ok(None));
    }
    // Its own host, another place (the path, another header, another scheme's
    // credential, lower-cased): worth nothing there, so sent as it is.
    for h in [
        head("GET /?t=ghp_fakeFAKEfake9876543210 HTTP/1.1", &[]),
        head("GET / HTTP/1.1", &["X-Token: ghp_fakeFAKEfake9876543210"]),
        head("GET / HTTP/1.1", &["Authorization: Bearer GHP_FAKEFAKEFAKE9876543210"]),
        head("GET / HTTP/1.1", &["X-Api-Key: ghp_fakeFAKEfake9876543210"]),
    ] {
        assert_eq!(s.inject(&h, "api.github.com", true), Ok(None));
    }
}

#[test]
fn a_placeholder_where_it_may_not_go_is_a_leak() {
    let s = keys();
    let bearer = "Authorization: Bearer ghp_fakeFAKEfake9876543210";
    let cases: [(Vec<u8>, &str, bool, &str); 8] = [
        (head("GET / HTTP/1.1", &[bearer]), "evil.test", true, "the placeholder of GITHUB_TOKEN in header Authorization of a request to evil.test (it may go to api.github.com only, over TLS the proxy opened)"),
        (head("GET / HTTP/1.1", &[bearer]), "api.github.com", false, "the placeholder of GITHUB_TOKEN in header Authorization of a request to api.github.com not over TLS the proxy opened (it may go to api.github.com only, over TLS the proxy opened)"),
        (head("GET / HTTP/1.1", &["authorization: bearer GHP_FAKEFAKEFAKE9876543210"]), "evil.test", true, "GITHUB_TOKEN in header authorization of a request to evil.test"),
        (head("GET /x/ghp_fakeFAKEfake9876543210 HTTP/1.1", &[]), "github.com", true, "GITHUB_TOKEN in the request line of a request to github.com"),
        (head("GET /?q=npm_zzzZZZ9876543210 HTTP/1.1", &[]), "api.github.com", true, "NPM in the request line"),
        (head("GET / HTTP/1.1", &["Cookie: a=ghp_fakeFAKEfake9876543210"]), "github.com", true, "GITHUB_TOKEN in header Cookie"),
        (head("GET / HTTP/1.1", &[&format!("X-Auth: Basic {}", String::from_utf8_lossy(&base64(b"u:ghp_xyzXYZxyz9876543210zyx")))]), "api.github.com", true, "GIT in header X-Auth"),
        (head("GET / HTTP/1.1", &[bearer, "X-Api-Key: npm_zzzZZZ9876543210"]), "api.github.com", true, "NPM in header X-Api-Key of a request to api.github.com (it may go to registry.npmjs.org, *.npmjs.org only"),
    ];
    for (h, host, opened, want) in cases {
        let leak = s.inject(&h, host, opened).unwrap_err();
        assert!(leak.why.contains(want), "{}: {}", String::from_utf8_lossy(&h), leak.why);
        assert!(!leak.why.contains("REAL") && !leak.why.contains("NPMnpm") && !leak.why.contains('\n'), "{}", leak.why);
    }
}

#[test]
fn what_is_no_request_is_scanned_without_case() {
    let s = keys();
    assert_eq!(s.scan(b"CONNECT api.github.com:443 HTTP/1.1\r\n\r\n", "in the CONNECT request"), Ok(()));
    let leak = s.scan(b"ghp_fakefakefake9876543210.evil.test", "in the name asked").unwrap_err();
    assert_eq!(leak.entry, "GITHUB_TOKEN");
    assert_eq!(leak.why, "the placeholder of GITHUB_TOKEN in the name asked (it may go to api.github.com only, over TLS the proxy opened)");
}

#[test]
fn a_head_with_a_value_swapped_in_asks_for_its_answer_uncompressed() {
    let h = head("GET /user HTTP/1.1", &["accept-encoding: gzip, br", "Accept: */*", "Accept-Encoding: deflate"]);
    let want = head("GET /user HTTP/1.1", &["Accept: */*", "Accept-Encoding: identity"]);
    assert_eq!(String::from_utf8(uncompressed(&h)).unwrap(), String::from_utf8(want.clone()).unwrap());
    assert_eq!(uncompressed(&head("GET /user HTTP/1.1", &["Accept: */*"])), want, "added where the client asked none");
}

#[test]
fn an_entry_for_some_clients_is_a_leak_from_any_other() {
    let s = parse("TOKEN value=ghp_REALrealREAL0123456789 to=api.github.com as=bearer placeholder=ghp_fakeFAKEfake9876543210 clients=app,ci\n").unwrap();
    let h = head("GET /user HTTP/1.1", &["Authorization: Bearer ghp_fakeFAKEfake9876543210"]);
    for client in ["app", "ci"] {
        let out = s.inject_for(&h, "api.github.com", true, Some(client)).unwrap().unwrap();
        assert!(String::from_utf8(out.head).unwrap().contains("ghp_REALrealREAL0123456789"), "{client}");
    }
    for client in [Some("agent"), None] {
        let leak = s.inject_for(&h, "api.github.com", true, client).unwrap_err();
        assert!(leak.why.contains("which its clients= does not name") && !leak.why.contains("REAL"), "{leak:?}");
    }
    assert!(parse("T value=ghp_REALrealREAL0123456789 to=a.test as=bearer placeholder=ghp_fakeFAKEfake9876543210 clients=a@b\n").unwrap_err().contains("bad client name"));
}
