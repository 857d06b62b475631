//! What opens TLS for a forward route's `open=` names: the sandbox's CA
//! (`ca.rs`), whose leaves the clients see, and the client side toward the
//! origins. A file of its own beside `mod.rs`, which holds what every TLS
//! route shares (configurations, sessions, the relay's end).

use std::io;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection};

use super::ca;
use super::config::{accept, provider, roots, TLS_QUEUE};

/// `--make-ca DIR`: the CA made there, or kept if it is there already.
pub fn make_ca(dir: &str) -> Result<(ca::Made, String), String> {
    ca::load_or_make(dir).map(|(ca, made)| (made, ca.cert_file))
}

/// What a forward route needs to open TLS (`open=`): the sandbox's CA, whose
/// leaves the clients see, and the client side toward the origins,
/// verified against `--upstream-ca` or the system's roots, the name sent and
/// verified being the one the client asked for.
#[derive(Debug)]
pub struct Opener {
    pub ca: ca::Ca,
    client: Arc<ClientConfig>,
}

/// The opener for `--ca DIR` and `--upstream-ca FILE`: the CA loaded, or
/// made and written (`Made::New`, for the start line to say so).
pub fn opener(ca_dir: &str, upstream_ca: Option<&str>) -> Result<(Opener, ca::Made), String> {
    let (ca, made) = ca::load_or_make(ca_dir)?;
    let roots = roots(upstream_ca, "--upstream-ca FILE")?;
    let mut client = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Opener { ca, client: Arc::new(client) }, made))
}

impl Opener {
    /// The certificate the sandbox trusts.
    pub fn cert_file(&self) -> &str {
        &self.ca.cert_file
    }

    /// The client's side of an opened connection to `name`, fed its
    /// ClientHello (`already_read`).
    pub fn accept(&self, name: &str, already_read: &[u8]) -> io::Result<Connection> {
        let config = self.ca.server_config(name).map_err(io::Error::other)?;
        accept(&config, already_read)
    }

    /// The origin's side of an opened connection to `name`.
    pub fn connect(&self, name: &str) -> io::Result<Connection> {
        let name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let mut tls = ClientConnection::new(Arc::clone(&self.client), name).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_QUEUE));
        Ok(Connection::Client(tls))
    }
}


