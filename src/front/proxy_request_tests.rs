//! The proxy request's reader, case by case (`super`).

use super::*;

#[test]
fn connect_names_its_destination() {
    let bytes = b"CONNECT Pypi.Org:443 HTTP/1.1\r\nHost: pypi.org:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n\x16\x03\x01";
    let r = parse(bytes).unwrap().unwrap();
    assert_eq!((r.method, r.host.as_str(), r.port, r.auth.as_deref()), (Method::Connect, "pypi.org", 443, Some("Basic dTpw")));
    assert_eq!(r.head_len, bytes.len() - 3, "the TLS bytes after the head are the client's");
    let v6 = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap().unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
    assert_eq!(parse(b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: x"), Ok(None), "not complete yet");
}

#[test]
fn a_plain_request_goes_on_in_origin_form() {
    let r = parse(b"GET http://Example.Test:8080/a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nbody")
        .unwrap()
        .unwrap();
    assert_eq!((r.host.as_str(), r.port), ("example.test", 8080));
    let Method::Http { head, .. } = r.method else { panic!("a plain request") };
    assert_eq!(String::from_utf8(head).unwrap(), "GET /a/b?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\n\r\n");
    let v6 = parse(b"GET http://[::1]:81/ HTTP/1.1\r\n\r\n").unwrap().unwrap();
    let Method::Http { head, .. } = v6.method else { panic!() };
    assert!(head.starts_with(b"GET / HTTP/1.1\r\nHost: [::1]:81\r\n"), "{}", String::from_utf8_lossy(&head));
    let bare = parse(b"GET http://example.test HTTP/1.0\r\n\r\n").unwrap().unwrap();
    let Method::Http { head, .. } = bare.method else { panic!() };
    assert_eq!((bare.port, String::from_utf8(head).unwrap().as_str()), (80, "GET / HTTP/1.0\r\nHost: example.test\r\n\r\n"));
}

#[test]
fn host_is_the_targets_and_hop_by_hop_headers_stay_here() {
    // A Host naming another site (virtual hosting on a shared origin
    // would serve that one) is replaced, wherever it stands.
    let r = parse(b"GET http://allowed.test/x HTTP/1.1\r\nAccept: */*\r\nHost: other.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nUpgrade: websocket\r\nKeep-Alive: 5\r\n\r\n")
        .unwrap()
        .unwrap();
    let Method::Http { head, .. } = r.method else { panic!("a plain request") };
    assert_eq!(String::from_utf8(head).unwrap(), "GET /x HTTP/1.1\r\nHost: allowed.test\r\nAccept: */*\r\n\r\n");
    // An upgrade asked for is asked of the destination.
    let ws = parse(b"GET http://ws.test/chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap().unwrap();
    let Method::Http { head, .. } = ws.method else { panic!("a plain request") };
    assert_eq!(String::from_utf8(head).unwrap(), "GET /chat HTTP/1.1\r\nHost: ws.test\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
}

#[test]
fn only_a_websocket_upgrade_is_asked_of_the_destination() {
    let h2c = parse(b"GET http://a.test/ HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nHTTP2-Settings: x\r\n\r\n").unwrap().unwrap();
    let Method::Http { head, upgrade, .. } = h2c.method else { panic!() };
    assert_eq!((String::from_utf8(head).unwrap().as_str(), upgrade), ("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", false));
    for other in ["websocket, h2c", "TLS/1.0", "h2"] {
        let req = format!("GET http://a.test/ HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: {other}\r\n\r\n");
        let Method::Http { head, upgrade, .. } = parse(req.as_bytes()).unwrap().unwrap().method else { panic!() };
        assert!(!upgrade && !String::from_utf8_lossy(&head).to_ascii_lowercase().contains("upgrade"), "{other}");
    }
    let ws = parse(b"GET http://a.test/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n").unwrap().unwrap();
    assert!(matches!(ws.method, Method::Http { upgrade: true, .. }));
}

#[test]
fn a_request_in_a_tunnel_must_name_the_tunnels_destination() {
    let ok = |req: &[u8]| in_tunnel(req, "a.test", 8080).unwrap().map(|b| String::from_utf8(b).unwrap());
    assert_eq!(ok(b"PROPFIND /x HTTP/1.1\r\nHost: A.test:8080\r\n\r\nrest").unwrap(), "PROPFIND http://a.test:8080/x HTTP/1.1\r\nHost: A.test:8080\r\n\r\nrest");
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").is_some(), "Host without its port");
    assert!(ok(b"GET http://a.test:8080/y HTTP/1.1\r\nHost: a.test:8080\r\n\r\n").unwrap().starts_with("GET http://a.test:8080/y HTTP/1.1\r\n"));
    assert_eq!(ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap(), "GET http://a.test:8080/ HTTP/1.1\r\nHost: a.test\r\n\r\n", "empty lines before it are dropped");
    assert_eq!(ok(b"GET / HTTP/1.1\r\nHost: a.te"), None);
    for (req, want) in [
        (&b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..], "no Host, or more than one"),
        (b"GET / HTTP/1.1\r\n\r\n", "no Host"),
        (b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n", "Host b.test"),
        (b"GET / HTTP/1.1\r\nHost: a.test:9090\r\n\r\n", "Host a.test:9090"),
        (b"GET / HTTP/1.1\r\nHost: a.test.evil\r\n\r\n", "a.test.evil"),
        (b"GET http://b.test:8080/ HTTP/1.1\r\nHost: a.test\r\n\r\n", "http://b.test:8080"),
        (b"GET http://a.test@b.test:8080/ HTTP/1.1\r\nHost: a.test\r\n\r\n", "http://a.test@b.test:8080"),
    ] {
        match in_tunnel(req, "a.test", 8080) {
            Err(InTunnel::OtherHost(why)) => assert!(why.contains(want) && why.contains("tunnel to a.test:8080"), "{why}"),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(req)),
        }
    }
    for req in [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], b"CONNECT b.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", b"\x00garbage\r\n\r\n"] {
        assert!(matches!(in_tunnel(req, "a.test", 8080), Err(InTunnel::Unreadable(_))), "{}", String::from_utf8_lossy(req));
    }
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 17 * 1024));
    assert!(matches!(in_tunnel(&big, "a.test", 8080), Err(InTunnel::Unreadable(Failure::TooLarge(_)))));
}

#[test]
fn framing_that_reads_two_ways_is_refused() {
    for (req, want) in [
        (&b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..], "both Content-Length and Transfer-Encoding"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "differ"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", "differ"),
        // Equal numbers, different strings: one reader may compare the text.
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 044, 44\r\n\r\n", "differ"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3x\r\n\r\n", "differ"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "not a number"),
        (b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "does not end in chunked"),
        (b"GET http://a.test/ HTTP/1.1\nHost: a.test\r\n\r\n", "bare LF"),
        (b"GET http://a@b.test/ HTTP/1.1\r\n\r\n", "userinfo"),
        (b"GET http://b.test@a.test/ HTTP/1.1\r\n\r\n", "userinfo"),
        // Framing read from a header that is then dropped as hop-by-hop,
        // in any case, on any Connection line, beside any other option.
        (b"POST http://a.test/ HTTP/1.1\r\nConnection: Content-Length\r\nContent-Length: 44\r\n\r\n", "naming content-length"),
        (b"POST http://a.test/ HTTP/1.1\r\nConnection: keep-alive\r\nconnection: close, TRANSFER-ENCODING\r\nTransfer-Encoding: chunked\r\n\r\n", "naming transfer-encoding"),
        (b"GET http://a.test/ HTTP/1.1\r\nConnection: host\r\nHost: a.test\r\n\r\n", "naming host"),
        (b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "applies it twice"),
        (b"POST http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent_Length: 5\r\n\r\n", "spelt with '_'"),
        (b"POST http://a.test/ HTTP/1.1\r\ntransfer_encoding: chunked\r\n\r\n", "spelt with '_'"),
        // Space is SP and HTAB alone (RFC 9110 section 5.6.3): a
        // no-break space an origin does not trim is no framing here.
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: \xc2\xa044\r\n\r\n", "not a number"),
        (b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 44\xe3\x80\x80\r\n\r\n", "not a number"),
        (b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\xc2\x85\r\n\r\n", "does not end in chunked"),
    ] {
        match parse(req) {
            Err(Failure::Framing(asked, why)) if asked == "a.test:80" => assert!(why.contains(want), "{}: {why}", String::from_utf8_lossy(req)),
            Err(Failure::BadRequest(why)) if want == "userinfo" => assert!(why.contains(want), "{}: {why}", String::from_utf8_lossy(req)),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(req)),
        }
    }
    assert!(parse(b"GET http://a.test/ HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n").is_err(), "obs-fold: httparse refuses it");
    // The same length twice is one length; chunked alone is fine.
    assert!(parse(b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap().is_some());
    assert!(parse(b"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3,\t3\r\n\r\n").unwrap().is_some());
    assert!(parse(b"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").unwrap().is_some());
}

#[test]
fn a_transparent_request_is_read_as_a_proxy_request_to_its_host() {
    let plain = b"GET /simple/?q=1 HTTP/1.1\r\nHost: PyPI.org.:8080\r\nAccept: */*\r\n\r\nrest";
    let abs = absolute_from_host(plain, 80).unwrap().unwrap();
    assert_eq!(abs, b"GET http://pypi.org/simple/?q=1 HTTP/1.1\r\nHost: PyPI.org.:8080\r\nAccept: */*\r\n\r\nrest", "the listener's port, not Host's");
    let req = parse(&abs).unwrap().unwrap();
    assert_eq!((req.host.as_str(), req.port), ("pypi.org", 80));
    assert_eq!(absolute_from_host(b"GET / HTTP/1.1\r\nHost: a.test\r\n", 80), Ok(None), "not complete");
    // A head with bare LFs keeps them, and is refused as from any client.
    let bare = absolute_from_host(b"GET / HTTP/1.1\nHost: a.test\n\n", 80).unwrap().unwrap();
    assert_eq!(bare, b"GET http://a.test/ HTTP/1.1\nHost: a.test\n\n");
    assert!(matches!(parse(&bare), Err(Failure::Framing(..))), "{:?}", parse(&bare));
    assert_eq!(absolute_from_host(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 8080).unwrap().unwrap(), b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    for (bad, why) in [
        (&b"GET http://evil.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"[..], "as a server does"),
        (b"CONNECT evil.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", "as a server does"),
        (b"GET / HTTP/1.1\r\n\r\n", "without one Host"),
        (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\n", "without one Host"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "names no host"),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "names no host"),
    ] {
        match absolute_from_host(bad, 80) {
            Err(Failure::BadRequest(w)) => assert!(w.contains(why), "{w}"),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[test]
fn bad_requests_say_why() {
    for (req, want) in [
        (&b"CONNECT pypi.org HTTP/1.1\r\n\r\n"[..], "expected HOST:PORT"),
        (b"CONNECT pypi.org:0 HTTP/1.1\r\n\r\n", "expected HOST:PORT"),
        (b"CONNECT bad host:443 HTTP/1.1\r\n\r\n", "not an HTTP/1.x request"),
        (b"CONNECT a/b:443 HTTP/1.1\r\n\r\n", "expected HOST:PORT"),
        (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "absolute http:// URL"),
        (b"GET https://x.test/ HTTP/1.1\r\n\r\n", "absolute http:// URL"),
        (b"GET http://x.test:99999/ HTTP/1.1\r\n\r\n", "a bad host"),
        (b"\x16\x03\x01\x00\x05hello", "not an HTTP/1.x request"),
    ] {
        match parse(req) {
            Err(Failure::BadRequest(why)) => assert!(why.contains(want), "{req:?}: {why}"),
            other => panic!("{req:?}: {other:?}"),
        }
    }
    let mut big = b"CONNECT a.test:443 HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    assert!(matches!(parse(&big), Err(Failure::TooLarge(_))));
}

#[test]
fn a_head_for_an_origin_over_tls_names_its_host_without_port_443() {
    let Some(Request { method: Method::Http { head, .. }, .. }) = parse(b"GET http://api.test:443/x HTTP/1.1\r\nHost: api.test\r\n\r\n").unwrap() else { panic!() };
    assert_eq!(https_host(head, "api.test", 443), b"GET /x HTTP/1.1\r\nHost: api.test\r\n\r\n");
    let Some(Request { method: Method::Http { head, .. }, .. }) = parse(b"GET http://api.test:8443/x HTTP/1.1\r\n\r\n").unwrap() else { panic!() };
    assert_eq!(https_host(head.clone(), "api.test", 8443), head, "another port stays");
}

#[test]
fn method_override_headers_are_read_for_the_rules() {
    let req = parse(b"POST http://a.test/x HTTP/1.1\r\nX-HTTP-Method-Override:  DELETE \r\nx-http-method: PUT\r\nX-Method-Override: PATCH\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
    assert_eq!((req.verb.as_str(), req.overrides), ("POST", vec!["DELETE".to_string(), "PUT".to_string(), "PATCH".to_string()]));
    assert!(parse(b"GET http://a.test/x HTTP/1.1\r\n\r\n").unwrap().unwrap().overrides.is_empty());
}
