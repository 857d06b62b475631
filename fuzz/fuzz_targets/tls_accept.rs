//! Arbitrary bytes as the first bytes of a client on a route that terminates
//! TLS (`cert=`), as the front hands them to rustls (`tls::accept`). It must
//! never panic, and a refusal is a TLS failure told in one line (the close
//! line's `reason=tls`), never another kind of error.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use wasiter::tls;

/// The route's configuration, from the test certificate in fuzz/tls/.
fn config() -> &'static Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tls");
        tls::server_config(&format!("{dir}/cert.pem"), &format!("{dir}/key.pem"), &["h2".to_string(), "http/1.1".to_string()]).expect("the fuzz certificate loads")
    })
}

fuzz_target!(|data: &[u8]| {
    match tls::accept(config(), data) {
        Ok(conn) => assert!(conn.is_handshaking(), "no handshake completes from a client's first bytes alone"),
        Err(e) => {
            let why = tls::tls_failure(&e).expect("a refusal is a TLS failure");
            assert!(!why.contains('\n'), "one line: {why:?}");
        }
    }
});
