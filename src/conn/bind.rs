//! A CONNECT tunnel is bound to the name it was opened for: the client's
//! first bytes inside it are read before any reaches the destination, and
//! must ask for that same name. Without this, `CONNECT allowed.test:443`
//! followed by a ClientHello for `other.test` reaches other.test through any
//! CDN or shared origin that serves both (domain fronting by SNI).
//!
//! What the first bytes may be, and what each gets:
//! - **a TLS ClientHello**, on any port: its server name (the outer one,
//!   when the client uses ECH) must be the CONNECT name, compared as names
//!   are everywhere (no case, no trailing dot). A ClientHello without a name
//!   passes only when the tunnel was opened to an IP literal (clients send
//!   none for those). Else: a fatal TLS alert, `reason=sni-mismatch`.
//! - **anything else, on a port the route lists in `opaque=`** (ssh, a
//!   database's protocol): passed on unread.
//! - **anything else on port 443**: refused, `reason=tunnel-not-tls` (a
//!   tunnel to 443 is for TLS, and plain bytes there cannot be checked).
//! - **an HTTP/1.x request head**, on another port: the tunnel carries
//!   HTTP, and every request in it, the first and each after it, is read
//!   and checked as a plain proxy request is (`Verdict::Requests`: the
//!   client goes back to the front, pinned to the tunnel's destination, see
//!   `proxy_request::in_tunnel`). Its `Host` must name the CONNECT host.
//! - **other bytes**, on another port: refused, `reason=tunnel-not-http`
//!   (what cannot be read cannot be checked: an HTTP/2 preface, a head
//!   over 16 KiB or cut short, a protocol of its own).
//!
//! Not checked, and cannot be without intercepting TLS: the `Host` of the
//! HTTP requests *inside* the TLS stream.

use crate::close::Reason;
use crate::front::{client_hello, http_head};
use crate::names::normalize;

/// A tunnel waiting for its client's first bytes (boxed in the connection:
/// it is gone once they pass).
pub struct Bind {
    /// The CONNECT target: a name (lower case) or an IP literal.
    pub host: String,
    pub port: u16,
    /// The route lists the port in `opaque=`: bytes that are not TLS pass.
    opaque: bool,
    /// The first bytes were found to be a request head (`Verdict::Requests`):
    /// the client goes back to the front once it has its 200.
    pub requests: bool,
    /// What the client sent so far; it goes to the destination if it passes.
    pub read: Vec<u8>,
}

#[derive(Debug)]
pub enum Verdict {
    /// Not enough bytes to tell.
    Wait,
    /// Send what was read on, and relay from here.
    Pass,
    /// Refuse: answer the client with these bytes (a TLS alert or an HTTP
    /// 403), then close for this reason.
    Refuse(Vec<u8>, Reason),
    /// A request head: the tunnel carries HTTP, whose every request is read
    /// and checked on its own by the front (none of it has been sent).
    Requests,
}

impl Bind {
    /// A tunnel to `host:port`; `first`: what the client sent after its
    /// CONNECT, the start of its first bytes.
    pub fn new(host: String, port: u16, opaque: bool, first: Vec<u8>) -> Bind {
        Bind { host, port, opaque, requests: false, read: first }
    }

    /// What the bytes read so far decide. `ended`: the client sent FIN (or
    /// filled the peek limit) and no more bytes will come.
    pub fn verdict(&self, ended: bool) -> Verdict {
        let Some(&first) = self.read.first() else {
            return if ended { Verdict::Pass } else { Verdict::Wait };
        };
        if client_hello::looks_like_tls(first) {
            return self.hello(ended);
        }
        if self.opaque {
            return Verdict::Pass;
        }
        if self.port == 443 {
            let why = format!("the tunnel to {}:443 carries bytes that are not TLS (first byte {:?})", self.host, first.escape_ascii().to_string());
            return self.refuse_http(Reason::NotTls(why));
        }
        let not_http = |why: String| {
            let why = format!("the tunnel to {}:{} carries bytes that are neither TLS nor an HTTP/1.x request ({why}); opaque={} would let them through unread", self.host, self.port, self.port);
            self.refuse_http(Reason::NotHttp(why))
        };
        match http_head::complete(&self.read) {
            Ok(true) => Verdict::Requests,
            Ok(false) if ended => not_http(format!("no complete request head in {} bytes", self.read.len())),
            Ok(false) => Verdict::Wait,
            Err(failure) => not_http(failure.why()),
        }
    }

    /// The route lets this port's bytes through unread (`opaque=`).
    pub fn opaque(&self) -> bool {
        self.opaque
    }

    fn hello(&self, ended: bool) -> Verdict {
        let alert = |reason: Reason| {
            // unrecognized_name for a name, else handshake_failure.
            let code = if matches!(reason, Reason::NameMismatch(_)) { client_hello::UNRECOGNIZED_NAME } else { client_hello::HANDSHAKE_FAILURE };
            Verdict::Refuse(client_hello::fatal_alert(&self.read, code), reason)
        };
        match client_hello::parse(&self.read) {
            Ok(None) if ended => alert(Reason::BadClientHello(format!("the ClientHello in the tunnel to {} ended after {} bytes", self.host, self.read.len()))),
            Ok(None) => Verdict::Wait,
            Err(failure) => alert(Reason::BadClientHello(failure.why())),
            Ok(Some(hello)) => match hello.server_name.as_deref().map(normalize) {
                Some(name) if name == self.host => Verdict::Pass,
                None if self.host.parse::<std::net::IpAddr>().is_ok() => Verdict::Pass,
                Some(name) => alert(Reason::NameMismatch(format!("the ClientHello names {name}, the tunnel was opened for {}:{}", self.host, self.port))),
                None => alert(Reason::NameMismatch(format!("the ClientHello names no server, the tunnel was opened for {}:{}", self.host, self.port))),
            },
        }
    }

    fn refuse_http(&self, reason: Reason) -> Verdict {
        let body = format!("wasiter: {} (refused by the tunnel's name binding)\n", reason.error().unwrap_or_default());
        Verdict::Refuse(crate::front::http_answer(403, "Forbidden", &body), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello for `name` (None: no server_name extension), as
    /// the front's tests build them.
    fn hello(name: Option<&str>) -> Vec<u8> {
        client_hello::in_records(&client_hello::sample(name, &[], 0), 1 << 14)
    }

    fn bind(host: &str, port: u16, bytes: &[u8]) -> Verdict {
        Bind::new(host.to_string(), port, false, bytes.to_vec()).verdict(false)
    }

    fn refused(v: Verdict) -> String {
        match v {
            Verdict::Refuse(_, reason) => reason.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_client_hello_must_name_the_connect_host() {
        assert!(matches!(bind("allowed.test", 443, &hello(Some("Allowed.Test."))), Verdict::Pass));
        let why = refused(bind("allowed.test", 443, &hello(Some("other.test"))));
        assert!(why.starts_with("sni-mismatch: the ClientHello names other.test") && why.contains("allowed.test:443"), "{why}");
        // A suffix, a prefix, a subdomain: other names all the same.
        for other in ["allowed.test.evil", "x.allowed.test", "allowed.tes"] {
            assert!(refused(bind("allowed.test", 443, &hello(Some(other)))).starts_with("sni-mismatch"), "{other}");
        }
        assert!(refused(bind("allowed.test", 443, &hello(None))).contains("names no server"));
        // An IP literal target: no name is what clients send.
        assert!(matches!(bind("192.0.2.7", 443, &hello(None)), Verdict::Pass));
        // On any port, TLS is checked.
        assert!(refused(bind("allowed.test", 8443, &hello(Some("other.test")))).starts_with("sni-mismatch"));
        // Half a ClientHello: wait for the rest.
        let full = hello(Some("allowed.test"));
        assert!(matches!(bind("allowed.test", 443, &full[..full.len() / 2]), Verdict::Wait));
    }

    #[test]
    fn a_refusal_is_a_fatal_alert_in_the_clients_version() {
        let Verdict::Refuse(alert, _) = bind("allowed.test", 443, &hello(Some("other.test"))) else { panic!() };
        assert_eq!(alert, [21, 3, 1, 0, 2, 2, 112]);
    }

    #[test]
    fn port_443_takes_only_tls() {
        let why = refused(bind("allowed.test", 443, b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"));
        assert!(why.starts_with("tunnel-not-tls"), "{why}");
        assert!(refused(bind("allowed.test", 443, b"SSH-2.0-x\r\n")).starts_with("tunnel-not-tls"));
    }

    #[test]
    fn elsewhere_requests_are_handed_on_and_other_bytes_refused_unless_opaque() {
        // Requests are each checked by the front, whatever their Host.
        for head in [&b"GET / HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n"[..], b"PROPFIND / HTTP/1.1\r\nHost: other.test\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"] {
            assert!(matches!(bind("allowed.test", 8080, head), Verdict::Requests), "{}", String::from_utf8_lossy(head));
        }
        assert!(matches!(bind("allowed.test", 8080, b"GET / HTTP/1.1\r\nHo"), Verdict::Wait));
        assert!(matches!(bind("allowed.test", 8080, b"GE"), Verdict::Wait));
        for bytes in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b"\0\0\0\x08\x04\xd2\x16\x2f", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
            let why = refused(bind("allowed.test", 22, bytes));
            assert!(why.starts_with("tunnel-not-http") && why.contains("opaque=22"), "{why}");
            let opaque = Bind::new("allowed.test".into(), 22, true, bytes.to_vec()).verdict(false);
            assert!(matches!(opaque, Verdict::Pass), "opaque=22 lets it through unread");
        }
        // Cut short by the client: cannot be read.
        let cut = Bind::new("allowed.test".into(), 8080, false, b"GET / HTTP/1.1\r\n".to_vec()).verdict(true);
        assert!(matches!(cut, Verdict::Refuse(_, Reason::NotHttp(_))));
        // TLS is still bound by its name on an opaque port.
        let other = Bind::new("allowed.test".into(), 22, true, hello(Some("other.test"))).verdict(false);
        assert!(matches!(other, Verdict::Refuse(_, Reason::NameMismatch(_))));
    }
}
