//! Sorted string tables searched in place: the on-disk form of the capability and file
//! indexes. Layout (little-endian): `count: u32`, then `count` entries of
//! `(offset: u32, len: u32, a: u32, b: u32)` sorted by key, then the key bytes. Nothing is
//! decoded to look a key up, so a memory-mapped table costs only the pages a search touches.

/// Builds a table from `(key, a, b)` rows.
pub fn build(mut rows: Vec<(&str, u32, u32)>) -> Vec<u8> {
    rows.sort();
    let mut out =
        Vec::with_capacity(4 + rows.len() * 16 + rows.iter().map(|r| r.0.len()).sum::<usize>());
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    let mut off = 0u32;
    for (k, a, b) in &rows {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        off += k.len() as u32;
    }
    for (k, _, _) in &rows {
        out.extend_from_slice(k.as_bytes());
    }
    out
}

/// A table over borrowed bytes.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Table<'a> {
    /// Checks the layout; `None` if the bytes cannot be a table.
    pub fn new(bytes: &'a [u8]) -> Option<Table<'a>> {
        if bytes.len() < 4 {
            return None;
        }
        let count = u32_at(bytes, 0) as usize;
        let keys_start = 4usize.checked_add(count.checked_mul(16)?)?;
        if keys_start > bytes.len() {
            return None;
        }
        let t = Table { bytes, count };
        // every key must lie inside the key area
        let keys_len = bytes.len() - keys_start;
        for i in 0..count {
            let (off, len) = (
                u32_at(bytes, 4 + i * 16) as usize,
                u32_at(bytes, 8 + i * 16) as usize,
            );
            if off.checked_add(len)? > keys_len {
                return None;
            }
        }
        Some(t)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn keys_start(&self) -> usize {
        4 + self.count * 16
    }

    pub fn key(&self, i: usize) -> &'a [u8] {
        let off = u32_at(self.bytes, 4 + i * 16) as usize;
        let len = u32_at(self.bytes, 8 + i * 16) as usize;
        let s = self.keys_start() + off;
        &self.bytes[s..s + len]
    }

    pub fn row(&self, i: usize) -> (u32, u32) {
        (
            u32_at(self.bytes, 12 + i * 16),
            u32_at(self.bytes, 16 + i * 16),
        )
    }

    /// First row whose key is not less than `key`.
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The rows of `key`.
    pub fn get(&self, key: &str) -> impl Iterator<Item = (u32, u32)> + use<'a> {
        let t = *self;
        let k = key.as_bytes().to_vec();
        (t.lower_bound(&k)..t.count)
            .take_while(move |&i| t.key(i) == k.as_slice())
            .map(move |i| t.row(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let bytes = build(vec![
            ("libc.so.6()(64bit)", 1, 0),
            ("bash", 0, 0),
            ("libc.so.6()(64bit)", 2, 3),
            ("zsh", 4, 0),
        ]);
        let t = Table::new(&bytes).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.get("libc.so.6()(64bit)").collect::<Vec<_>>(),
            [(1, 0), (2, 3)]
        );
        assert_eq!(t.get("bash").collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(t.get("nope").count(), 0);
        assert!(Table::new(&bytes[..10]).is_none());
        let mut bad = bytes.clone();
        bad[4] = 0xff; // offset out of range
        assert!(Table::new(&bad).is_none());
    }
}
