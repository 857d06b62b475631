//! Arbitrary bytes as what a client of a forward route sends first, and as
//! what a client of a transparent listener sends (read through
//! `absolute_from_host` first). The parser must never panic; a head it
//! takes names a destination fit for a log line and a connect, and a plain
//! request it rewrites is a complete head that ends the way HTTP heads end,
//! with no framing or upgrade header but its own. The same bytes as a
//! request inside a tunnel to a.test:8080 (`in_tunnel`): what it lets
//! through is a request to a.test:8080 and nowhere else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasiter::front::proxy_request::{absolute_from_host, in_tunnel, parse, Method};
use wasiter::front::Failure;

fuzz_target!(|data: &[u8]| {
    check(data);
    // A transparent listener's request: origin form with Host, read as the
    // forward proxy reads absolute form; always a plain request to port 8080.
    if let Ok(Some(absolute)) = absolute_from_host(data, 8080) {
        match parse(&absolute) {
            Ok(Some(req)) => assert!(req.port == 8080 && matches!(req.method, Method::Http { .. }), "{:?}", String::from_utf8_lossy(&absolute)),
            Ok(None) => panic!("a complete head became incomplete: {:?}", String::from_utf8_lossy(&absolute)),
            Err(_) => {}
        }
        check(&absolute);
    }
    if let Ok(Some(pinned)) = in_tunnel(data, "a.test", 8080) {
        match parse(&pinned) {
            Ok(Some(req)) => assert!((req.host.as_str(), req.port) == ("a.test", 8080) && matches!(req.method, Method::Http { .. }), "{:?}", String::from_utf8_lossy(&pinned)),
            Ok(None) => panic!("a complete head became incomplete: {:?}", String::from_utf8_lossy(&pinned)),
            Err(_) => {}
        }
        check(&pinned);
    }
});

fn check(data: &[u8]) {
    match parse(data) {
        Ok(None) => {}
        Ok(Some(req)) => {
            assert!(req.head_len <= data.len());
            assert!(req.port != 0);
            // Fit for a log line: no space or control character. (Whether it
            // is a host name at all is the policy's name check, `names::check`,
            // which the `names` target holds to account.)
            assert!(!req.host.is_empty() && req.host.chars().all(|c| !c.is_whitespace() && !c.is_control()), "{:?}", req.host);
            if let Method::Http { head, .. } = &req.method {
                assert!(head.ends_with(b"\r\n\r\n"), "a complete head");
                // Host is the target's, once, right after the request line.
                let text = String::from_utf8_lossy(head);
                let hosts = text.lines().filter(|l| l.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("host:"))).count();
                assert_eq!(hosts, 1, "one Host: {text:?}");
                assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("Host: ")), "{text:?}");
                // No Connection but the websocket's, no upgrade but a websocket.
                let lower = text.to_ascii_lowercase();
                for line in lower.lines() {
                    assert!(!["http2-settings:", "te:", "proxy-connection:", "proxy-authorization:", "keep-alive:"].iter().any(|h| line.starts_with(h)), "{text:?}");
                    if line.starts_with("upgrade:") {
                        assert_eq!(line, "upgrade: websocket", "{text:?}");
                    }
                    if line.starts_with("connection:") {
                        assert_eq!(line, "connection: upgrade", "{text:?}");
                    }
                }
            }
        }
        Err(failure) => {
            if let Failure::Framing(asked, _) = &failure {
                assert!(asked.chars().all(|c| !c.is_whitespace() && !c.is_control()), "{asked:?}");
            }
            let why = failure.why();
            assert!(!why.contains('\n'), "one line: {why:?}")
        }
    }
}
