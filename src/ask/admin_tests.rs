use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::ask::json::{answering, error_of, questions, string, who};
use crate::ask::{Answer, Asking, Question, Way};

const TOKEN: &str = "0123456789abcdef0123";

fn gate() -> Gate {
    Gate::new(TOKEN.to_string(), "127.0.0.1:9091".parse().unwrap())
}

/// The status and body of the answer to `request`, when the proxy is not needed.
fn done(request: &str) -> (u16, String) {
    match parse(request.as_bytes(), &gate()) {
        Request::Done(r) => (r.status, String::from_utf8(r.bytes()).unwrap()),
        other => panic!("expected an answer without the proxy, got {other:?}"),
    }
}

fn post(headers: &str, body: &str) -> String {
    format!("POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1:9091\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len())
}

const BEARER: &str = "Authorization: Bearer 0123456789abcdef0123\r\n";

#[test]
fn the_page_needs_no_token_and_every_answer_has_the_security_headers() {
    for (path, kind) in [("/", "text/html"), ("/ask.js", "text/javascript"), ("/ask.css", "text/css")] {
        let (status, text) = done(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(status, 200, "{path}");
        assert!(text.contains(&format!("Content-Type: {kind}; charset=utf-8\r\n")), "{text}");
    }
    let (_, text) = done("GET /nowhere HTTP/1.1\r\n\r\n");
    for header in [&format!("Content-Security-Policy: {CSP}\r\n")[..], "X-Content-Type-Options: nosniff\r\n", "Referrer-Policy: no-referrer\r\n", "Cache-Control: no-store\r\n"] {
        assert!(text.contains(header), "{header} in {text}");
    }
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    let (status, text) = done("HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body");
    assert_eq!(done("DELETE / HTTP/1.1\r\n\r\n").0, 405);
    let (status, text) = done("POST /api/questions HTTP/1.1\r\n\r\n");
    assert!(status == 405 && text.contains("\r\nAllow: GET\r\n"), "{text}");
    assert_eq!(done("GET /api/answer HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(done("garbage\r\n\r\n").0, 400);
}

#[test]
fn the_api_needs_the_token_in_the_authorization_header() {
    assert!(matches!(parse(format!("GET /api/questions HTTP/1.1\r\n{BEARER}\r\n").as_bytes(), &gate()), Request::List));
    assert!(matches!(parse(b"GET /api/questions HTTP/1.1\r\nauthorization: bearer 0123456789abcdef0123\r\n\r\n", &gate()), Request::List), "scheme in any case");
    for bad in ["", "Authorization: Bearer 0123456789abcdef0124\r\n", "Authorization: Bearer 0123456789abcdef012\r\n", "Authorization: Basic 0123456789abcdef0123\r\n", "Authorization: 0123456789abcdef0123\r\n"] {
        let Request::Done(r) = parse(format!("GET /api/questions HTTP/1.1\r\n{bad}\r\n").as_bytes(), &gate()) else { panic!("{bad:?} let through") };
        assert_eq!(r.status, 401, "{bad:?}");
        assert!(r.refused.is_some(), "a refusal is logged");
        assert!(!String::from_utf8(r.bytes()).unwrap().contains(TOKEN), "the token is never echoed");
    }
    // In the URL it counts for nothing (and the page never puts it there).
    assert_eq!(done(&format!("GET /api/questions?token={TOKEN} HTTP/1.1\r\n\r\n")).0, 401);
    let twice = format!("GET /api/questions HTTP/1.1\r\n{BEARER}{BEARER}\r\n");
    assert_eq!(done(&twice).0, 400, "a header twice is refused, not guessed at");
}

#[test]
fn tokens_compare_in_constant_time_by_every_byte() {
    assert!(same(b"abcdef", b"abcdef"));
    assert!(!same(b"abcdef", b"abcdeg"), "the last byte counts");
    assert!(!same(b"abcdef", b"xbcdef"), "the first byte counts");
    assert!(!same(b"abcdef", b"abcde"), "the length counts");
    assert!(!same(b"", b"a"));
}

#[test]
fn a_browser_may_answer_only_from_the_page_itself() {
    let listen: SocketAddr = "192.0.2.1:9091".parse().unwrap();
    for (origin, host) in [
        ("http://127.0.0.1:9091", "127.0.0.1:9091"),
        ("http://localhost:8080", "localhost:8080"),
        ("http://LOCALHOST", "localhost"),
        ("http://[::1]:9091", "[::1]:9091"),
        ("http://127.0.0.2", "127.0.0.2"),
        ("http://192.0.2.1:9091", "192.0.2.1:9091"),
    ] {
        assert_eq!(origin_allowed(origin, Some(host), listen), Ok(()), "{origin} {host}");
    }
    for (origin, host) in [
        ("http://evil.test", Some("evil.test")),
        ("http://evil.test", Some("127.0.0.1:9091")),
        ("https://127.0.0.1:9091", Some("127.0.0.1:9091")),
        ("null", Some("127.0.0.1:9091")),
        ("http://127.0.0.1:9091", None),
        ("http://192.0.2.1:9092", Some("192.0.2.1:9092")),
        ("http://localhost.evil.test", Some("localhost.evil.test")),
        ("http://127.0.0.1.evil.test", Some("127.0.0.1.evil.test")),
    ] {
        assert!(origin_allowed(origin, host, listen).is_err(), "{origin} {host:?}");
    }
    let everywhere: SocketAddr = "0.0.0.0:9091".parse().unwrap();
    assert_eq!(origin_allowed("http://192.0.2.7:9091", Some("192.0.2.7:9091"), everywhere), Ok(()), "an address of its own, typed in");
    assert!(origin_allowed("http://192.0.2.7:9092", Some("192.0.2.7:9092"), everywhere).is_err(), "another port");
    assert!(origin_allowed("http://box.test:9091", Some("box.test:9091"), everywhere).is_err(), "a name could be pointed anywhere");
    // Through the request: refused before the token is looked at, and logged.
    let Request::Done(r) = parse(post(&format!("Origin: http://evil.test\r\n{BEARER}"), r#"{"id":1,"answer":"once"}"#).as_bytes(), &gate()) else { panic!() };
    assert_eq!((r.status, r.refused.is_some()), (403, true));
    let ok = post(&format!("Origin: http://127.0.0.1:9091\r\n{BEARER}"), r#"{"id":1,"answer":"once"}"#);
    assert!(matches!(parse(ok.as_bytes(), &gate()), Request::Answer(_)), "the page's own origin");
    let cross = format!("GET /api/questions HTTP/1.1\r\nSec-Fetch-Site: cross-site\r\n{BEARER}\r\n");
    assert_eq!(done(&cross).0, 403);
    let cli = post(BEARER, r#"{"id":1,"answer":"once"}"#);
    assert!(matches!(parse(cli.as_bytes(), &gate()), Request::Answer(_)), "no Origin: the CLI");
}

#[test]
fn the_answer_body_is_read_strictly() {
    let read = |s: &str| answering(s.as_bytes());
    assert_eq!(read(r#"{"id":3,"answer":"once","by":"cli"}"#), Ok(Answering { id: 3, scope: Scope::Once, by: "cli".into() }));
    assert_eq!(read(" { \"answer\" : \"deny-forever\" , \"id\" : 12 }\n").map(|a| (a.id, a.scope, a.by)), Ok((12, Scope::DenyForever, "api".into())));
    assert_eq!(read(r#"{"id":1,"answer":"session","by":"Page <b>\"x"}"#).map(|a| a.by), Err("a string with an escape (the values are plain words)".into()));
    assert_eq!(read(r#"{"id":1,"answer":"session","by":"My Editor!"}"#).map(|a| a.by), Ok("myeditor".into()), "by: [a-z0-9-]");
    assert_eq!(read(r#"{"id":1,"answer":"once","by":"aaaaaaaaaaaaaaaaaaaaaaa"}"#).map(|a| a.by.len()), Ok(16));
    for bad in [
        "",
        "{}",
        "[]",
        r#"{"id":1}"#,
        r#"{"answer":"once"}"#,
        r#"{"id":1,"answer":"timeout"}"#,
        r#"{"id":1,"answer":"ONCE"}"#,
        r#"{"id":-1,"answer":"once"}"#,
        r#"{"id":1.5,"answer":"once"}"#,
        r#"{"id":01,"answer":"once"}"#,
        r#"{"id":"1","answer":"once"}"#,
        r#"{"id":99999999999999999999,"answer":"once"}"#,
        r#"{"id":1,"id":2,"answer":"once"}"#,
        r#"{"id":1,"answer":"once","extra":1}"#,
        r#"{"id":1,"answer":"once"} x"#,
        r#"{"id":1,"answer":"once",}"#,
        r#"{"id":1,"answer":"once""#,
        "{\"id\":1,\"answer\":\"on\nce\"}",
    ] {
        assert!(read(bad).is_err(), "{bad:?} taken");
    }
    assert_eq!(who("  "), "api");
    // Through the request: 400 with why.
    let (status, text) = done(&post(BEARER, r#"{"id":1,"answer":"always"}"#));
    assert_eq!(status, 400);
    assert!(text.contains("is not an answer"), "{text}");
    assert_eq!(done(&format!("POST /api/answer HTTP/1.1\r\n{BEARER}Transfer-Encoding: chunked\r\n\r\n")).0, 400);
    let big = format!("POST /api/answer HTTP/1.1\r\n{BEARER}Content-Length: 9000\r\n\r\n{}", "x".repeat(9000));
    assert_eq!(done(&big).0, 413);
}

#[test]
fn hostile_names_and_paths_stay_inside_their_json_strings() {
    let mut out = String::new();
    string(&mut out, "a\"b\\c\u{1}\n</script><img>&\u{2028}\u{2029}\u{7f}é");
    assert_eq!(out, r#""a\"b\\c\u0001\n\u003c/script\u003e\u003cimg\u003e\u0026\u2028\u2029\u007fé""#);
    let now = Instant::now();
    let asking = Asking {
        route: "127.0.0.1:3128".into(),
        host: "a.test".into(),
        port: 80,
        client: IpAddr::from([127, 0, 0, 1]),
        way: Way::Http,
        method: Some("GET".into()),
        path: Some("/\"><script>alert(1)</script>".into()),
    };
    let q = Question { id: 7, asking: asking.clone(), since: now - Duration::from_secs(3), at: SystemTime::now(), deadline: now, waiting: 2 };
    let a = Answer { id: 6, asking: Asking { way: Way::Dns, port: 0, method: None, path: None, ..asking }, scope: Scope::DenyForever, at: SystemTime::UNIX_EPOCH, by: "cli".into() };
    let text = questions(&[q], [a].iter(), "# draft\n", now);
    assert_eq!(
        text,
        r##"{"questions":[{"id":7,"route":"127.0.0.1:3128","client":"127.0.0.1","way":"http","host":"a.test","port":80,"method":"GET","path":"/\"\u003e\u003cscript\u003ealert(1)\u003c/script\u003e","waited_s":3,"clients":2}],"recent":[{"id":6,"route":"127.0.0.1:3128","client":"127.0.0.1","way":"dns","host":"a.test","port":0,"answer":"deny-forever","by":"cli","at":"1970-01-01T00:00:00Z"}],"drafts":"# draft\n"}"##
    );
    assert_eq!(error_of(&crate::ask::json::error("no \"question\" 9\n")), Some("no \"question\" 9\n".into()), "the CLI reads back what was written");
}

#[test]
fn a_token_file_is_made_private_once_and_read_after() {
    let dir = std::env::temp_dir().join(format!("wasiter-admin-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    let path = path.to_str().unwrap();
    let (made, how) = token_file(path).unwrap();
    assert_eq!((made.len(), how), (64, Made::Now));
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(token_file(path).unwrap(), (made.clone(), Made::Before), "kept");
    std::fs::write(path, "  short \nrest\n").unwrap();
    assert!(token_file(path).unwrap_err().contains("at least 16"));
    std::fs::write(path, " a-token-of-twenty-chars \nsecond line\n").unwrap();
    assert_eq!(token_file(path).unwrap().0, "a-token-of-twenty-chars", "the first line, trimmed");
    let _ = std::fs::remove_dir_all(&dir);
}
