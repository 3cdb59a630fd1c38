//! Codes to dense ids, once, so that every later count is a vector index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::MetricsError;

/// Ids are packed with a 2-bit tag in `sets`, so they must fit in 30 bits.
pub(crate) const MAX_CODES: usize = 1 << 30;

/// FNV-1a with a final mix: ICD codes are short, so a byte-wise hash beats
/// SipHash, and the inputs are our own data, so flooding is not a concern.
pub(crate) struct CodeHasher(u64);

impl Default for CodeHasher {
    fn default() -> Self {
        CodeHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        // hashbrown picks buckets with low bits and tags with high bits; mix both.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub(crate) type CodeMap<'a> = HashMap<&'a str, u32, BuildHasherDefault<CodeHasher>>;

/// First-seen ids while reading; [`Interner::into_sorted`] renumbers them in code order.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    ids: CodeMap<'a>,
    names: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    pub(crate) fn intern(&mut self, code: &'a str) -> Result<u32, MetricsError> {
        if let Some(&id) = self.ids.get(code) {
            return Ok(id);
        }
        if self.names.len() >= MAX_CODES {
            return Err(MetricsError::TooManyCodes { max: MAX_CODES });
        }
        let id = self.names.len() as u32;
        self.ids.insert(code, id);
        self.names.push(code);
        Ok(id)
    }

    pub(crate) fn get(&self, code: &str) -> Option<u32> {
        self.ids.get(code).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The codes sorted, and `remap[first_seen_id] = sorted_id`.
    pub(crate) fn into_sorted(self) -> (Vec<String>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(self.names[b as usize]));
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let codes = order
            .iter()
            .map(|&old| self.names[old as usize].to_owned())
            .collect();
        (codes, remap)
    }
}

/// Sorted-id lookup without a map: codes are kept sorted after interning.
pub(crate) fn find(codes: &[String], code: &str) -> Option<u32> {
    codes
        .binary_search_by(|c| c.as_str().cmp(code))
        .ok()
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_code_order_after_sorting() {
        let mut interner = Interner::default();
        let first: Vec<u32> = ["Z99", "A01", "M54.5", "A01"]
            .iter()
            .map(|c| interner.intern(c).unwrap())
            .collect();
        assert_eq!(first, vec![0, 1, 2, 1]);
        let (codes, remap) = interner.into_sorted();
        assert_eq!(codes, vec!["A01", "M54.5", "Z99"]);
        assert_eq!(remap, vec![2, 0, 1]);
        assert_eq!(find(&codes, "M54.5"), Some(1));
        assert_eq!(find(&codes, "B00"), None);
    }
}
