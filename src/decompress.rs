//! Decompression of metadata files: gz, bz2, xz, zst (and plain), chosen by extension and
//! confirmed by magic bytes, with a cap on the decompressed size.

use std::io::{self, BufRead, BufReader, Read};

/// Compression formats of repository metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No compression.
    Plain,
    /// gzip (`.gz`), several members allowed.
    Gzip,
    /// bzip2 (`.bz2`).
    Bzip2,
    /// xz (`.xz`).
    Xz,
    /// zstd (`.zst`).
    Zstd,
}

impl Format {
    /// The format a file's name announces.
    pub fn from_extension(href: &str) -> Format {
        let h = href.to_ascii_lowercase();
        if h.ends_with(".gz") {
            Format::Gzip
        } else if h.ends_with(".bz2") {
            Format::Bzip2
        } else if h.ends_with(".xz") {
            Format::Xz
        } else if h.ends_with(".zst") {
            Format::Zstd
        } else {
            Format::Plain
        }
    }

    /// The format the first bytes show.
    pub fn from_magic(head: &[u8]) -> Format {
        if head.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if head.starts_with(b"BZh") {
            Format::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else {
            Format::Plain
        }
    }

    /// The format's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "uncompressed",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
        }
    }
}

/// Fails a read once more than `limit` bytes came through.
pub struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R> Capped<R> {
    /// A reader failing once more than `limit` bytes came through.
    pub fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(format!(
                "decompressed data exceeds the limit of {} bytes (decompression bomb?)",
                self.limit
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Opens `r` (whose name is `href`) as a decompressed, size-capped stream.
pub fn open<'a, R: Read + 'a>(
    r: R,
    href: &str,
    limit: u64,
) -> Result<Box<dyn BufRead + 'a>, String> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let head = r.fill_buf().map_err(|e| e.to_string())?;
    let by_magic = Format::from_magic(head);
    let by_ext = Format::from_extension(href);
    if by_ext != by_magic {
        return Err(format!(
            "`{href}` should be {} by its name but its content is {}",
            by_ext.name(),
            by_magic.name()
        ));
    }
    let cap = |inner: Box<dyn Read + 'a>| -> Box<dyn BufRead + 'a> {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            Capped {
                inner,
                left: limit,
                limit,
            },
        ))
    };
    Ok(match by_magic {
        Format::Plain => cap(Box::new(r)),
        Format::Gzip => cap(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
        Format::Bzip2 => cap(Box::new(bzip2::bufread::MultiBzDecoder::new(r))),
        Format::Xz => cap(Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r))),
        Format::Zstd => cap(Box::new(
            zstd::stream::read::Decoder::with_buffer(r).map_err(|e| e.to_string())?,
        )),
    })
}
