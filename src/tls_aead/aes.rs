//! AES-GCM from RustCrypto's `aes-gcm` 0.11 (see the folder's mod.rs for
//! why): on WasmEdge AOT 158 MB/s where ring's portable code does 73.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use rustls::crypto::cipher::AeadKey;
use rustls::Error;

use super::seal::{Seal, TAG};

/// One of the two AES-GCM key sizes.
#[derive(Clone, Copy)]
pub enum Size {
    Aes128,
    Aes256,
}

/// A key, ready to seal and open records.
enum Key {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    /// A key of the wrong length: every record fails (never a stand-in key).
    Unusable,
}

pub fn key(size: Size, key: &AeadKey) -> Box<dyn Seal> {
    // rustls derives `key_len()` bytes, so the length always fits; if it
    // ever did not, the connection fails at its first record.
    let key = key.as_ref();
    let made = match size {
        Size::Aes128 => Aes128Gcm::new_from_slice(key).map(|k| Key::Aes128(Box::new(k))),
        Size::Aes256 => Aes256Gcm::new_from_slice(key).map(|k| Key::Aes256(Box::new(k))),
    };
    Box::new(made.unwrap_or(Key::Unusable))
}

impl Seal for Key {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG], Error> {
        let nonce = (*nonce).into();
        let tag = match self {
            Key::Aes128(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
            Key::Aes256(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
            Key::Unusable => return Err(Error::EncryptError),
        };
        tag.map(|t| t.into()).map_err(|_| Error::EncryptError)
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG]) -> Result<(), Error> {
        let (nonce, tag) = ((*nonce).into(), (*tag).into());
        match self {
            Key::Aes128(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Key::Aes256(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Key::Unusable => return Err(Error::DecryptError),
        }
        .map_err(|_| Error::DecryptError)
    }
}
