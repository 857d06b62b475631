//! Responses: every value replaced by its placeholder, in place.
//!
//! A response's bytes (head and body alike, before the dump, the framing
//! or the client see them) have every occurrence of every entry's value,
//! and of the exchange's echoes (the base64 of `USER:VALUE` that `as=basic`
//! sent), overwritten by the placeholder of the same length: nothing moves,
//! so `Content-Length` and chunk sizes stay right. Matches are taken from
//! the left and do not overlap, whichever value they are of (as
//! `str::replace` takes them), so a run of a repeated value becomes
//! placeholder after placeholder. Across reads: a read that
//! ends in the first bytes of a value, more of them than the value shares
//! with its placeholder, has those bytes replaced at once by the
//! placeholder's (they cannot be held back: the read goes on now), and the
//! match goes on into the next read. So no byte of a value that differs
//! from its placeholder ever leaves. The price: a read that happens to end
//! in such a piece of a value that the next read does not complete has that
//! piece replaced all the same (a few bytes that spelled the start of a
//! secret). A redactor keeps at most the longest value's length (less one)
//! of the bytes last read.

use std::borrow::Cow;
use std::sync::Arc;

use super::{Pair, Redactor, Secrets};

impl Secrets {
    /// A redactor for one exchange's response, with that exchange's echoes
    /// (`Injected::echoes`).
    pub fn redactor(&self, echoes: Vec<(Vec<u8>, Vec<u8>)>) -> Redactor {
        let echoes: Vec<Pair> = echoes.into_iter().filter_map(|(v, p)| Pair::new(v, p)).collect();
        let longest = self.pairs.iter().chain(&echoes).map(|p| p.value.len()).max().unwrap_or(0);
        Redactor { shared: Arc::clone(&self.pairs), echoes, carry: Vec::new(), longest, pos: 0, free: 0 }
    }

    /// Values replaced by placeholders in a log line (`log::Record`'s last guard).
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for e in &self.entries {
            // Both visible ASCII (file.rs): a valid str stays one.
            if let (Ok(value), Ok(placeholder)) = (std::str::from_utf8(&e.value), std::str::from_utf8(&e.placeholder)) {
                if text.contains(value) {
                    text = Cow::Owned(text.replace(value, placeholder));
                }
            }
        }
        text
    }
}

impl Redactor {
    /// Bytes just read from the origin, redacted in place (see the opening).
    pub fn redact(&mut self, bytes: &mut [u8]) {
        if self.longest == 0 || bytes.is_empty() {
            return;
        }
        let c = self.carry.len();
        let total = c + bytes.len();
        // The carry and the first bytes of this read: where a value that
        // began in an earlier read ends.
        let edge = [self.carry.as_slice(), bytes.get(..bytes.len().min(self.longest)).unwrap_or_default()].concat();
        // This read's last bytes as read (with the carry): where a value
        // that goes on into the next read begins; the next carry.
        let keep = self.longest.saturating_sub(1);
        let tail_start = total.saturating_sub(keep);
        let tail: Vec<u8> = (tail_start..total).filter_map(|i| if i < c { self.carry.get(i).copied() } else { bytes.get(i - c).copied() }).collect();
        // Window offset w is stream offset `base + w`.
        let base = self.pos.saturating_sub(c as u64);
        let free = |free: u64| usize::try_from(free.saturating_sub(base)).unwrap_or(usize::MAX);
        // Every match that ends in this read: (where in carry + bytes, longest first, which pair).
        let mut found: Vec<(usize, std::cmp::Reverse<usize>, usize)> = Vec::new();
        for (k, Pair { value, .. }) in self.pairs().enumerate() {
            let n = value.len();
            for start in free(self.free)..c {
                if start + n > c && edge.get(start..start + n) == Some(value.as_slice()) {
                    found.push((start, std::cmp::Reverse(n), k));
                }
            }
            let mut from = free(self.free).saturating_sub(c);
            while let Some(at) = bytes.get(from..).and_then(|rest| find(rest, value)) {
                found.push((c + from + at, std::cmp::Reverse(n), k));
                from += at + 1;
            }
        }
        // Taken from the left, never overlapping, whichever value (as
        // `str::replace` takes them): a run of a repeated value gives
        // placeholder after placeholder, and a value inside another's match
        // cannot hide a third after it.
        found.sort_unstable();
        // (where in carry + bytes, which pair, how many of its bytes).
        let mut writes: Vec<(usize, usize, usize)> = Vec::new();
        for (start, std::cmp::Reverse(n), k) in found {
            if start >= free(self.free) {
                writes.push((start, k, n));
                self.free = base + (start + n) as u64;
            }
        }
        // Of each value, the earliest (longest) piece that ends this read
        // after the last match: past the common prefix, replaced now, in its
        // alignment.
        for (k, Pair { value, common, .. }) in self.pairs().enumerate() {
            let n = value.len();
            for start in tail_start.max(total.saturating_sub(n - 1)).max(free(self.free))..total {
                let piece = tail.get(start - tail_start..).unwrap_or_default();
                if value.starts_with(piece) {
                    if piece.len() > *common {
                        writes.push((start, k, piece.len()));
                    }
                    break;
                }
            }
        }
        writes.sort_unstable();
        for (start, k, len) in writes {
            let Some(Pair { placeholder, .. }) = self.pairs().nth(k) else { continue };
            for (i, &b) in placeholder.iter().enumerate().take(len) {
                if let Some(slot) = (start + i).checked_sub(c).and_then(|at| bytes.get_mut(at)) {
                    *slot = b;
                }
            }
        }
        self.carry = tail;
        self.pos += bytes.len() as u64;
    }
}

impl Redactor {
    fn pairs(&self) -> impl Iterator<Item = &Pair> {
        self.shared.iter().chain(&self.echoes)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(at) = hay.get(from..)?.iter().position(|&b| b == first) {
        let start = from + at;
        if hay.get(start..start + needle.len())? == needle {
            return Some(start);
        }
        from = start + 1;
    }
    None
}
