//! Checksums as repository metadata writes them: `<checksum type="sha256">hex</checksum>`.

use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// Algorithms accepted in repository metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algo {
    /// SHA-1 (old repositories only).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algo {
    /// The algorithm a metadata `type` attribute names (`sha`, `sha1`, `sha256`, …).
    pub fn parse(s: &str) -> Option<Algo> {
        Some(match s {
            "sha" | "sha1" => Algo::Sha1,
            "sha224" => Algo::Sha224,
            "sha256" => Algo::Sha256,
            "sha384" => Algo::Sha384,
            "sha512" => Algo::Sha512,
            _ => return None,
        })
    }
    /// The algorithm's metadata name.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha1",
            Algo::Sha224 => "sha224",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algo::Sha1 => 40,
            Algo::Sha224 => 56,
            Algo::Sha256 => 64,
            Algo::Sha384 => 96,
            Algo::Sha512 => 128,
        }
    }
}

/// A checksum with its algorithm; the hex is lowercase and of the right length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checksum {
    /// The algorithm.
    pub algo: Algo,
    /// The digest, lowercase hex of the algorithm's length.
    pub hex: String,
}

impl Checksum {
    /// Validates `type` and hex text from metadata.
    pub fn new(algo: &str, hex: &str) -> Result<Checksum, String> {
        let a = Algo::parse(algo).ok_or_else(|| format!("unknown checksum type `{algo}`"))?;
        let hex = hex.trim().to_ascii_lowercase();
        if hex.len() != a.hex_len() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{hex}` is not a {} checksum", a.name()));
        }
        Ok(Checksum { algo: a, hex })
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

/// An incremental hasher for any [`Algo`].
#[derive(Clone)]
pub enum Hasher {
    /// A SHA-1 state.
    Sha1(sha1::Sha1),
    /// A SHA-224 state.
    Sha224(sha2::Sha224),
    /// A SHA-256 state.
    Sha256(sha2::Sha256),
    /// A SHA-384 state.
    Sha384(sha2::Sha384),
    /// A SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher for `algo`.
    pub fn new(algo: Algo) -> Hasher {
        match algo {
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    /// Hashes more data.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    /// The digest as lowercase hex.
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Hashes what is read through it.
pub struct HashingReader<R> {
    /// The reader being hashed.
    pub inner: R,
    /// The hash of what was read so far.
    pub hasher: Hasher,
    /// Bytes read so far.
    pub bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes everything read through `inner` with `algo`.
    pub fn new(inner: R, algo: Algo) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algo),
            bytes: 0,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Hashes a whole stream.
pub fn hash_reader<R: Read>(r: R, algo: Algo) -> io::Result<(String, u64)> {
    let mut h = HashingReader::new(r, algo);
    io::copy(&mut h, &mut io::sink())?;
    Ok((h.hasher.finish_hex(), h.bytes))
}

/// The lowercase sha256 hex of `bytes`.
pub fn sha256_hex_of(bytes: &[u8]) -> String {
    let mut h = Hasher::new(Algo::Sha256);
    h.update(bytes);
    h.finish_hex()
}

/// The OCI digest of `bytes`: `sha256:<hex>`.
pub fn sha256_digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex_of(bytes))
}
