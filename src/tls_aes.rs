//! AES-GCM for TLS 1.3 from RustCrypto's `aes-gcm`, used by the wasm builds.
//!
//! Why this file exists: wasm32 has no AES or carry-less multiply
//! instructions, so AES-GCM there is portable code. ring's takes the slow
//! road on wasm32 (bitsliced AES, 32-bit GHASH); RustCrypto's `aes-gcm` 0.11
//! treats wasm32 as a 64-bit machine and is about twice as fast there
//! (measured on WasmEdge AOT: 73 against 158 MB/s). rustls lets a provider
//! swap only a suite's AEAD: the suites below are ring's, with the same hash
//! and HKDF, and this record protection. Natively ring keeps AES-GCM (it uses
//! AES-NI); this file is built there too, so that its tests check it against
//! ring, record by record.
//!
//! TLS 1.2's AES-GCM suites keep ring's code: on wasm a terminating route
//! puts ChaCha20-Poly1305 first anyway (`tls::server_config`), and TLS 1.2
//! clients that offer only AES-GCM are rare.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter, Nonce,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion, SupportedCipherSuite, Tls13CipherSuite};

const TAG: usize = 16;

/// One of the two AES-GCM key sizes.
#[derive(Clone, Copy)]
enum Size {
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

impl Key {
    fn new(size: Size, key: &AeadKey) -> Key {
        // rustls derives `key_len()` bytes, so the length always fits; if it
        // ever did not, the connection fails at its first record.
        let key = key.as_ref();
        let made = match size {
            Size::Aes128 => Aes128Gcm::new_from_slice(key).map(|k| Key::Aes128(Box::new(k))),
            Size::Aes256 => Aes256Gcm::new_from_slice(key).map(|k| Key::Aes256(Box::new(k))),
        };
        made.unwrap_or(Key::Unusable)
    }

    /// Encrypt `buf` in place; the tag is returned.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG], Error> {
        let nonce = (*nonce).into();
        let tag = match self {
            Key::Aes128(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
            Key::Aes256(k) => k.encrypt_inout_detached(&nonce, aad, buf.into()),
            Key::Unusable => return Err(Error::EncryptError),
        };
        tag.map(|t| t.into()).map_err(|_| Error::EncryptError)
    }

    /// Decrypt `buf` in place if `tag` authenticates it.
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

struct Aead(Size);

impl Tls13AeadAlgorithm for Aead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Records { key: Key::new(self.0, &key), iv })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Records { key: Key::new(self.0, &key), iv })
    }

    fn key_len(&self) -> usize {
        match self.0 {
            Size::Aes128 => 16,
            Size::Aes256 => 32,
        }
    }

    fn extract_keys(&self, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(match self.0 {
            Size::Aes128 => ConnectionTrafficSecrets::Aes128Gcm { key, iv },
            Size::Aes256 => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
        })
    }
}

/// One direction's record protection (RFC 8446, section 5.2): the nonce is
/// the IV XOR the record's sequence number, the header is the AAD, and the
/// content type rides at the end of the plaintext.
struct Records {
    key: Key,
    iv: Iv,
}

impl MessageEncrypter for Records {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let total = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let tag = self.key.seal(&Nonce::new(&self.iv, seq).0, &make_tls13_aad(total), payload.as_mut())?;
        payload.extend_from_slice(&tag);
        // TLS 1.3 records all say TLS 1.2 (0x0303) outside (RFC 8446, 5.1).
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG
    }
}

impl MessageDecrypter for Records {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let aad = make_tls13_aad(msg.payload.len());
        let Some(body) = msg.payload.len().checked_sub(TAG) else { return Err(Error::DecryptError) };
        let (text, tag) = msg.payload.split_at_mut(body);
        let tag: [u8; TAG] = (&*tag).try_into().map_err(|_| Error::DecryptError)?;
        self.key.open(&Nonce::new(&self.iv, seq).0, &aad, text, &tag)?;
        msg.payload.truncate(body);
        msg.into_tls13_unpadded_message()
    }
}

/// ring's TLS 1.3 AES-GCM suite `base`, with this file's record protection.
fn swapped(base: SupportedCipherSuite, aead: &'static Aead) -> SupportedCipherSuite {
    match base {
        SupportedCipherSuite::Tls13(s) => {
            // QUIC is not used by wasiter: no QUIC keys for this suite.
            let common = CipherSuiteCommon {
                suite: s.common.suite,
                hash_provider: s.common.hash_provider,
                confidentiality_limit: s.common.confidentiality_limit,
            };
            let suite = Tls13CipherSuite { common, hkdf_provider: s.hkdf_provider, aead_alg: aead, quic: None };
            SupportedCipherSuite::Tls13(Box::leak(Box::new(suite)))
        }
        other => other,
    }
}

/// The provider's suites with TLS 1.3's AES-GCM ones swapped for this file's
/// (made once; the rest as they were).
pub fn swap_in(suites: &mut [SupportedCipherSuite]) {
    use std::sync::OnceLock;
    static SUITES: OnceLock<(SupportedCipherSuite, SupportedCipherSuite)> = OnceLock::new();
    static AES128: Aead = Aead(Size::Aes128);
    static AES256: Aead = Aead(Size::Aes256);
    let (s128, s256) = *SUITES.get_or_init(|| {
        use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
        (swapped(TLS13_AES_128_GCM_SHA256, &AES128), swapped(TLS13_AES_256_GCM_SHA384, &AES256))
    });
    for s in suites.iter_mut() {
        if s.suite() == s128.suite() {
            *s = s128;
        } else if s.suite() == s256.suite() {
            *s = s256;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    use rustls::crypto::cipher::OutboundChunks;

    fn tls13(s: SupportedCipherSuite) -> &'static Tls13CipherSuite {
        match s {
            SupportedCipherSuite::Tls13(s) => s,
            _ => unreachable!("a TLS 1.3 suite"),
        }
    }

    /// Records sealed by one implementation open with the other, for every
    /// length around the block and record sizes, and a flipped bit in any
    /// byte is refused by both.
    fn agrees_with_ring(ours: &Aead, suite: &Tls13CipherSuite) {
        // Keys as a connection derives them (HKDF-Expand-Label from a secret).
        let ring = suite.aead_alg;
        let expander = suite.hkdf_provider.extract_from_secret(None, b"a traffic secret for the test");
        let key = || rustls::internal::derive_traffic_key(expander.as_ref(), ring);
        let iv = || rustls::internal::derive_traffic_iv(expander.as_ref());
        assert_eq!(key().as_ref().len(), ours.key_len());
        let (mut our_enc, mut ring_enc) = (ours.encrypter(key(), iv()), ring.encrypter(key(), iv()));
        let (mut our_dec, mut ring_dec) = (ours.decrypter(key(), iv()), ring.decrypter(key(), iv()));
        for (seq, len) in [0usize, 1, 15, 16, 17, 31, 64, 1000, 4096, 16384].into_iter().enumerate() {
            let seq = seq as u64 * 7919;
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let chunks = [plain.as_slice()];
            let msg = || OutboundPlainMessage { typ: ContentType::ApplicationData, version: ProtocolVersion::TLSv1_2, payload: OutboundChunks::new(&chunks) };
            let a = our_enc.encrypt(msg(), seq).unwrap().encode();
            let b = ring_enc.encrypt(msg(), seq).unwrap().encode();
            assert_eq!(a, b, "the same record from both, {len} bytes");
            for (dec, name) in [(&mut our_dec, "ours"), (&mut ring_dec, "ring")] {
                let mut rec = a.clone();
                let opened = dec.decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut rec[5..]), seq).unwrap();
                assert_eq!(opened.payload, plain.as_slice(), "{name} opens {len} bytes");
                for at in [5, 5 + len / 2, rec.len() - 1] {
                    let mut bad = a.clone();
                    bad[at] ^= 0x20;
                    let r = dec.decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut bad[5..]), seq);
                    assert!(r.is_err(), "{name} refuses a flipped bit at {at} of {len} bytes");
                }
            }
        }
        let mut short = [0u8; TAG - 1];
        assert!(our_dec.decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut short), 0).is_err());
    }

    #[test]
    fn aes_128_gcm_records_are_ring_s() {
        agrees_with_ring(&Aead(Size::Aes128), tls13(TLS13_AES_128_GCM_SHA256));
    }

    #[test]
    fn aes_256_gcm_records_are_ring_s() {
        agrees_with_ring(&Aead(Size::Aes256), tls13(TLS13_AES_256_GCM_SHA384));
    }

    #[test]
    fn a_key_of_the_wrong_length_fails_every_record() {
        let plain = [b"secret".as_slice()];
        let msg = OutboundPlainMessage { typ: ContentType::ApplicationData, version: ProtocolVersion::TLSv1_2, payload: OutboundChunks::new(&plain) };
        let iv = Iv::new([0; 12]);
        // 32 bytes for AES-128: no stand-in key encrypts anything.
        let mut enc = Aead(Size::Aes128).encrypter(AeadKey::from([7u8; 32]), iv);
        assert!(enc.encrypt(msg, 0).is_err());
        let mut rec = [0u8; 40];
        let mut dec = Aead(Size::Aes128).decrypter(AeadKey::from([7u8; 32]), Iv::new([0; 12]));
        assert!(dec.decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut rec), 0).is_err());
    }

    #[test]
    fn only_tls13_aes_gcm_is_swapped() {
        let mut suites = rustls::crypto::ring::default_provider().cipher_suites;
        let before: Vec<_> = suites.iter().map(|s| s.suite()).collect();
        swap_in(&mut suites);
        assert_eq!(suites.iter().map(|s| s.suite()).collect::<Vec<_>>(), before, "same suites, same order");
        let swapped = suites.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(t) if t.quic.is_none())).count();
        assert_eq!(swapped, 2, "AES-128-GCM and AES-256-GCM");
    }
}
