//! Which connections every pass watches: the busy ones (new, or moved a byte
//! within `QUIET_AFTER`). The others are watched only in full passes (see
//! `Proxy::register`). This is the one record of who is busy: a list for the
//! passes, and a mark per slab key so that a connection is listed once.
//! Beside it, the connections *touched* since the last pass (new, or handed
//! an event or a timeout): the only ones whose interest can have changed, so
//! with a poller that keeps what it was told, they are all a pass must list.

use crate::sys::Poller;

/// A connection's slab key and id (a key is reused after a close; the id is not).
type Entry = (usize, u64);

#[derive(Default)]
pub struct Busy {
    list: Vec<Entry>,
    marked: Vec<bool>,
    /// Touched since the last `take_touched` (a connection may be in twice).
    touched: Vec<Entry>,
}

impl Busy {
    /// Connection `key` (with this id) moved or is new: list it, once, and
    /// note it touched (only where the poller keeps what it was told: the
    /// others list every busy connection anyway).
    pub fn add(&mut self, key: usize, id: u64) {
        if Poller::KEEPS {
            self.touched.push((key, id));
        }
        if self.marked.len() <= key {
            self.marked.resize(key + 1, false);
        }
        if let Some(mark) = self.marked.get_mut(key) {
            if !*mark {
                *mark = true;
                self.list.push((key, id));
            }
        }
    }

    /// Connection `key` was closed: its slot may take a new connection,
    /// which must be listable. (Its entry goes at the next `retain`.)
    pub fn forget(&mut self, key: usize) {
        if let Some(mark) = self.marked.get_mut(key) {
            *mark = false;
        }
    }

    /// Keep the entries for which `still` says yes; `still` is given each
    /// entry and answers `None` when its connection is gone (or the key holds
    /// another now), `Some(false)` when it went quiet.
    pub fn retain(&mut self, mut still: impl FnMut(usize, u64) -> Option<bool>) {
        let marked = &mut self.marked;
        self.list.retain(|&(key, id)| match still(key, id) {
            Some(true) => true,
            Some(false) => {
                if let Some(mark) = marked.get_mut(key) {
                    *mark = false;
                }
                false
            }
            None => false, // gone: its mark was forgotten, or belongs to the slot's new connection
        });
    }

    /// Is connection `key` listed (watched in every pass)?
    pub fn has(&self, key: usize) -> bool {
        self.marked.get(key).copied().unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.list.iter().map(|&(key, _)| key)
    }

    /// The connections touched since the last call, as (key, id): the caller
    /// checks that the key still holds that id. Hand the list back with
    /// `give_back` so its room is kept.
    pub fn take_touched(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.touched)
    }

    pub fn give_back(&mut self, mut list: Vec<Entry>) {
        list.clear();
        if self.touched.is_empty() {
            self.touched = list;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_listed_once_and_a_reused_key_again() {
        let mut b = Busy::default();
        b.add(3, 1);
        b.add(3, 1);
        assert_eq!(b.len(), 1);
        b.forget(3); // closed
        b.add(3, 2); // the slot's new connection
        assert_eq!(b.len(), 2);
        // The old entry is gone, the new one stays.
        b.retain(|_, id| if id == 1 { None } else { Some(true) });
        assert_eq!(b.keys().collect::<Vec<_>>(), [3]);
        // Quiet: dropped, and listable again when it moves.
        b.retain(|_, _| Some(false));
        assert!(b.is_empty());
        b.add(3, 2);
        assert_eq!(b.len(), 1);
        // Every add was a touch, in order, where the poller keeps what it
        // was told (none elsewhere); taking them empties the list.
        let touches: &[Entry] = if Poller::KEEPS { &[(3, 1), (3, 1), (3, 2), (3, 2)] } else { &[] };
        assert_eq!(b.take_touched(), touches);
        assert!(b.take_touched().is_empty());
    }
}
