//! The sandbox's CA (`--ca DIR`): made once, kept in two files, and the
//! leaves it signs for the names a forward route opens (`open=`).
//!
//! - `DIR/ca-key.pem`: its ECDSA P-256 key, written only by the proxy and
//!   readable only by its user (`sys::write_private`; on wasm the launchers
//!   give the runtime `umask 077`);
//! - `DIR/ca.pem`: its certificate, the one file the sandbox gets, to trust.
//!
//! Leaves are never written anywhere: each is minted in memory on a name's
//! first use, valid for [`LEAF_LIFE`], cached (at most [`LEAVES`] names,
//! the oldest dropped first) and minted again once half its life is gone.
//! All leaves share one key made at start: a leaf is only as good as the CA
//! that signed it, and one key keeps a first request's cost to one signature.
//!
//! The CA's name is derived from its key (`wasiter egress CA <8 hex>`), so
//! that a restart signs leaves with the very issuer name of `ca.pem` without
//! parsing it: rcgen reads certificates only with its x509 parser, a
//! dependency as large as the rest of this module's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, ExtendedKeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// How long a leaf is valid: short, so that a leaf copied out of a sandbox
/// is soon worth nothing; reminted after half of it.
pub const LEAF_LIFE: Duration = Duration::from_secs(2 * 24 * 3600);
/// Leaves kept in memory at once (one per opened name).
pub const LEAVES: usize = 1024;
/// How long the CA itself is valid.
const CA_LIFE: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// The CA and the leaves minted so far.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The one key of every leaf.
    leaf_key: KeyPair,
    /// The leaves' server configurations, by name, with when each was minted.
    leaves: RefCell<HashMap<String, (Arc<ServerConfig>, SystemTime)>>,
    /// The certificate the sandbox trusts, as PEM (for `--make-ca`'s words).
    pub cert_file: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_file", &self.cert_file).finish_non_exhaustive()
    }
}

/// What `load_or_make` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    Kept,
    New,
}

/// The CA in `dir`: loaded if its key is there, else made (key and
/// certificate both written). Errors name the file and what to do.
pub fn load_or_make(dir: &str) -> Result<(Ca, Made), String> {
    let key_file = format!("{dir}/ca-key.pem");
    let cert_file = format!("{dir}/ca.pem");
    let (key, made) = if Path::new(&key_file).exists() {
        let pem = std::fs::read_to_string(&key_file).map_err(|e| format!("--ca {dir}: cannot read {key_file}: {}", crate::sys::describe(&e)))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| format!("--ca {dir}: {key_file} holds no usable key ({e}); move it away to have a new CA made"))?;
        if !Path::new(&cert_file).exists() {
            return Err(format!("--ca {dir}: {key_file} is there but {cert_file} is not; move the key away to have a new CA made"));
        }
        (key, Made::Kept)
    } else {
        if !Path::new(dir).is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| format!("--ca {dir}: cannot make the folder: {}", crate::sys::describe(&e)))?;
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("--ca {dir}: cannot make a key: {e}"))?;
        let cert = ca_params(&key)?.self_signed(&key).map_err(|e| format!("--ca {dir}: cannot sign the CA: {e}"))?;
        crate::sys::write_private(&key_file, key.serialize_pem().as_bytes()).map_err(|e| format!("--ca {dir}: cannot write {key_file}: {}", crate::sys::describe(&e)))?;
        std::fs::write(&cert_file, cert.pem()).map_err(|e| format!("--ca {dir}: cannot write {cert_file}: {}", crate::sys::describe(&e)))?;
        (key, Made::New)
    };
    let issuer = Issuer::new(ca_params(&key)?, key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("--ca {dir}: cannot make the leaves' key: {e}"))?;
    Ok((Ca { issuer, leaf_key, leaves: RefCell::new(HashMap::new()), cert_file }, made))
}

/// The CA's certificate as made (and as rebuilt to sign with): its name
/// from its key, so that both agree.
fn ca_params(key: &KeyPair) -> Result<CertificateParams, String> {
    let digest = super::config::sha256(key.public_key_raw())?;
    let tag: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("wasiter egress CA {tag}"));
    name.push(DnType::OrganizationName, "wasiter");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + CA_LIFE).into();
    Ok(params)
}

impl Ca {
    /// The server configuration for an opened connection to `name`: its
    /// leaf, minted now if none is cached or the cached one is half spent.
    /// ALPN offers `http/1.1` only: the proxy reads HTTP/1.1, and an
    /// HTTP/2 client that finds no `h2` speaks HTTP/1.1 (curl, Go, Node,
    /// browsers all do).
    pub fn server_config(&self, name: &str) -> Result<Arc<ServerConfig>, String> {
        let now = SystemTime::now();
        if let Some((config, minted)) = self.leaves.borrow().get(name) {
            if now.duration_since(*minted).is_ok_and(|age| age < LEAF_LIFE / 2) {
                return Ok(Arc::clone(config));
            }
        }
        let config = self.mint(name, now)?;
        let mut leaves = self.leaves.borrow_mut();
        if leaves.len() >= LEAVES && !leaves.contains_key(name) {
            let oldest = leaves.iter().min_by_key(|(_, (_, minted))| *minted).map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                leaves.remove(&oldest);
            }
        }
        leaves.insert(name.to_string(), (Arc::clone(&config), now));
        Ok(config)
    }

    fn mint(&self, name: &str, now: SystemTime) -> Result<Arc<ServerConfig>, String> {
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(|e| format!("no certificate can name {name:?}: {e}"))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + LEAF_LIFE).into();
        let leaf = params.signed_by(&self.leaf_key, &self.issuer).map_err(|e| format!("cannot sign a leaf for {name}: {e}"))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
        super::config::leaf_config(chain, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS handshake in memory: a client trusting `roots` asks for `name`.
    fn handshake(roots: &rustls::RootCertStore, name: &str, server: Arc<ServerConfig>) -> Result<(), String> {
        use rustls::{ClientConfig, ClientConnection, ServerConnection};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_root_certificates(roots.clone()).with_no_client_auth();
        let mut c = ClientConnection::new(Arc::new(client), name.to_string().try_into().unwrap()).unwrap();
        let mut s = ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            s.read_tls(&mut &wire[..]).unwrap();
            s.process_new_packets().map_err(|e| format!("{e:?}"))?;
            wire.clear();
            s.write_tls(&mut wire).unwrap();
            c.read_tls(&mut &wire[..]).unwrap();
            c.process_new_packets().map_err(|e| format!("{e:?}"))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("no end to the handshake".into())
    }

    #[test]
    fn a_ca_is_made_once_kept_and_signs_leaves_per_name() {
        let dir = std::env::temp_dir().join(format!("wasiter-ca-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.display().to_string();
        let (ca, made) = load_or_make(&d).unwrap();
        assert_eq!(made, Made::New);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("ca-key.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the key is its owner's alone");
        }
        let pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        let a = ca.server_config("api.github.test").unwrap();
        assert!(Arc::ptr_eq(&a, &ca.server_config("api.github.test").unwrap()), "cached");
        assert!(!Arc::ptr_eq(&a, &ca.server_config("other.test").unwrap()));
        let (again, made) = load_or_make(&d).unwrap();
        assert_eq!(made, Made::Kept);
        assert_eq!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), pem, "kept, not made again");
        // A leaf from the CA as kept verifies against ca.pem as first made.
        let roots = super::super::config::roots(Some(&format!("{d}/ca.pem")), "--upstream-ca FILE").unwrap();
        assert!(handshake(&roots, "x.test", again.server_config("x.test").unwrap()).is_ok());
        let wrong = handshake(&roots, "y.test", again.server_config("x.test").unwrap()).unwrap_err();
        assert!(wrong.contains("NotValidForName"), "{wrong}");
        std::fs::remove_file(dir.join("ca.pem")).unwrap();
        assert!(load_or_make(&d).unwrap_err().contains("ca.pem is not"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
