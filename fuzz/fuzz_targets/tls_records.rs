//! TLS 1.3 records sealed by `wasiter::tls_aead` (the wasm builds' AES-GCM
//! and four-way ChaCha20-Poly1305) against ring's, the reference: from
//! arbitrary traffic secrets, sequence numbers and payloads, both must make
//! the same record, each must open the other's, and a record with one bit
//! flipped must be refused. Natively this runs the portable lanes of
//! chacha.rs, the same schedule as the wasm SIMD code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustls::crypto::cipher::{InboundOpaqueMessage, OutboundChunks, OutboundPlainMessage};
use rustls::{ContentType, ProtocolVersion, SupportedCipherSuite};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some((secret, rest)) = rest.split_at_checked(32) else { return };
    let Some((seq, payload)) = rest.split_at_checked(8) else { return };
    let seq = u64::from_le_bytes(seq.try_into().unwrap());
    let ring_suites = rustls::crypto::ring::default_provider().cipher_suites;
    let mut ours = ring_suites.clone();
    wasiter::tls_aead::swap_in(&mut ours);
    let tls13 = |s: &SupportedCipherSuite| match s {
        SupportedCipherSuite::Tls13(t) => Some(*t),
        _ => None,
    };
    let theirs: Vec<_> = ring_suites.iter().filter_map(tls13).collect();
    let mine: Vec<_> = ours.iter().filter_map(tls13).collect();
    let i = usize::from(pick) % theirs.len();
    let (ring, ours) = (theirs[i], mine[i]);
    assert_eq!(ring.common.suite, ours.common.suite);

    let expander = ring.hkdf_provider.extract_from_secret(None, secret);
    let key = || rustls::internal::derive_traffic_key(expander.as_ref(), ring.aead_alg);
    let iv = || rustls::internal::derive_traffic_iv(expander.as_ref());
    let chunks = [payload];
    let msg = || OutboundPlainMessage { typ: ContentType::ApplicationData, version: ProtocolVersion::TLSv1_2, payload: OutboundChunks::new(&chunks) };
    let a = ours.aead_alg.encrypter(key(), iv()).encrypt(msg(), seq).unwrap().encode();
    let b = ring.aead_alg.encrypter(key(), iv()).encrypt(msg(), seq).unwrap().encode();
    assert_eq!(a, b, "the same record from ours and ring's");
    let mut rec = a.clone();
    let opened = ours.aead_alg.decrypter(key(), iv()).decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut rec[5..]), seq).unwrap();
    assert_eq!(opened.payload, payload);
    let at = 5 + usize::from(pick) * 7 % (a.len() - 5);
    let mut bad = a.clone();
    bad[at] ^= 1 << (pick % 8);
    let r = ours.aead_alg.decrypter(key(), iv()).decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut bad[5..]), seq);
    assert!(r.is_err(), "a flipped bit at {at} is refused");
});
