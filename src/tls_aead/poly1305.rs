//! Poly1305 as ChaCha20-Poly1305 uses it (RFC 8439, 2.5 and 2.8), with the
//! ciphertext's blocks two at a time.
//!
//! Why our own: after the four-way ChaCha20, a profile of a TLS download on
//! WasmEdge AOT put Poly1305 (RustCrypto's, one block at a time) at the top.
//! The arithmetic is poly1305-donna's: the accumulator and r in five 26-bit
//! limbs, 25 products of 32 by 32 bits per block, carries after each block.
//! Two lanes take the even and the odd blocks of a run (each multiplied by
//! r² per step) and are joined at its end, h = a·r² + b·r: one
//! `u64x2_extmul_low_u32x4` then does the work of two scalar multiplies.
//! On wasm32 a lane pair is WebAssembly SIMD; elsewhere `[u64; 2]`, with the
//! same steps, so that the native tests run them too.
//!
//! The AEAD's input is always whole blocks (the AAD and the ciphertext are
//! zero-padded to 16 bytes, then a block of both lengths), so every block
//! carries the 2^128 bit. Constant time: no branch or index depends on the
//! key or the data; the final reduction selects by mask.
#![allow(clippy::indexing_slicing)] // fixed-size limb arrays, indices below their length

use super::seal::TAG;
use lanes::Pair;

const MASK: u32 = 0x3ff_ffff;

/// r, its limbs times 5 (for the reduction mod 2^130 - 5), and r².
struct Key {
    r: [u32; 5],
    r2: [u32; 5],
}

/// The tag of `aad` and `ciphertext` under the one-time key `key` (the
/// first 32 bytes of ChaCha20's block 0): RFC 8439's Poly1305 over
/// `aad ‖ pad16 ‖ ciphertext ‖ pad16 ‖ le64(aad.len) ‖ le64(ciphertext.len)`.
pub fn aead_tag(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG] {
    let clamped = [
        word(key, 0) & 0x0fff_ffff,
        word(key, 4) & 0x0fff_fffc,
        word(key, 8) & 0x0fff_fffc,
        word(key, 12) & 0x0fff_fffc,
    ];
    let r = limbs(clamped, 0);
    let k = Key { r, r2: carry(mul(&r.map(u64::from), &r)) };
    let mut h = [0u32; 5];
    blocks(&mut h, &k, aad);
    blocks(&mut h, &k, ciphertext);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    block(&mut h, &k.r, &lengths);
    finish(h, [word(key, 16), word(key, 20), word(key, 24), word(key, 28)])
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A 16-byte block (four little-endian words) as five 26-bit limbs, plus
/// `high` at bit 128 (1 << 24 in the top limb).
fn limbs(t: [u32; 4], high: u32) -> [u32; 5] {
    [
        t[0] & MASK,
        ((t[0] >> 26) | (t[1] << 6)) & MASK,
        ((t[1] >> 20) | (t[2] << 12)) & MASK,
        ((t[2] >> 14) | (t[3] << 18)) & MASK,
        (t[3] >> 8) | high,
    ]
}

fn message(m: &[u8]) -> [u32; 5] {
    limbs([word(m, 0), word(m, 4), word(m, 8), word(m, 12)], 1 << 24)
}

/// h·r before the carries: 25 products, the limbs above 2^130 folded back
/// times 5 (2^130 = 5 mod p).
fn mul(h: &[u64; 5], r: &[u32; 5]) -> [u64; 5] {
    let [r0, r1, r2, r3, r4] = r.map(u64::from);
    let [s1, s2, s3, s4] = [r1 * 5, r2 * 5, r3 * 5, r4 * 5];
    let [h0, h1, h2, h3, h4] = *h;
    [
        h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1,
        h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2,
        h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3,
        h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4,
        h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0,
    ]
}

/// Carry the products back into 26-bit limbs (the top one folded times 5).
fn carry(d: [u64; 5]) -> [u32; 5] {
    let mask = u64::from(MASK);
    let mut d = d;
    for i in 0..4 {
        d[i + 1] += d[i] >> 26;
        d[i] &= mask;
    }
    d[0] += (d[4] >> 26) * 5;
    d[4] &= mask;
    d[1] += d[0] >> 26;
    d[0] &= mask;
    d.map(|x| x as u32)
}

/// One block: h = (h + m)·r.
fn block(h: &mut [u32; 5], r: &[u32; 5], m: &[u8]) {
    let m = message(m);
    let sum: [u64; 5] = std::array::from_fn(|i| u64::from(h[i]) + u64::from(m[i]));
    *h = carry(mul(&sum, r));
}

/// `data`, zero-padded to whole blocks, into h: pairs of blocks through the
/// two lanes while at least four blocks remain, the rest one at a time.
fn blocks(h: &mut [u32; 5], k: &Key, data: &[u8]) {
    let whole = data.len() / 16;
    let paired = if whole >= 4 { whole / 2 * 2 } else { 0 };
    let (run, rest) = data.split_at(paired * 16);
    if !run.is_empty() {
        *h = two_lanes(h, k, run);
    }
    let mut chunks = rest.chunks_exact(16);
    for m in &mut chunks {
        block(h, &k.r, m);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut padded = [0u8; 16];
        padded[..tail.len()].copy_from_slice(tail);
        block(h, &k.r, &padded);
    }
}

/// An even run of blocks m0..m(2n-1) after h: lane a starts at h + m0 and
/// lane b at m1; each next pair is a·r² + m(2j), b·r² + m(2j+1); at the end
/// h = a·r² + b·r, which is ((h + m0)·r + m1)·r ... in the usual order.
fn two_lanes(h: &[u32; 5], k: &Key, run: &[u8]) -> [u32; 5] {
    let mut pairs = run.chunks_exact(32);
    let Some(first) = pairs.next() else { return *h };
    let (m0, m1) = (message(&first[..16]), message(&first[16..]));
    let mut acc: [Pair; 5] = std::array::from_fn(|i| Pair::new(h[i] + m0[i], m1[i]));
    let r2: [Pair; 5] = k.r2.map(|x| Pair::new(x, x));
    let s2: [Pair; 5] = k.r2.map(|x| Pair::new(x * 5, x * 5));
    for pair in pairs {
        // a, b = a·r², b·r² (the products of both lanes at once), carried.
        let [a0, a1, a2, a3, a4] = acc;
        let d = [
            a0.mul(r2[0]).add(a1.mul(s2[4])).add(a2.mul(s2[3])).add(a3.mul(s2[2])).add(a4.mul(s2[1])),
            a0.mul(r2[1]).add(a1.mul(r2[0])).add(a2.mul(s2[4])).add(a3.mul(s2[3])).add(a4.mul(s2[2])),
            a0.mul(r2[2]).add(a1.mul(r2[1])).add(a2.mul(r2[0])).add(a3.mul(s2[4])).add(a4.mul(s2[3])),
            a0.mul(r2[3]).add(a1.mul(r2[2])).add(a2.mul(r2[1])).add(a3.mul(r2[0])).add(a4.mul(s2[4])),
            a0.mul(r2[4]).add(a1.mul(r2[3])).add(a2.mul(r2[2])).add(a3.mul(r2[1])).add(a4.mul(r2[0])),
        ];
        let mut d = d;
        for i in 0..4 {
            d[i + 1] = d[i + 1].add(d[i].shr26());
            d[i] = d[i].low26();
        }
        d[0] = d[0].add(d[4].shr26().times5());
        d[4] = d[4].low26();
        d[1] = d[1].add(d[0].shr26());
        d[0] = d[0].low26();
        let (ma, mb) = (message(&pair[..16]), message(&pair[16..]));
        acc = std::array::from_fn(|i| d[i].add(Pair::new(ma[i], mb[i])));
    }
    let a: [u64; 5] = acc.map(|p| u64::from(p.lanes().0));
    let b: [u64; 5] = acc.map(|p| u64::from(p.lanes().1));
    let (ar2, br) = (mul(&a, &k.r2), mul(&b, &k.r));
    carry(std::array::from_fn(|i| ar2[i] + br[i]))
}

/// h mod 2^130 - 5, plus s, mod 2^128 (RFC 8439, 2.5.1), without a branch.
fn finish(h: [u32; 5], s: [u32; 4]) -> [u8; TAG] {
    let mut h = h;
    h[2] += h[1] >> 26;
    h[1] &= MASK;
    h[3] += h[2] >> 26;
    h[2] &= MASK;
    h[4] += h[3] >> 26;
    h[3] &= MASK;
    h[0] += (h[4] >> 26) * 5;
    h[4] &= MASK;
    h[1] += h[0] >> 26;
    h[0] &= MASK;
    // g = h + 5 - 2^130: if it does not go below zero, h >= p and g is h mod p.
    let mut g = [0u32; 5];
    let mut c = 5;
    for i in 0..4 {
        let t = h[i] + c;
        c = t >> 26;
        g[i] = t & MASK;
    }
    g[4] = (h[4] + c).wrapping_sub(1 << 26);
    let take_g = (g[4] >> 31).wrapping_sub(1); // all ones when g >= 0
    for i in 0..5 {
        h[i] = (h[i] & !take_g) | (g[i] & take_g);
    }
    let words = [h[0] | (h[1] << 26), (h[1] >> 6) | (h[2] << 20), (h[2] >> 12) | (h[3] << 14), (h[3] >> 18) | (h[4] << 8)];
    let mut out = [0u8; TAG];
    let mut f = 0u64;
    for i in 0..4 {
        f = u64::from(words[i]) + u64::from(s[i]) + (f >> 32);
        out[4 * i..4 * i + 4].copy_from_slice(&(f as u32).to_le_bytes());
    }
    out
}

/// Two u64 lanes, of which products are taken from the low 32 bits:
/// WebAssembly's `v128`.
#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct Pair(v128);

    impl Pair {
        #[inline(always)]
        pub fn new(a: u32, b: u32) -> Pair {
            Pair(u64x2(u64::from(a), u64::from(b)))
        }
        /// Each lane's low 32 bits times the other's: two 64-bit products.
        #[inline(always)]
        pub fn mul(self, o: Pair) -> Pair {
            let (x, y) = (i32x4_shuffle::<0, 2, 0, 2>(self.0, self.0), i32x4_shuffle::<0, 2, 0, 2>(o.0, o.0));
            Pair(u64x2_extmul_low_u32x4(x, y))
        }
        #[inline(always)]
        pub fn add(self, o: Pair) -> Pair {
            Pair(i64x2_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn shr26(self) -> Pair {
            Pair(u64x2_shr(self.0, 26))
        }
        #[inline(always)]
        pub fn low26(self) -> Pair {
            Pair(v128_and(self.0, u64x2_splat(0x3ff_ffff)))
        }
        #[inline(always)]
        pub fn times5(self) -> Pair {
            Pair(i64x2_add(i64x2_shl(self.0, 2), self.0))
        }
        pub fn lanes(self) -> (u32, u32) {
            (u64x2_extract_lane::<0>(self.0) as u32, u64x2_extract_lane::<1>(self.0) as u32)
        }
    }
}

/// Two u64 lanes, portably (the native build's tests run this).
#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    #[derive(Clone, Copy)]
    pub struct Pair([u64; 2]);

    impl Pair {
        pub fn new(a: u32, b: u32) -> Pair {
            Pair([u64::from(a), u64::from(b)])
        }
        pub fn mul(self, o: Pair) -> Pair {
            Pair([(self.0[0] & 0xffff_ffff) * (o.0[0] & 0xffff_ffff), (self.0[1] & 0xffff_ffff) * (o.0[1] & 0xffff_ffff)])
        }
        pub fn add(self, o: Pair) -> Pair {
            Pair([self.0[0].wrapping_add(o.0[0]), self.0[1].wrapping_add(o.0[1])])
        }
        pub fn shr26(self) -> Pair {
            Pair(self.0.map(|x| x >> 26))
        }
        pub fn low26(self) -> Pair {
            Pair(self.0.map(|x| x & 0x3ff_ffff))
        }
        pub fn times5(self) -> Pair {
            Pair(self.0.map(|x| x * 5))
        }
        pub fn lanes(self) -> (u32, u32) {
            (self.0[0] as u32, self.0[1] as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::poly1305::universal_hash::{KeyInit, UniversalHash};

    /// RustCrypto's Poly1305 over the same padded input: the reference.
    fn reference(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> [u8; TAG] {
        let mut mac = ::poly1305::Poly1305::new(&(*key).into());
        mac.update_padded(aad);
        mac.update_padded(ct);
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lengths[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
        mac.update(&[lengths.into()]);
        mac.finalize().into()
    }

    /// Every length from 0 to 600 and some record sizes, with keys that
    /// include the extremes (all ones: the largest r and s, data of all
    /// ones to push the limbs to their bounds), agree with the reference.
    #[test]
    fn agrees_with_rustcrypto() {
        let keys: [[u8; 32]; 3] = [[0xff; 32], std::array::from_fn(|i| (i * 37 + 11) as u8), [0; 32]];
        for key in &keys {
            for fill in [0xffu8, 0x5a] {
                for len in (0..600).chain([4096, 16384, 16401]) {
                    let ct = vec![fill; len];
                    for aad in [&[][..], &[0x17, 3, 3, 0x40, 0x11][..], &[0xff; 33][..]] {
                        assert_eq!(aead_tag(key, aad, &ct), reference(key, aad, &ct), "{len} bytes, aad {}", aad.len());
                    }
                }
            }
        }
    }

    /// RFC 8439, 2.5.2: Poly1305 alone on "Cryptographic Forum Research
    /// Group", as the AEAD's tag cannot show it (no padding, a short last
    /// block): checked through the same limbs, block and finish steps.
    #[test]
    fn the_rfc_mac_is_ours() {
        let key: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&"85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"[i..i + 2], 16).unwrap()).collect();
        let key: [u8; 32] = key.try_into().unwrap();
        let msg = b"Cryptographic Forum Research Group";
        let r = limbs([word(&key, 0) & 0x0fff_ffff, word(&key, 4) & 0x0fff_fffc, word(&key, 8) & 0x0fff_fffc, word(&key, 12) & 0x0fff_fffc], 0);
        let mut h = [0u32; 5];
        block(&mut h, &r, &msg[..16]);
        block(&mut h, &r, &msg[16..32]);
        // The last 2 bytes: padded with 0x01 then zeros, no 2^128 bit.
        let last = [msg[32], msg[33], 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = limbs([word(&last, 0), word(&last, 4), word(&last, 8), word(&last, 12)], 0);
        let sum: [u64; 5] = std::array::from_fn(|i| u64::from(h[i]) + u64::from(m[i]));
        h = carry(mul(&sum, &r));
        let tag = finish(h, [word(&key, 16), word(&key, 20), word(&key, 24), word(&key, 28)]);
        assert_eq!(tag, [0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01, 0x27, 0xa9]);
    }
}
