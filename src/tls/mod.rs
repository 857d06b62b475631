//! TLS termination: a route with `cert=` and `key=` decrypts what its clients
//! send and encrypts what goes back to them; its upstreams see plain bytes.
//!
//! rustls does the protocol, with ring's cryptography (TLS 1.3 and 1.2, its
//! safe defaults only). It never touches a socket: the loop hands it the
//! bytes the client's socket has (`read_tls`), takes back what must go out
//! (`write_tls`), and reads or writes the plain bytes in between. So the
//! client's side of a connection stays non-blocking, and [`TlsEnd`] is just
//! another [`Endpoint`] for `relay::Direction`: one direction reads plain
//! bytes from it, the other writes plain bytes to it.
//!
//! What rustls holds per connection is bounded: at most [`TLS_QUEUE`] bytes
//! of records waiting for the socket (the relay then waits, as for a full
//! socket), and one record (16 KiB) being decrypted.
//!
//! With routing by name (`sni=`), the route is picked from the ClientHello
//! before any TLS is spoken, so each route's certificate is the one for the
//! names it serves: choosing the route chooses the certificate.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, Connection, DigitallySignedStruct, SignatureScheme};

/// A route's TLS server configuration, and one side's TLS session: the
/// names the rest of the crate uses (`tls_off.rs` has the same ones).
pub use rustls::ServerConfig;
pub type Session = Connection;

/// An originating route's options, as its route holds them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upstream<'a> {
    pub ca: Option<&'a str>,
    pub name: Option<&'a str>,
    pub insecure: bool,
}

use crate::relay::{would_block, Endpoint};

pub mod ca;
mod config;
mod opener;
pub use ca::Made;
pub use config::{accept, sha256, TlsError, TLS_QUEUE};
use config::{certificates, failed, pem_error, provider, roots, server_provider};
pub use opener::{make_ca, opener, Opener};
use crate::sys::Stream;

/// The server side of a route: its certificate, and the ALPN protocols it
/// offers (those of its `alpn=` option; none, and clients speak HTTP/1.1).
pub fn server_config(cert: &str, key_file: &str, alpn: &[String]) -> Result<Arc<ServerConfig>, String> {
    let certs = certificates(cert).map_err(|e| format!("cert={cert}: {}", pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!("cert={cert}: no CERTIFICATE block in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("key={key_file}: {}", pem_error(&e)))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(server_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert={cert} and key={key_file} do not go together: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.ignore_client_order = cfg!(target_family = "wasm");
    Ok(Arc::new(config))
}

/// How a route speaks TLS to its upstreams (`upstream-tls`): the client
/// configuration, and the name sent and verified.
pub struct Origin {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// An originating route's client side (`up`: its options, `upstream-ca=`,
/// `upstream-name=`, `upstream-insecure`; `route`: how errors name it;
/// `first_upstream`: the name sent and verified when no `upstream-name=`
/// is given).
pub fn origin(route: &str, up: &Upstream<'_>, first_upstream: Option<&str>) -> Result<Origin, String> {
    let err = |e: String| format!("{route}: {e}");
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions().map_err(|e| err(e.to_string()))?;
    let config = if up.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(up.ca, "upstream-ca=PEM").map_err(err)?).with_no_client_auth()
    };
    let host = up.name.or(first_upstream).unwrap_or_default().to_string();
    let name = ServerName::try_from(host.clone()).map_err(|_| err(format!("upstream-name: {host:?} is not a DNS name or an IP address")))?;
    Ok(Origin { config: Arc::new(config), name })
}

/// A new upstream connection's TLS state: its ClientHello waits to be sent.
pub fn connect(origin: &Origin) -> io::Result<Connection> {
    let mut tls = ClientConnection::new(Arc::clone(&origin.config), origin.name.clone()).map_err(io::Error::other)?;
    tls.set_buffer_limit(Some(TLS_QUEUE));
    Ok(Connection::Client(tls))
}

/// `upstream-insecure`: any certificate is taken (the handshake's own
/// signatures are still checked). For a dev backend's self-signed
/// certificate only; the start line warns.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS failure inside `e`, if it is one.
pub fn tls_failure(e: &io::Error) -> Option<String> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<TlsError>()).map(|t| t.0.clone())
}

/// A socket through its TLS state: the client's on a terminating route,
/// the upstream's on an originating one.
pub struct TlsEnd<'a> {
    pub stream: &'a Stream,
    pub tls: &'a mut Connection,
}

/// A `Stream` as `io::Read`/`io::Write`, for rustls.
struct Io<'a>(&'a Stream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Send what rustls has queued (handshake messages, records, an alert)
/// until the socket would block. Returns whether anything is still queued.
pub fn flush(stream: &Stream, tls: &mut Connection) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut Io(stream)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if would_block(&e) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Write `bytes` through `tls` to `stream`, then the closing alert and the
/// FIN: an answer to a client of an opened connection, which is closed next
/// (best effort, as `front::tell` is for plain clients).
pub fn tell(stream: &Stream, tls: &mut Connection, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match tls.writer().write(rest) {
            Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
            _ => break,
        }
        if !matches!(flush(stream, tls), Ok(false)) {
            break;
        }
    }
    tls.send_close_notify();
    if let Ok(false) = flush(stream, tls) {
        let _ = stream.shutdown_write();
    }
}

/// A kept upstream's TLS, taken for a new request: still open and quiet?
/// What its socket holds goes into the session (a late session ticket is
/// fine); a close, an error or data out of turn says no.
pub fn quiet_and_open(stream: &Stream, tls: &mut Connection) -> bool {
    loop {
        match tls.read_tls(&mut Io(stream)) {
            Ok(0) => return false,
            Ok(_) => match tls.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            },
            Err(e) if would_block(&e) => return true,
            Err(_) => return false,
        }
    }
}

/// Records queued for the socket (the relay watches it for writing then).
pub fn wants_write(tls: &Session) -> bool {
    tls.wants_write()
}

/// Plain bytes already decrypted and not yet read (the socket may have
/// nothing more to wake the loop with).
pub fn has_plaintext(tls: &mut Connection) -> bool {
    tls.process_new_packets().is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
}

impl Endpoint for TlsEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: the client's close_notify
                // The client closed its socket without close_notify: most do.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Nothing decrypted yet: take more from the socket (WouldBlock
            // ends here), then answer what the handshake asks for.
            self.tls.read_tls(&mut Io(self.stream))?;
            let processed = self.tls.process_new_packets();
            let sent = flush(self.stream, self.tls); // our alert, on an error
            processed.map_err(|e| failed(&e))?;
            sent?;
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Encrypt more only once what is queued has gone: the relay's
        // buffer, not rustls', holds what the client is slow to take.
        if flush(self.stream, self.tls)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        flush(self.stream, self.tls)?;
        Ok(n)
    }

    /// The closing alert, without the FIN (the close sends that). If the
    /// socket cannot take it all now, the connection waits to flush it
    /// (`Conn::finished`) and then shuts down as usual.
    fn end_before_close(&mut self) {
        self.tls.send_close_notify();
        let _ = flush(self.stream, self.tls);
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        if flush(self.stream, self.tls)? {
            // The connection sends the FIN once the alert is out (`Conn`).
            return Ok(());
        }
        self.stream.shutdown_write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `cert` and `key` as files in `dir`: their paths.
    fn files(dir: &std::path::Path, cert: &[u8], key: &[u8]) -> (String, String) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    fn config_of((cert, key): (String, String)) -> Result<Arc<ServerConfig>, String> {
        server_config(&cert, &key, &[])
    }

    #[test]
    fn certificate_files_that_do_not_serve_say_why() {
        let dir = std::env::temp_dir().join(format!("wasiter-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = config_of((dir.join("none.pem").display().to_string(), "k".into())).unwrap_err();
        assert!(e.contains("none.pem: cannot read it"), "{e}");
        let e = config_of(files(&dir, b"not pem at all", b"")).unwrap_err();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        let cert = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let e = config_of(files(&dir, cert, b"no key here")).unwrap_err();
        assert!(e.starts_with("key=") && e.contains("no PEM block"), "{e}");
        let key = b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        let e = config_of(files(&dir, cert, key)).unwrap_err();
        assert!(e.contains("do not go together"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tls_failure_is_told_apart_from_other_errors() {
        let e = failed(&rustls::Error::DecryptError);
        assert!(tls_failure(&e).is_some_and(|m| !m.is_empty()));
        assert_eq!(tls_failure(&io::Error::from(io::ErrorKind::ConnectionReset)), None);
    }
}
