//! How the proxy answers a client in the client's own protocol: an HTTP
//! status line with one line of text, or a SOCKS5 reply code (which has no
//! room for text: the close line's `error=` has it). One place maps each
//! close reason to both, so that a refusal means the same on either front.

use std::io;
use std::net::SocketAddr;

use super::socks::{self, Rep};
use crate::close::Reason;
use crate::sys::Stream;

/// The protocol a forward route's client speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Speaks {
    /// An HTTP proxy request (CONNECT, or a URL in absolute form).
    #[default]
    Http,
    /// SOCKS5, on the same port.
    Socks5,
    /// TLS to the server it thinks it reaches (a transparent listener's
    /// client): nothing to say when the tunnel opens, an alert when refused.
    Tls,
}

impl Speaks {
    /// A tunnel is open: what the client reads before the destination's
    /// bytes. `bound`: the proxy's end of the destination's connection.
    pub fn opened(self, bound: Option<SocketAddr>) -> Vec<u8> {
        match self {
            Speaks::Http => b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec(),
            Speaks::Socks5 => socks::reply(Rep::Succeeded, bound),
            Speaks::Tls => Vec::new(),
        }
    }

    /// The answer to a client turned away for `reason` before its tunnel or
    /// request reached the destination.
    pub fn refusal(self, reason: &Reason) -> Vec<u8> {
        match self {
            Speaks::Http => {
                let (code, text) = http_status(reason);
                let body = match reason {
                    Reason::ConnectFailed(_) | Reason::ConnectTimeout | Reason::NoUpstream(_) => format!("wasiter: cannot reach the destination: {reason}\n"),
                    _ => format!("wasiter: {}\n", reason.error().unwrap_or_else(|| reason.name().to_string())),
                };
                http_answer(code, text, &body)
            }
            Speaks::Socks5 => socks::reply(socks_rep(reason), None),
            Speaks::Tls => vec![21, 3, 1, 0, 2, 2, tls_alert(reason)],
        }
    }

    /// Write the refusal for `reason`, then FIN (best effort).
    pub fn refuse(self, client: &Stream, reason: &Reason) {
        tell(client, &self.refusal(reason));
    }
}

/// The HTTP status for a refusal.
fn http_status(reason: &Reason) -> (u16, &'static str) {
    match reason {
        Reason::Forbidden(_) | Reason::NameMismatch(_) | Reason::NotTls(_) | Reason::NotHttp(_) => (403, "Forbidden"),
        Reason::OverBudget(_) => (429, "Too Many Requests"),
        Reason::BadRequest(_) | Reason::BadSocks(_) => (400, "Bad Request"),
        Reason::PeekTooLarge(_) => (431, "Request Header Fields Too Large"),
        Reason::DnsTimeout(_) | Reason::ConnectTimeout | Reason::Parent(Some(504), _) => (504, "Gateway Timeout"),
        _ => (502, "Bad Gateway"),
    }
}

/// The SOCKS5 reply code for a refusal: the RFC's words for the same
/// failures (a timeout is "TTL expired", as HTTP's is 504).
fn socks_rep(reason: &Reason) -> Rep {
    match reason {
        Reason::Forbidden(_) | Reason::OverBudget(_) | Reason::ProxyAuth(_) | Reason::NameMismatch(_) | Reason::NotTls(_) | Reason::NotHttp(_) => Rep::NotAllowed,
        Reason::DnsFailed(_) | Reason::NoUpstream(_) => Rep::HostUnreachable,
        Reason::DnsTimeout(_) | Reason::ConnectTimeout | Reason::Parent(Some(504), _) => Rep::TtlExpired,
        Reason::Parent(Some(403 | 407), _) => Rep::NotAllowed,
        Reason::Parent(Some(502 | 503), _) => Rep::HostUnreachable,
        Reason::ConnectFailed(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => Rep::ConnectionRefused,
            io::ErrorKind::NetworkUnreachable => Rep::NetworkUnreachable,
            io::ErrorKind::HostUnreachable => Rep::HostUnreachable,
            io::ErrorKind::TimedOut => Rep::TtlExpired,
            _ => Rep::GeneralFailure,
        },
        _ => Rep::GeneralFailure,
    }
}

/// The TLS alert for a refusal (RFC 8446 section 6): the policy's is
/// access_denied, a name that cannot be served unrecognized_name.
fn tls_alert(reason: &Reason) -> u8 {
    match reason {
        Reason::Forbidden(_) | Reason::OverBudget(_) | Reason::ProxyAuth(_) | Reason::Parent(Some(403 | 407), _) => 49, // access_denied
        Reason::NameMismatch(_) | Reason::DnsFailed(_) => 112,                                  // unrecognized_name
        Reason::BadClientHello(_) => 50,                                                         // decode_error
        _ => 80,                                                                                 // internal_error
    }
}

/// A short HTTP answer that closes the connection: the proxy's own words.
pub fn http_answer(code: u16, text: &str, body: &str) -> Vec<u8> {
    http_answer_with(code, text, "", body)
}

/// The same, with more header lines (each ending in CRLF).
pub fn http_answer_with(code: u16, text: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} {text}\r\n{headers}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
}

/// Write `answer` to a client about to be closed, then FIN: best effort (a
/// few hundred bytes into an empty socket buffer; nothing waits for it).
pub fn tell(client: &Stream, answer: &[u8]) {
    let _ = client.write(answer);
    let _ = client.shutdown_write();
}

/// The same, through the client's TLS when the proxy opened it (`open=`):
/// the answer, the closing alert, then the FIN.
pub fn tell_through(client: &Stream, tls: Option<&mut crate::tls::Session>, answer: &[u8]) {
    match tls {
        Some(tls) => crate::tls::tell(client, tls, answer),
        None => tell(client, answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_means_the_same_on_either_front() {
        let e = |k| Reason::ConnectFailed(io::Error::from(k));
        for (reason, code, rep) in [
            (Reason::Forbidden("x".into()), 403, Rep::NotAllowed),
            (Reason::DnsFailed("x: no such name".into()), 502, Rep::HostUnreachable),
            (Reason::DnsTimeout("x".into()), 504, Rep::TtlExpired),
            (Reason::ConnectTimeout, 504, Rep::TtlExpired),
            (e(io::ErrorKind::ConnectionRefused), 502, Rep::ConnectionRefused),
            (e(io::ErrorKind::NetworkUnreachable), 502, Rep::NetworkUnreachable),
            (e(io::ErrorKind::HostUnreachable), 502, Rep::HostUnreachable),
            (e(io::ErrorKind::PermissionDenied), 502, Rep::GeneralFailure),
            (Reason::Parent(Some(403), "the parent p:3128 answered the CONNECT with 403 Forbidden".into()), 502, Rep::NotAllowed),
            (Reason::Parent(Some(504), "...".into()), 504, Rep::TtlExpired),
            (Reason::Parent(None, "the parent p:3128 closed".into()), 502, Rep::GeneralFailure),
        ] {
            let http = String::from_utf8(Speaks::Http.refusal(&reason)).unwrap();
            assert!(http.starts_with(&format!("HTTP/1.1 {code} ")), "{reason}: {http}");
            assert_eq!(Speaks::Socks5.refusal(&reason), socks::reply(rep, None), "{reason}");
        }
        assert!(String::from_utf8(Speaks::Http.refusal(&Reason::Forbidden("pypi.org:22 refused (rule port)".into()))).unwrap().ends_with("wasiter: pypi.org:22 refused (rule port)\n"));
    }
}
