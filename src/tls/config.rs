//! What every TLS configuration here is made of, below the files that
//! make them (`mod.rs`'s routes, `opener.rs`'s opened names): the cipher
//! suites, the roots an origin is verified against, PEM files read, a
//! session started from bytes already read, and how a TLS error is told.
//! It takes nothing from its neighbours.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CipherSuite, Connection, RootCertStore, ServerConfig, ServerConnection};

/// Encrypted bytes that may wait for the client's socket, per connection.
pub const TLS_QUEUE: usize = 64 * 1024;

/// ring's suites; on the wasm builds, TLS 1.3's records are sealed by
/// `tls_aead` instead (RustCrypto's AES-GCM, a four-way SIMD ChaCha20).
pub(super) fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if cfg!(target_family = "wasm") {
        crate::tls_aead::swap_in(&mut provider.cipher_suites);
    }
    provider
}

/// The suites as a server orders them.
pub(super) fn server_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = provider();
    if cfg!(target_family = "wasm") {
        // wasm has no AES instructions: ring's portable AES-GCM moves ~75 MB/s
        // there, its ChaCha20-Poly1305 ~600 (WasmEdge AOT, simd128). A client
        // with AES-NI lists AES-GCM first, so as the server we choose, ChaCha
        // first (AES-GCM stays offered for clients without ChaCha).
        provider.cipher_suites.sort_by_key(|s| !matches!(s.suite(), CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256));
    }
    provider
}

/// Where a system's CA bundle usually is (Debian/Ubuntu/Alpine, Fedora/RHEL,
/// macOS-style): read directly, as the wasm runtimes have no other way.
const SYSTEM_ROOTS: [&str; 3] = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/// The roots an origin's certificate is verified against: the file given
/// (`given`'s option names it in errors), else the system's bundle.
pub(super) fn roots(given: Option<&str>, option: &str) -> Result<RootCertStore, String> {
    let file = match given {
        Some(ca) => ca.to_string(),
        None => match SYSTEM_ROOTS.iter().find(|f| std::path::Path::new(f).exists()) {
            Some(f) => f.to_string(),
            None => return Err(format!("upstream-tls: no system CA bundle is readable ({}); give {option} (under WasmEdge or wasmtime, --dir /etc)", SYSTEM_ROOTS.join(", "))),
        },
    };
    let what = if given.is_some() { option.split('=').next().unwrap_or(option) } else { "the system CA bundle" };
    let mut roots = RootCertStore::empty();
    let certs = certificates(&file).map_err(|e| format!("{what} {file}: {}", pem_error(&e)))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{what} {file}: no usable CA certificate in it"));
    }
    Ok(roots)
}

/// SHA-256 (ring's): the CA's name, placeholders made from a value.
pub fn sha256(bytes: &[u8]) -> Result<[u8; 32], String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

/// Every CERTIFICATE block of a PEM file (a chain, or a CA bundle).
pub(super) fn certificates(file: &str) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_file_iter(file)?.collect()
}

pub(super) fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read it: {} (under WasmEdge or wasmtime, pass its folder with --dir)", crate::sys::describe(e)),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of the kind expected in it".to_string(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// A new client's TLS state, fed what the front already read from it (a
/// peeked ClientHello).
pub fn accept(config: &Arc<ServerConfig>, already_read: &[u8]) -> io::Result<Connection> {
    let mut tls = Connection::Server(ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?);
    tls.set_buffer_limit(Some(TLS_QUEUE));
    let mut rest = already_read;
    while !rest.is_empty() {
        if tls.read_tls(&mut rest)? == 0 {
            break;
        }
        tls.process_new_packets().map_err(|e| failed(&e))?;
    }
    Ok(tls)
}

/// A TLS error, as the close line shows it (`reason=tls`).
pub(super) fn failed(e: &rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError(e.to_string()))
}

/// Marks an `io::Error` as TLS's own (a bad record, a failed handshake).
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// A leaf's server configuration (`ca.rs`): TLS 1.3 and 1.2, `http/1.1`.
pub(super) fn leaf_config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(server_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("a minted leaf: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = cfg!(target_family = "wasm");
    Ok(Arc::new(config))
}
