//! The derived placeholder, and the base64 of `as=basic`.
//!
//! Derived: the value's prefix up to and including the last `_` or `-`
//! among its first 16 characters (`ghp_`, `github_pat_`, `sk-ant-api03-`,
//! `npm_`, `glpat-`), kept, so that a tool that checks the shape is
//! content; then at each later position a character of the value's class
//! there (digit, lower case, upper case; any other character kept), other
//! than the value's own, drawn from SHA-256 in counter mode: block `i` is
//! SHA-256(K, i as 4 bytes big endian), K = SHA-256(`wasiter placeholder`
//! 0 NAME 0 VALUE). The same entry gives the same placeholder at every
//! start, so a sandbox's environment stays right across restarts.

/// Below this, a derived placeholder could be guessed back from the hash.
pub const MIN_DERIVED: usize = 20;

/// The kept prefix: up to and including the last `_` or `-` among the first 16.
pub fn prefix_len(value: &[u8]) -> usize {
    value.iter().take(16).rposition(|&b| b == b'_' || b == b'-').map_or(0, |at| at + 1)
}

/// The placeholder of entry `name` with `value`. `Err`: why it cannot be
/// derived (too short, nothing to change, or no SHA-256 in this build).
pub fn derive(name: &str, value: &[u8]) -> Result<Vec<u8>, String> {
    if value.len() < MIN_DERIVED {
        return Err(format!("a value of {} characters needs placeholder= (a placeholder derived from one under {MIN_DERIVED} could be guessed back)", value.len()));
    }
    let key = crate::tls::sha256(&[b"wasiter placeholder\0", name.as_bytes(), b"\0", value].concat())?;
    let mut stream = Draw { key, counter: 0, block: [0; 32], used: 32 };
    let keep = prefix_len(value);
    let mut out = Vec::with_capacity(value.len());
    let mut drawn = 0;
    for (i, &b) in value.iter().enumerate() {
        let class: Option<(u8, u8)> = match b {
            _ if i < keep => None,
            b'0'..=b'9' => Some((b'0', 10)),
            b'a'..=b'z' => Some((b'a', 26)),
            b'A'..=b'Z' => Some((b'A', 26)),
            _ => None,
        };
        out.push(match class {
            Some((base, n)) => {
                drawn += 1;
                // Never the value's own character: a placeholder differs from
                // its value wherever it was drawn, so that no byte replaced in
                // a response is left as it was.
                let c = base + stream.below(n - 1)?;
                if c >= b {
                    c + 1
                } else {
                    c
                }
            }
            None => b,
        });
    }
    if drawn < MIN_DERIVED - 4 || out == value {
        return Err(format!("a value with {drawn} letters or digits after its prefix needs placeholder= (too few to derive one that gives nothing away)"));
    }
    Ok(out)
}

/// SHA-256 in counter mode, one byte at a time.
struct Draw {
    key: [u8; 32],
    counter: u32,
    block: [u8; 32],
    used: usize,
}

impl Draw {
    fn byte(&mut self) -> Result<u8, String> {
        if self.used == self.block.len() {
            self.block = crate::tls::sha256(&[&self.key[..], &self.counter.to_be_bytes()].concat())?;
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let b = self.block.get(self.used).copied().unwrap_or(0);
        self.used += 1;
        Ok(b)
    }

    /// Uniform in 0..n: bytes past the last whole multiple of n are drawn again.
    fn below(&mut self, n: u8) -> Result<u8, String> {
        let limit = 256 - 256 % u16::from(n);
        loop {
            let b = self.byte()?;
            if u16::from(b) < limit {
                return Ok(b % n);
            }
        }
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, padded (RFC 4648 section 4), as `Authorization: Basic` has it.
pub fn base64(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first(), chunk.get(1), chunk.get(2)].map(|b| b.copied().unwrap_or(0));
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(if i <= chunk.len() { ALPHABET.get(sextet as usize).copied().unwrap_or(b'=') } else { b'=' });
        }
    }
    out
}

/// Base64 read leniently, as an origin might: padding optional, the URL-safe
/// `-` and `_` taken too. `None`: not base64 at all.
pub fn unbase64(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.strip_suffix(b"==").or_else(|| text.strip_suffix(b"=")).unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(v)) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
