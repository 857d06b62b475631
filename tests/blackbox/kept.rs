//! Connections to destinations kept between requests (`proxy::parked`):
//! enough of them for a busy destination's clients.

use super::*;
use std::sync::atomic::Ordering;

/// Twenty kept-alive clients of one destination, their requests in flight
/// together, five rounds: after the first, each finds a connection kept
/// from the round before. (With 8 kept per destination, as before, 12 of
/// every 20 requests dialled anew: 68 connections here instead of 20.)
pub fn a_busy_destinations_clients_each_find_a_kept_connection(rt: Runtime) {
    let (origin, requests) = head_echo_origin("origin");
    let port = origin.addr.port();
    let dns = DnsServer::start(&[("busy.test", "127.0.0.1")], &[], &[]);
    let p = forward_proxy(rt, &format!("to=busy.test;to-net=127.0.0.0/8;ports={port}"), &dns.addr());
    let mut clients: Vec<_> = (0..20)
        .map(|_| {
            let c = p.connect();
            (BufReader::new(c.try_clone().unwrap()), c)
        })
        .collect();
    let get = format!("GET http://busy.test:{port}/ HTTP/1.1\r\n\r\n");
    for round in 0..5 {
        for (_, w) in clients.iter_mut() {
            w.write_all(get.as_bytes()).unwrap();
        }
        for (r, _) in clients.iter_mut() {
            let (status, body) = answer(r);
            assert!(status.starts_with("HTTP/1.1 200") && body.starts_with("origin"), "round {round}: {status} {body}");
        }
    }
    assert_eq!(requests.load(Ordering::SeqCst), 100);
    let dialled = origin.accepted();
    assert!(dialled <= 20, "{dialled} connections to the destination for 20 clients' 100 requests");
}
