//! Sorted string tables searched in place: the on-disk form of the capability and file
//! indexes. Layout (little-endian): `count: u32`, then `count` entries of
//! `(offset: u32, len: u32, a: u32, b: u32)` sorted by key, then the key bytes. Nothing is
//! decoded to look a key up, so a memory-mapped table costs only the pages a search touches.

/// Builds a table from `(key, a, b)` rows.
pub(crate) fn build(mut rows: Vec<(&str, u32, u32)>) -> Vec<u8> {
    rows.sort_unstable();
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
pub(crate) struct Table<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Table<'a> {
    /// Checks the layout; `None` if the bytes cannot be a table.
    pub(crate) fn new(bytes: &'a [u8]) -> Option<Table<'a>> {
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

    /// A table checked only for its entry area (O(1)): a cache file trusted by its stamp.
    /// Lookups stay in bounds whatever the bytes (a key out of range reads as empty).
    pub(crate) fn shallow(bytes: &'a [u8]) -> Option<Table<'a>> {
        if bytes.len() < 4 {
            return None;
        }
        let count = u32_at(bytes, 0) as usize;
        let keys_start = 4usize.checked_add(count.checked_mul(16)?)?;
        (keys_start <= bytes.len()).then_some(Table { bytes, count })
    }

    /// A table whose layout [`Table::new`] or [`Table::shallow`] has already checked.
    pub(crate) fn trusted(bytes: &'a [u8]) -> Table<'a> {
        Table {
            bytes,
            count: u32_at(bytes, 0) as usize,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn keys_start(&self) -> usize {
        4 + self.count * 16
    }

    pub(crate) fn key(&self, i: usize) -> &'a [u8] {
        let off = u32_at(self.bytes, 4 + i * 16) as usize;
        let len = u32_at(self.bytes, 8 + i * 16) as usize;
        let s = self.keys_start().saturating_add(off);
        self.bytes.get(s..s.saturating_add(len)).unwrap_or_default()
    }

    pub(crate) fn row(&self, i: usize) -> (u32, u32) {
        (
            u32_at(self.bytes, 12 + i * 16),
            u32_at(self.bytes, 16 + i * 16),
        )
    }

    /// First row whose key is not less than `key`.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> usize {
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
    pub(crate) fn get(&self, key: &str) -> impl Iterator<Item = (u32, u32)> + use<'a> {
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

/// FNV-1a, 64-bit: the key hash of [`HashTable`].
pub(crate) fn fnv1a(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Builds a hash-ordered table: `count: u32`, then `count` rows of
/// `(hash: u64, offset: u32, len: u32, value: u32)` sorted by hash, then the key bytes.
/// Building sorts integers, not strings, which matters for the 600,000 paths of a
/// filelists.xml; lookups compare keys only where hashes match.
#[cfg(test)]
pub(crate) fn build_hashed(blob: &[u8], rows: &[(u32, u32, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    build_hashed_into(&mut out, blob, rows.to_vec());
    out
}

/// As [`build_hashed`], appending to `out` and dropping `rows` as soon as they are hashed.
pub(crate) fn build_hashed_into(out: &mut Vec<u8>, blob: &[u8], rows: Vec<(u32, u32, u32)>) {
    let mut hashed: Vec<(u64, u32, u32, u32)> = rows
        .iter()
        .map(|&(o, l, v)| (fnv1a(&blob[o as usize..(o + l) as usize]), o, l, v))
        .collect();
    drop(rows);
    hashed.sort_unstable();
    out.reserve(4 + hashed.len() * 20 + blob.len());
    out.extend_from_slice(&(hashed.len() as u32).to_le_bytes());
    for &(h, o, l, v) in &hashed {
        out.extend_from_slice(&h.to_le_bytes());
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&l.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    drop(hashed);
    out.extend_from_slice(blob);
}

/// Rewrites the values of a hash-ordered table built by [`build_hashed`] in place:
/// `map[value]`, or `u32::MAX` (never returned by lookups) where the map has no entry.
pub(crate) fn remap_hashed(bytes: &mut [u8], map: &[Option<u32>]) {
    let count = u32_at(bytes, 0) as usize;
    for i in 0..count {
        let at = 4 + i * 20 + 16;
        let v = u32_at(bytes, at) as usize;
        let new = map.get(v).copied().flatten().unwrap_or(u32::MAX);
        bytes[at..at + 4].copy_from_slice(&new.to_le_bytes());
    }
}

/// A hash-ordered table over borrowed bytes.
#[derive(Clone, Copy)]
pub(crate) struct HashTable<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> HashTable<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Option<HashTable<'a>> {
        if bytes.len() < 4 {
            return None;
        }
        let count = u32_at(bytes, 0) as usize;
        let keys = 4usize.checked_add(count.checked_mul(20)?)?;
        if keys > bytes.len() {
            return None;
        }
        let blob_len = bytes.len() - keys;
        for i in 0..count {
            let at = 4 + i * 20;
            let (o, l) = (
                u32_at(bytes, at + 8) as usize,
                u32_at(bytes, at + 12) as usize,
            );
            if o.checked_add(l)? > blob_len {
                return None;
            }
        }
        Some(HashTable { bytes, count })
    }

    /// A table whose layout [`HashTable::new`] has already checked.
    pub(crate) fn trusted(bytes: &'a [u8]) -> HashTable<'a> {
        HashTable {
            bytes,
            count: u32_at(bytes, 0) as usize,
        }
    }

    fn hash(&self, i: usize) -> u64 {
        let at = 4 + i * 20;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The values stored under `key`.
    pub(crate) fn get(&self, key: &str) -> Vec<u32> {
        let h = fnv1a(key.as_bytes());
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.hash(mid) < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let blob = &self.bytes[4 + self.count * 20..];
        let mut out = Vec::new();
        let mut i = lo;
        while i < self.count && self.hash(i) == h {
            let at = 4 + i * 20;
            let (o, l) = (
                u32_at(self.bytes, at + 8) as usize,
                u32_at(self.bytes, at + 12) as usize,
            );
            let v = u32_at(self.bytes, at + 16);
            if v != u32::MAX && &blob[o..o + l] == key.as_bytes() {
                out.push(v);
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod hashed_tests {
    use super::*;

    #[test]
    fn hashed_lookups() {
        let blob = b"/usr/bin/bash/usr/lib64/libc.so.6/usr/bin/bash";
        let rows = [(0, 13, 1), (13, 20, 2), (33, 13, 3)];
        let bytes = build_hashed(blob, &rows);
        let t = HashTable::new(&bytes).unwrap();
        let mut v = t.get("/usr/bin/bash");
        v.sort();
        assert_eq!(v, [1, 3]);
        assert_eq!(t.get("/usr/lib64/libc.so.6"), [2]);
        assert!(t.get("/nope").is_empty());
        assert!(HashTable::new(&bytes[..30]).is_none());
    }
}
