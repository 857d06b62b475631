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

const MASK: u64 = 0x3ff_ffff;

/// r and r², as limbs.
struct Key {
    r: [u64; 5],
    r2: [u64; 5],
}

/// The tag of `aad` and `ciphertext` under the one-time key `key` (the
/// first 32 bytes of ChaCha20's block 0): RFC 8439's Poly1305 over
/// `aad ‖ pad16 ‖ ciphertext ‖ pad16 ‖ le64(aad.len) ‖ le64(ciphertext.len)`.
pub fn aead_tag(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG] {
    let r = clamped_r(key);
    let k = Key { r, r2: carry(mul(r, r)) };
    let mut h = [0u64; 5];
    blocks(&mut h, &k, aad);
    blocks(&mut h, &k, ciphertext);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    absorb(&mut h, &k.r, message(&lengths));
    finish(h, s_of(key))
}

/// The little-endian word at byte `at` (ChaCha20's key and nonce too).
pub(super) fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// r: the key's first half, clamped (RFC 8439, 2.5), as limbs.
fn clamped_r(key: &[u8; 32]) -> [u64; 5] {
    limbs([le32(key, 0) & 0x0fff_ffff, le32(key, 4) & 0x0fff_fffc, le32(key, 8) & 0x0fff_fffc, le32(key, 12) & 0x0fff_fffc], 0)
}

/// s: the key's second half, added at the end.
fn s_of(key: &[u8; 32]) -> [u32; 4] {
    [le32(key, 16), le32(key, 20), le32(key, 24), le32(key, 28)]
}

/// A 16-byte block (four little-endian words) as five 26-bit limbs, plus
/// `high` at bit 128 (1 << 24 in the top limb).
fn limbs(t: [u32; 4], high: u32) -> [u64; 5] {
    [
        t[0] & 0x3ff_ffff,
        ((t[0] >> 26) | (t[1] << 6)) & 0x3ff_ffff,
        ((t[1] >> 20) | (t[2] << 12)) & 0x3ff_ffff,
        ((t[2] >> 14) | (t[3] << 18)) & 0x3ff_ffff,
        (t[3] >> 8) | high,
    ]
    .map(u64::from)
}

/// A whole block of the AEAD's input, with its 2^128 bit.
fn message(m: &[u8]) -> [u64; 5] {
    limbs([le32(m, 0), le32(m, 4), le32(m, 8), le32(m, 12)], 1 << 24)
}

/// What the limb arithmetic does to a value: on one limb (`u64`), or on
/// the same limb of two lanes at once (`lanes::Pair`). Limbs stay below
/// 2^32 where they are multiplied, so products fit 64 bits.
trait Limb: Copy {
    fn mul(self, o: Self) -> Self;
    fn add(self, o: Self) -> Self;
    fn shr26(self) -> Self;
    fn low26(self) -> Self;
    fn times5(self) -> Self;
}

impl Limb for u64 {
    fn mul(self, o: u64) -> u64 {
        self * o
    }
    fn add(self, o: u64) -> u64 {
        self + o
    }
    fn shr26(self) -> u64 {
        self >> 26
    }
    fn low26(self) -> u64 {
        self & MASK
    }
    fn times5(self) -> u64 {
        self * 5
    }
}

/// h·r before the carries: 25 products, the limbs above 2^130 folded back
/// times 5 (2^130 = 5 mod p).
#[inline(always)]
fn mul<T: Limb>(h: [T; 5], r: [T; 5]) -> [T; 5] {
    let [r0, r1, r2, r3, r4] = r;
    let [s1, s2, s3, s4] = [r1.times5(), r2.times5(), r3.times5(), r4.times5()];
    let [h0, h1, h2, h3, h4] = h;
    [
        h0.mul(r0).add(h1.mul(s4)).add(h2.mul(s3)).add(h3.mul(s2)).add(h4.mul(s1)),
        h0.mul(r1).add(h1.mul(r0)).add(h2.mul(s4)).add(h3.mul(s3)).add(h4.mul(s2)),
        h0.mul(r2).add(h1.mul(r1)).add(h2.mul(r0)).add(h3.mul(s4)).add(h4.mul(s3)),
        h0.mul(r3).add(h1.mul(r2)).add(h2.mul(r1)).add(h3.mul(r0)).add(h4.mul(s4)),
        h0.mul(r4).add(h1.mul(r3)).add(h2.mul(r2)).add(h3.mul(r1)).add(h4.mul(r0)),
    ]
}

/// Carry the products back into 26-bit limbs (the top one folded times 5).
#[inline(always)]
fn carry<T: Limb>(d: [T; 5]) -> [T; 5] {
    let mut d = d;
    for i in 0..4 {
        d[i + 1] = d[i + 1].add(d[i].shr26());
        d[i] = d[i].low26();
    }
    d[0] = d[0].add(d[4].shr26().times5());
    d[4] = d[4].low26();
    d[1] = d[1].add(d[0].shr26());
    d[0] = d[0].low26();
    d
}

/// One block's limbs: h = (h + m)·r.
fn absorb(h: &mut [u64; 5], r: &[u64; 5], m: [u64; 5]) {
    *h = carry(mul(std::array::from_fn(|i| h[i] + m[i]), *r));
}

/// `data`, zero-padded to whole blocks, into h: pairs of blocks through the
/// two lanes while at least four blocks remain, the rest one at a time.
fn blocks(h: &mut [u64; 5], k: &Key, data: &[u8]) {
    let whole = data.len() / 16;
    let paired = if whole >= 4 { whole / 2 * 2 } else { 0 };
    let (run, rest) = data.split_at(paired * 16);
    if !run.is_empty() {
        *h = two_lanes(h, k, run);
    }
    let mut chunks = rest.chunks_exact(16);
    for m in &mut chunks {
        absorb(h, &k.r, message(m));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut padded = [0u8; 16];
        padded[..tail.len()].copy_from_slice(tail);
        absorb(h, &k.r, message(&padded));
    }
}

/// An even run of blocks m0..m(2n-1) after h: lane a starts at h + m0 and
/// lane b at m1; each next pair is a·r² + m(2j), b·r² + m(2j+1); at the end
/// h = a·r² + b·r, which is ((h + m0)·r + m1)·r ... in the usual order.
fn two_lanes(h: &[u64; 5], k: &Key, run: &[u8]) -> [u64; 5] {
    let mut pairs = run.chunks_exact(32);
    let Some(first) = pairs.next() else { return *h };
    let (m0, m1) = (message(&first[..16]), message(&first[16..]));
    let mut acc: [Pair; 5] = std::array::from_fn(|i| Pair::new(h[i] + m0[i], m1[i]));
    let r2: [Pair; 5] = k.r2.map(|x| Pair::new(x, x));
    for pair in pairs {
        let (ma, mb) = (message(&pair[..16]), message(&pair[16..]));
        let d = carry(mul(acc, r2));
        acc = std::array::from_fn(|i| d[i].add(Pair::new(ma[i], mb[i])));
    }
    let a = acc.map(|p| p.lanes().0);
    let b = acc.map(|p| p.lanes().1);
    let (ar2, br) = (mul(a, k.r2), mul(b, k.r));
    carry(std::array::from_fn(|i| ar2[i] + br[i]))
}

/// h mod 2^130 - 5, plus s, mod 2^128 (RFC 8439, 2.5.1), without a branch.
fn finish(h: [u64; 5], s: [u32; 4]) -> [u8; TAG] {
    // Limbs are below 2^27 here: u32 arithmetic, as donna's.
    let mask = MASK as u32;
    let mut h = h.map(|x| x as u32);
    h[2] += h[1] >> 26;
    h[1] &= mask;
    h[3] += h[2] >> 26;
    h[2] &= mask;
    h[4] += h[3] >> 26;
    h[3] &= mask;
    h[0] += (h[4] >> 26) * 5;
    h[4] &= mask;
    h[1] += h[0] >> 26;
    h[0] &= mask;
    // g = h + 5 - 2^130: if it does not go below zero, h >= p and g is h mod p.
    let mut g = [0u32; 5];
    let mut c = 5;
    for i in 0..4 {
        let t = h[i] + c;
        c = t >> 26;
        g[i] = t & mask;
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
        pub fn new(a: u64, b: u64) -> Pair {
            Pair(u64x2(a, b))
        }
        pub fn lanes(self) -> (u64, u64) {
            (u64x2_extract_lane::<0>(self.0), u64x2_extract_lane::<1>(self.0))
        }
    }

    impl super::Limb for Pair {
        /// Each lane's low 32 bits times the other's: two 64-bit products.
        #[inline(always)]
        fn mul(self, o: Pair) -> Pair {
            let (x, y) = (i32x4_shuffle::<0, 2, 0, 2>(self.0, self.0), i32x4_shuffle::<0, 2, 0, 2>(o.0, o.0));
            Pair(u64x2_extmul_low_u32x4(x, y))
        }
        #[inline(always)]
        fn add(self, o: Pair) -> Pair {
            Pair(i64x2_add(self.0, o.0))
        }
        #[inline(always)]
        fn shr26(self) -> Pair {
            Pair(u64x2_shr(self.0, 26))
        }
        #[inline(always)]
        fn low26(self) -> Pair {
            Pair(v128_and(self.0, u64x2_splat(super::MASK)))
        }
        #[inline(always)]
        fn times5(self) -> Pair {
            Pair(i64x2_add(i64x2_shl(self.0, 2), self.0))
        }
    }
}

/// Two u64 lanes, portably (the native build's tests run this).
#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    use super::Limb;

    #[derive(Clone, Copy)]
    pub struct Pair([u64; 2]);

    impl Pair {
        pub fn new(a: u64, b: u64) -> Pair {
            Pair([a, b])
        }
        pub fn lanes(self) -> (u64, u64) {
            (self.0[0], self.0[1])
        }
    }

    impl Limb for Pair {
        fn mul(self, o: Pair) -> Pair {
            Pair([(self.0[0] & 0xffff_ffff) * (o.0[0] & 0xffff_ffff), (self.0[1] & 0xffff_ffff) * (o.0[1] & 0xffff_ffff)])
        }
        fn add(self, o: Pair) -> Pair {
            Pair([self.0[0].add(o.0[0]), self.0[1].add(o.0[1])])
        }
        fn shr26(self) -> Pair {
            Pair(self.0.map(u64::shr26))
        }
        fn low26(self) -> Pair {
            Pair(self.0.map(u64::low26))
        }
        fn times5(self) -> Pair {
            Pair(self.0.map(u64::times5))
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
    /// block): checked through the same limbs, absorb and finish steps.
    #[test]
    fn the_rfc_mac_is_ours() {
        let key: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&"85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"[i..i + 2], 16).unwrap()).collect();
        let key: [u8; 32] = key.try_into().unwrap();
        let msg = b"Cryptographic Forum Research Group";
        let r = clamped_r(&key);
        let mut h = [0u64; 5];
        absorb(&mut h, &r, message(&msg[..16]));
        absorb(&mut h, &r, message(&msg[16..32]));
        // The last 2 bytes: padded with 0x01 then zeros, no 2^128 bit.
        let last = [msg[32], msg[33], 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        absorb(&mut h, &r, limbs([le32(&last, 0), le32(&last, 4), le32(&last, 8), le32(&last, 12)], 0));
        let tag = finish(h, s_of(&key));
        assert_eq!(tag, [0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01, 0x27, 0xa9]);
    }
}
