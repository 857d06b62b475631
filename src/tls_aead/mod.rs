//! TLS 1.3 record protection for the wasm builds, faster there than ring's.
//!
//! Why this folder exists: wasm32 has no AES, carry-less multiply or wide
//! vector instructions that ring's assembly could use, so ring runs its
//! portable C there. A profile of a TLS download through WasmEdge AOT put
//! two thirds of the proxy's CPU in ring's ChaCha20 (one block at a time)
//! and Poly1305. rustls lets a provider swap only a suite's AEAD: the suites
//! made here are ring's (same hash, same HKDF) with other record protection:
//! - `aes.rs`: AES-GCM from RustCrypto's `aes-gcm` 0.11, which treats wasm32
//!   as a 64-bit machine (about twice ring's speed there);
//! - `chacha.rs`: ChaCha20 four blocks at a time in WebAssembly SIMD;
//! - `poly1305.rs`: its MAC, two blocks at a time in WebAssembly SIMD;
//! - `seal.rs`: what a key does for the record layer, below all of them.
//!
//! Natively ring keeps every suite (AES-NI, AVX2 assembly). This folder is
//! built there too, so that its tests check every record against ring's
//! (`agrees_with_ring`), ChaCha20-Poly1305 against Wycheproof's vectors and
//! Poly1305 against RustCrypto's; `scripts/test` runs the same tests
//! compiled to wasm under wasmtime, where the SIMD code is the one that
//! runs, and the fuzz target `tls_records` compares records with ring's.
//!
//! TLS 1.2's suites keep ring's code: on wasm a terminating route puts
//! ChaCha20-Poly1305 first anyway (`tls::server_config`), and TLS 1.2 is the
//! rarer version.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]

mod aes;
mod chacha;
mod poly1305;
mod seal;

use seal::{Seal, TAG};

use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{
    CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};

/// One of this folder's AEADs, as rustls asks for one.
#[derive(Clone, Copy)]
enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Aead {
    fn key(self, key: &AeadKey) -> Box<dyn Seal> {
        match self {
            Aead::Aes128Gcm => aes::key(aes::Size::Aes128, key),
            Aead::Aes256Gcm => aes::key(aes::Size::Aes256, key),
            Aead::Chacha20Poly1305 => chacha::key(key),
        }
    }
}

impl Tls13AeadAlgorithm for Aead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Records {
            key: self.key(&key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Records {
            key: self.key(&key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::Chacha20Poly1305 => 32,
        }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(match self {
            Aead::Aes128Gcm => ConnectionTrafficSecrets::Aes128Gcm { key, iv },
            Aead::Aes256Gcm => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
            Aead::Chacha20Poly1305 => ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv },
        })
    }
}

/// One direction's record protection (RFC 8446, section 5.2): the nonce is
/// the IV XOR the record's sequence number, the header is the AAD, and the
/// content type rides at the end of the plaintext.
struct Records {
    key: Box<dyn Seal>,
    iv: Iv,
}

impl MessageEncrypter for Records {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let tag = self.key.seal(
            &Nonce::new(&self.iv, seq).0,
            &make_tls13_aad(total),
            payload.as_mut(),
        )?;
        payload.extend_from_slice(&tag);
        // TLS 1.3 records all say TLS 1.2 (0x0303) outside (RFC 8446, 5.1).
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG
    }
}

impl MessageDecrypter for Records {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let aad = make_tls13_aad(msg.payload.len());
        let Some(body) = msg.payload.len().checked_sub(TAG) else {
            return Err(Error::DecryptError);
        };
        let (text, tag) = msg.payload.split_at_mut(body);
        let tag: [u8; TAG] = (&*tag).try_into().map_err(|_| Error::DecryptError)?;
        self.key
            .open(&Nonce::new(&self.iv, seq).0, &aad, text, &tag)?;
        msg.payload.truncate(body);
        msg.into_tls13_unpadded_message()
    }
}

/// ring's TLS 1.3 suite `base`, with this folder's record protection.
fn swapped(base: SupportedCipherSuite, aead: &'static Aead) -> SupportedCipherSuite {
    match base {
        SupportedCipherSuite::Tls13(s) => {
            // QUIC is not used by wasiter: no QUIC keys for this suite.
            let common = CipherSuiteCommon {
                suite: s.common.suite,
                hash_provider: s.common.hash_provider,
                confidentiality_limit: s.common.confidentiality_limit,
            };
            let suite = Tls13CipherSuite {
                common,
                hkdf_provider: s.hkdf_provider,
                aead_alg: aead,
                quic: None,
            };
            SupportedCipherSuite::Tls13(Box::leak(Box::new(suite)))
        }
        other => other,
    }
}

/// The provider's suites with TLS 1.3's AES-GCM and ChaCha20-Poly1305
/// swapped for this folder's (made once; the rest, and the order, as they
/// were).
pub fn swap_in(suites: &mut [SupportedCipherSuite]) {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    use std::sync::OnceLock;
    static SUITES: OnceLock<[SupportedCipherSuite; 3]> = OnceLock::new();
    static AEADS: [Aead; 3] = [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::Chacha20Poly1305];
    let ours = SUITES.get_or_init(|| {
        let ring = [
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ];
        [
            swapped(ring[0], &AEADS[0]),
            swapped(ring[1], &AEADS[1]),
            swapped(ring[2], &AEADS[2]),
        ]
    });
    for s in suites.iter_mut() {
        if let Some(mine) = ours.iter().find(|o| o.suite() == s.suite()) {
            *s = *mine;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::OutboundChunks;
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };

    fn tls13(s: SupportedCipherSuite) -> &'static Tls13CipherSuite {
        match s {
            SupportedCipherSuite::Tls13(s) => s,
            _ => unreachable!("a TLS 1.3 suite"),
        }
    }

    /// Records sealed by one implementation open with the other, for every
    /// length around the block and record sizes, and a flipped bit in any
    /// byte is refused by both.
    fn agrees_with_ring(ours: Aead, suite: &Tls13CipherSuite) {
        // Keys as a connection derives them (HKDF-Expand-Label from a secret).
        let ring = suite.aead_alg;
        let expander = suite
            .hkdf_provider
            .extract_from_secret(None, b"a traffic secret for the test");
        let key = || rustls::internal::derive_traffic_key(expander.as_ref(), ring);
        let iv = || rustls::internal::derive_traffic_iv(expander.as_ref());
        assert_eq!(key().as_ref().len(), ours.key_len());
        let (mut our_enc, mut ring_enc) =
            (ours.encrypter(key(), iv()), ring.encrypter(key(), iv()));
        let (mut our_dec, mut ring_dec) =
            (ours.decrypter(key(), iv()), ring.decrypter(key(), iv()));
        let lengths = [
            0usize, 1, 15, 16, 17, 31, 63, 64, 65, 127, 128, 190, 191, 192, 193, 255, 256, 257,
            447, 448, 449, 1000, 4096, 16384,
        ];
        for (seq, len) in lengths.into_iter().enumerate() {
            let seq = seq as u64 * 7919;
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let chunks = [plain.as_slice()];
            let msg = || OutboundPlainMessage {
                typ: ContentType::ApplicationData,
                version: ProtocolVersion::TLSv1_2,
                payload: OutboundChunks::new(&chunks),
            };
            let a = our_enc.encrypt(msg(), seq).unwrap().encode();
            let b = ring_enc.encrypt(msg(), seq).unwrap().encode();
            assert_eq!(a, b, "the same record from both, {len} bytes");
            for (dec, name) in [(&mut our_dec, "ours"), (&mut ring_dec, "ring")] {
                let mut rec = a.clone();
                let opened = dec
                    .decrypt(
                        InboundOpaqueMessage::new(
                            ContentType::ApplicationData,
                            ProtocolVersion::TLSv1_2,
                            &mut rec[5..],
                        ),
                        seq,
                    )
                    .unwrap();
                assert_eq!(opened.payload, plain.as_slice(), "{name} opens {len} bytes");
                for at in [5, 5 + len / 2, rec.len() - 1] {
                    let mut bad = a.clone();
                    bad[at] ^= 0x20;
                    let r = dec.decrypt(
                        InboundOpaqueMessage::new(
                            ContentType::ApplicationData,
                            ProtocolVersion::TLSv1_2,
                            &mut bad[5..],
                        ),
                        seq,
                    );
                    assert!(
                        r.is_err(),
                        "{name} refuses a flipped bit at {at} of {len} bytes"
                    );
                }
            }
        }
        let mut short = [0u8; TAG - 1];
        assert!(our_dec
            .decrypt(
                InboundOpaqueMessage::new(
                    ContentType::ApplicationData,
                    ProtocolVersion::TLSv1_2,
                    &mut short
                ),
                0
            )
            .is_err());
    }

    #[test]
    fn aes_128_gcm_records_are_ring_s() {
        agrees_with_ring(Aead::Aes128Gcm, tls13(TLS13_AES_128_GCM_SHA256));
    }

    #[test]
    fn aes_256_gcm_records_are_ring_s() {
        agrees_with_ring(Aead::Aes256Gcm, tls13(TLS13_AES_256_GCM_SHA384));
    }

    #[test]
    fn chacha20_poly1305_records_are_ring_s() {
        agrees_with_ring(
            Aead::Chacha20Poly1305,
            tls13(TLS13_CHACHA20_POLY1305_SHA256),
        );
    }

    #[test]
    fn a_key_of_the_wrong_length_fails_every_record() {
        let plain = [b"secret".as_slice()];
        let msg = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::new(&plain),
        };
        // 32 bytes for AES-128: no stand-in key encrypts anything.
        let mut enc = Aead::Aes128Gcm.encrypter(AeadKey::from([7u8; 32]), Iv::new([0; 12]));
        assert!(enc.encrypt(msg, 0).is_err());
        let mut rec = [0u8; 40];
        let mut dec = Aead::Aes128Gcm.decrypter(AeadKey::from([7u8; 32]), Iv::new([0; 12]));
        assert!(dec
            .decrypt(
                InboundOpaqueMessage::new(
                    ContentType::ApplicationData,
                    ProtocolVersion::TLSv1_2,
                    &mut rec
                ),
                0
            )
            .is_err());
    }

    #[test]
    fn only_tls13_aes_gcm_and_chacha_are_swapped() {
        let mut suites = rustls::crypto::ring::default_provider().cipher_suites;
        let before: Vec<_> = suites.iter().map(|s| s.suite()).collect();
        swap_in(&mut suites);
        assert_eq!(
            suites.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            before,
            "same suites, same order"
        );
        let swapped = suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(t) if t.quic.is_none()))
            .count();
        assert_eq!(swapped, 3, "AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305");
    }
}
