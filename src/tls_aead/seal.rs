//! What an AEAD key does for the record layer (mod.rs), the one contract
//! aes.rs and chacha.rs each fulfil: a file of its own, below all three, so
//! that the record layer can pick a key's kind and the kinds can know the
//! contract without either file using the other.

use rustls::Error;

/// The length of every tag here (AES-GCM and Poly1305 alike).
pub const TAG: usize = 16;

/// An AEAD key, ready to seal and open records in place (detached tags).
pub trait Seal: Send + Sync {
    /// Encrypt `buf` in place; the tag is returned.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG], Error>;
    /// Decrypt `buf` in place if `tag` authenticates it (else leave it).
    fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG]) -> Result<(), Error>;
}
