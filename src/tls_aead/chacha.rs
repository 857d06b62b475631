//! ChaCha20-Poly1305 (RFC 8439), with ChaCha20 four blocks at a time.
//!
//! Why not ring's: a profile of a TLS download through WasmEdge AOT showed
//! ring's portable ChaCha20 as LLVM vectorises it, one block per vector
//! (a row of the state in each), shuffling the rows back into place twice a
//! round. Here each of the sixteen state words is one vector holding that
//! word of four consecutive blocks, so a quarter-round step is one add, xor
//! or rotate for all four blocks and no shuffle is needed until the end.
//! On wasm32 the vector is `v128` (WebAssembly SIMD: WasmEdge AOT and
//! wasmtime compile it to SSE/AVX); elsewhere it is `[u32; 4]` with the
//! same five operations, so the native tests run the same schedule (and
//! `scripts/test` runs them compiled to wasm, where `v128` is used).
//!
//! ChaCha20 is add, rotate and xor only: no tables, no branch on a secret.
//! Poly1305 is `poly1305.rs` (two blocks per vector, constant time), and a
//! tag is compared without an early exit.
//!
//! Indexing here is into fixed-size arrays by constants or by loop bounds
//! that fit them, and slices are cut at lengths taken with `min`: nothing
//! a peer sends can reach an index out of bounds.
#![allow(clippy::indexing_slicing)]

use rustls::crypto::cipher::AeadKey;
use rustls::Error;

use super::poly1305::le32;
use super::seal::{Seal, TAG};
use lanes::{transpose, V};

/// "expand 32-byte k", the first row of every block.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A ChaCha20-Poly1305 key as eight little-endian words (None: rustls gave
/// a key of the wrong length, and every record fails).
struct Key(Option<[u32; 8]>);

pub fn key(key: &AeadKey) -> Box<dyn Seal> {
    let words = <[u8; 32]>::try_from(key.as_ref())
        .ok()
        .map(|k| std::array::from_fn(|i| le32(&k, 4 * i)));
    Box::new(Key(words))
}

impl Seal for Key {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG], Error> {
        let key = self.0.as_ref().ok_or(Error::EncryptError)?;
        let first = four_blocks(key, nonce, 0);
        crypt(key, nonce, &first, buf);
        Ok(tag(&first, aad, buf))
    }

    fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag_given: &[u8; TAG],
    ) -> Result<(), Error> {
        let key = self.0.as_ref().ok_or(Error::DecryptError)?;
        let first = four_blocks(key, nonce, 0);
        // Authenticate before decrypting: a forged record is left as it came.
        let ours = tag(&first, aad, buf);
        let differ = ours
            .iter()
            .zip(tag_given)
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        if std::hint::black_box(differ) != 0 {
            return Err(Error::DecryptError);
        }
        crypt(key, nonce, &first, buf);
        Ok(())
    }
}

/// XOR `buf` with the key stream from block 1 on (block 0 keys Poly1305):
/// `first` holds blocks 0 to 3, and the rest is made four blocks at a time.
fn crypt(key: &[u32; 8], nonce: &[u8; 12], first: &[u8; 256], buf: &mut [u8]) {
    let (head, rest) = buf.split_at_mut(buf.len().min(192));
    xor(head, &first[64..]);
    let mut counter = 4u32;
    for chunk in rest.chunks_mut(256) {
        xor(chunk, &four_blocks(key, nonce, counter));
        counter = counter.wrapping_add(4);
    }
}

/// `data ^= stream`, sixteen bytes at a time (`stream` is at least as long).
fn xor(data: &mut [u8], stream: &[u8]) {
    let whole = data.len() / 16 * 16;
    let (body, tail) = data.split_at_mut(whole);
    for (d, s) in body.chunks_exact_mut(16).zip(stream.chunks_exact(16)) {
        let x = u128::from_le_bytes(d.try_into().unwrap_or_default())
            ^ u128::from_le_bytes(s.try_into().unwrap_or_default());
        d.copy_from_slice(&x.to_le_bytes());
    }
    for (d, s) in tail.iter_mut().zip(&stream[whole..]) {
        *d ^= s;
    }
}

/// The record's tag (RFC 8439, 2.8): Poly1305 keyed by block 0's first 32
/// bytes over the AAD and the ciphertext (`poly1305.rs`).
fn tag(first: &[u8; 256], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG] {
    let poly_key: [u8; 32] = std::array::from_fn(|i| first[i]);
    super::poly1305::aead_tag(&poly_key, aad, ciphertext)
}

/// Key stream blocks `counter` to `counter + 3`, 256 bytes.
fn four_blocks(key: &[u32; 8], nonce: &[u8; 12], counter: u32) -> [u8; 256] {
    let start: [V; 16] = std::array::from_fn(|i| match i {
        0..=3 => V::splat(SIGMA[i]),
        4..=11 => V::splat(key[i - 4]),
        12 => V::counters(counter),
        _ => V::splat(le32(nonce, 4 * (i - 13))),
    });
    let mut x = start;
    for _ in 0..10 {
        // A column round, then a diagonal round (RFC 8439, 2.3).
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    let mut out = [0u8; 256];
    for row in 0..4 {
        let w = |i: usize| x[4 * row + i].add(start[4 * row + i]);
        // Words 4*row..4*row+4 of block b are lane b of these four vectors.
        for (b, bytes) in transpose(w(0), w(1), w(2), w(3)).iter().enumerate() {
            out[64 * b + 16 * row..][..16].copy_from_slice(bytes);
        }
    }
    out
}

#[inline(always)]
fn quarter(x: &mut [V; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].add(x[b]);
    x[d] = x[d].xor(x[a]).rotl::<16>();
    x[c] = x[c].add(x[d]);
    x[b] = x[b].xor(x[c]).rotl::<12>();
    x[a] = x[a].add(x[b]);
    x[d] = x[d].xor(x[a]).rotl::<8>();
    x[c] = x[c].add(x[d]);
    x[b] = x[b].xor(x[c]).rotl::<7>();
}

/// Four 32-bit lanes: WebAssembly's `v128`.
#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct V(v128);

    impl V {
        #[inline(always)]
        pub fn splat(x: u32) -> V {
            V(u32x4_splat(x))
        }
        /// `c`, `c + 1`, `c + 2`, `c + 3`: the block counters.
        #[inline(always)]
        pub fn counters(c: u32) -> V {
            V(u32x4(
                c,
                c.wrapping_add(1),
                c.wrapping_add(2),
                c.wrapping_add(3),
            ))
        }
        #[inline(always)]
        pub fn add(self, o: V) -> V {
            V(i32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn xor(self, o: V) -> V {
            V(v128_xor(self.0, o.0))
        }
        #[inline(always)]
        pub fn rotl<const N: u32>(self) -> V {
            V(v128_or(i32x4_shl(self.0, N), u32x4_shr(self.0, 32 - N)))
        }
    }

    /// Lane `b` of `a`, `b_`, `c`, `d`, as 16 little-endian bytes, for each
    /// `b`: a 4x4 transpose of 32-bit words.
    #[inline(always)]
    pub fn transpose(a: V, b: V, c: V, d: V) -> [[u8; 16]; 4] {
        let ab_lo = i32x4_shuffle::<0, 4, 1, 5>(a.0, b.0); // a0 b0 a1 b1
        let ab_hi = i32x4_shuffle::<2, 6, 3, 7>(a.0, b.0); // a2 b2 a3 b3
        let cd_lo = i32x4_shuffle::<0, 4, 1, 5>(c.0, d.0);
        let cd_hi = i32x4_shuffle::<2, 6, 3, 7>(c.0, d.0);
        let rows = [
            i64x2_shuffle::<0, 2>(ab_lo, cd_lo), // a0 b0 c0 d0
            i64x2_shuffle::<1, 3>(ab_lo, cd_lo),
            i64x2_shuffle::<0, 2>(ab_hi, cd_hi),
            i64x2_shuffle::<1, 3>(ab_hi, cd_hi),
        ];
        rows.map(|r| {
            let (lo, hi) = (
                i64x2_extract_lane::<0>(r) as u64,
                i64x2_extract_lane::<1>(r) as u64,
            );
            (u128::from(lo) | u128::from(hi) << 64).to_le_bytes()
        })
    }
}

/// Four 32-bit lanes, portably (the native build's tests run this).
#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    #[derive(Clone, Copy)]
    pub struct V([u32; 4]);

    impl V {
        pub fn splat(x: u32) -> V {
            V([x; 4])
        }
        pub fn counters(c: u32) -> V {
            V(std::array::from_fn(|i| c.wrapping_add(i as u32)))
        }
        pub fn add(self, o: V) -> V {
            V(std::array::from_fn(|i| self.0[i].wrapping_add(o.0[i])))
        }
        pub fn xor(self, o: V) -> V {
            V(std::array::from_fn(|i| self.0[i] ^ o.0[i]))
        }
        pub fn rotl<const N: u32>(self) -> V {
            V(self.0.map(|x| x.rotate_left(N)))
        }
    }

    pub fn transpose(a: V, b: V, c: V, d: V) -> [[u8; 16]; 4] {
        std::array::from_fn(|lane| {
            let mut out = [0u8; 16];
            for (i, v) in [a, b, c, d].iter().enumerate() {
                out[4 * i..4 * i + 4].copy_from_slice(&v.0[lane].to_le_bytes());
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        if s == "-" {
            return Vec::new();
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8439, 2.3.2: the block function for counter 1.
    #[test]
    fn the_rfc_block_is_ours() {
        let k: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key: [u32; 8] = std::array::from_fn(|i| le32(&k, 4 * i));
        let nonce: [u8; 12] = hex("000000090000004a00000000").try_into().unwrap();
        let blocks = four_blocks(&key, &nonce, 1);
        let want = hex(concat!(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e",
            "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
        ));
        assert_eq!(&blocks[..64], &want[..]);
        // The next three are blocks 2, 3 and 4 of the same stream.
        assert_eq!(&blocks[64..128], &four_blocks(&key, &nonce, 2)[..64]);
        assert_eq!(&blocks[192..], &four_blocks(&key, &nonce, 4)[..64]);
    }

    /// Every 96-bit-nonce test of Wycheproof's chacha20_poly1305_test.json
    /// (the RFC's own, pseudorandom lengths, Poly1305 edge cases, modified
    /// tags): valid ones seal to their ciphertext and tag and open again;
    /// invalid ones do not open, and leave the ciphertext as it was.
    #[test]
    fn wycheproof_vectors() {
        let text = include_str!("../../tests/vectors/chacha20_poly1305.txt");
        let (mut valid, mut invalid) = (0, 0);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(' ').collect();
            let [id, k, n, aad, msg, ct, tg, result] = f[..] else {
                panic!("a bad line: {line}")
            };
            let (k, n, aad, msg, ct, tg) = (hex(k), hex(n), hex(aad), hex(msg), hex(ct), hex(tg));
            let seal = key(&AeadKey::from(<[u8; 32]>::try_from(k).unwrap()));
            let nonce: [u8; 12] = n.try_into().unwrap();
            let tag_given: [u8; TAG] = tg.try_into().unwrap();
            let mut buf = ct.clone();
            let opened = seal.open(&nonce, &aad, &mut buf, &tag_given);
            if result == "valid" {
                valid += 1;
                assert!(opened.is_ok(), "test {id} opens");
                assert_eq!(buf, msg, "test {id}: the plaintext");
                let mut sealed = msg.clone();
                assert_eq!(
                    seal.seal(&nonce, &aad, &mut sealed).unwrap(),
                    tag_given,
                    "test {id}: the tag"
                );
                assert_eq!(sealed, ct, "test {id}: the ciphertext");
            } else {
                invalid += 1;
                assert!(opened.is_err(), "test {id} is refused");
                assert_eq!(buf, ct, "test {id}: a refused record is left as it came");
            }
        }
        assert!(
            valid > 200 && invalid > 50,
            "{valid} valid and {invalid} invalid tests read"
        );
    }
}
