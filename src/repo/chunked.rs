//! Repository metadata parsed on every core.
//!
//! Decompression is sequential, parsing need not be: the calling thread inflates the stream
//! (`primary.xml`, `filelists.xml`) and cuts it after a `</package>` roughly every [`CHUNK`]
//! bytes; worker threads parse the chunks (each made a document of its own by the root
//! element's start or end tag around it) with the same strict parser as a whole file, each
//! into a part of the index; one thread joins the parts in the file's order. The result is
//! the sequential parse's, package for package.
//!
//! Any failure here (malformed XML, a cut that landed inside a comment, an over-long element,
//! a read error) is reported as [`Fallback`]: the caller parses the file again sequentially,
//! which gives the same answer or the same error (with its byte position) as before.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use super::xml::MAX_RUN;

/// About how many decompressed bytes one worker parses at a time.
pub(crate) const CHUNK: usize = 1 << 20;

/// The parallel parse failed; parse sequentially for the answer or the error.
#[derive(Debug)]
pub(crate) struct Fallback(pub String);

/// One chunk: its place in the file and its bytes (a document).
type Chunk = (usize, Vec<u8>);

/// Parses a metadata file (root element `root`) from `r` with `workers` threads: `parse` turns each chunk (a document
/// of its own) into a `T`, `merge` receives them in the file's order.
pub(crate) fn parse_parallel<T: Send>(
    mut r: impl Read,
    root: &str,
    workers: usize,
    parse: impl Fn(&[u8]) -> Result<T, String> + Sync,
    merge: impl FnMut(T) -> Result<(), String> + Send,
) -> Result<(), Fallback> {
    let workers = workers.max(1);
    std::thread::scope(|s| {
        // Shared by the workers and dropped with the last of them, so the splitter stops
        // when they do.
        let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(workers * 2);
        let chunk_rx = Arc::new(Mutex::new(chunk_rx));
        let (out_tx, out_rx) = sync_channel::<(usize, Result<T, String>)>(workers * 2);
        let (free_tx, free_rx) = channel();
        for _ in 0..workers {
            let (rx, tx, free, parse) = (
                Arc::clone(&chunk_rx),
                out_tx.clone(),
                free_tx.clone(),
                &parse,
            );
            s.spawn(move || parse_chunks(&rx, tx, free, parse));
        }
        drop((out_tx, chunk_rx, free_tx));
        let consumer = s.spawn(move || deliver(out_rx, merge));
        let split = split(&mut r, root, chunk_tx, free_rx);
        let delivered = consumer
            .join()
            .unwrap_or_else(|_| Err(Fallback("a parser thread panicked".into())));
        split?;
        delivered
    })
}

/// Worker: parses chunks until there are none, returning their buffers on `free`.
fn parse_chunks<T>(
    rx: &Mutex<Receiver<Chunk>>,
    tx: SyncSender<(usize, Result<T, String>)>,
    free: Sender<Vec<u8>>,
    parse: &(impl Fn(&[u8]) -> Result<T, String> + Sync),
) {
    loop {
        let next = rx.lock().map(|rx| rx.recv());
        let Ok(Ok((seq, bytes))) = next else {
            return;
        };
        let parsed = parse(&bytes);
        let _ = free.send(bytes);
        if tx.send((seq, parsed)).is_err() {
            return;
        }
    }
}

/// Hands the parsed chunks to `merge` in the file's order.
fn deliver<T>(
    rx: Receiver<(usize, Result<T, String>)>,
    mut merge: impl FnMut(T) -> Result<(), String>,
) -> Result<(), Fallback> {
    let mut waiting = BTreeMap::new();
    let mut next = 0usize;
    for (seq, parsed) in rx {
        waiting.insert(seq, parsed);
        while let Some(parsed) = waiting.remove(&next) {
            merge(parsed.map_err(Fallback)?).map_err(Fallback)?;
            next += 1;
        }
    }
    if !waiting.is_empty() {
        return Err(Fallback("a chunk was not parsed".into()));
    }
    Ok(())
}

/// Reads `r` to its end, sending chunks that end just after a `</package>`, each a document
/// of its own: a `<root>` start tag before every chunk but the first (which has the file's
/// own), an end tag after every chunk but the last. Buffers come back on `free`.
fn split(
    r: &mut impl Read,
    root: &str,
    tx: SyncSender<Chunk>,
    free: Receiver<Vec<u8>>,
) -> Result<(), Fallback> {
    const END: &[u8] = b"</package>";
    let (open, close) = (format!("<{root}>"), format!("</{root}>"));
    let stopped = |_| Fallback("the parsers stopped".into());
    let finder = memchr::memmem::FinderRev::new(END);
    let mut buf: Vec<u8> = Vec::with_capacity(2 * CHUNK);
    let mut seq = 0usize;
    // Where the search for a cut starts: bytes before it were searched already.
    let mut searched = 0usize;
    loop {
        let eof = fill(r, &mut buf, CHUNK).map_err(|e| Fallback(e.to_string()))?;
        if eof {
            return tx.send((seq, buf)).map_err(stopped);
        }
        let from = searched.saturating_sub(END.len());
        match finder.rfind(&buf[from..]) {
            Some(at) => {
                let cut = from + at + END.len();
                let mut next = free
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(2 * CHUNK));
                next.clear();
                next.extend_from_slice(open.as_bytes());
                next.extend_from_slice(&buf[cut..]);
                buf.truncate(cut);
                buf.extend_from_slice(close.as_bytes());
                tx.send((seq, std::mem::replace(&mut buf, next)))
                    .map_err(stopped)?;
                searched = buf.len();
                seq += 1;
            }
            // No package ends in this much: the sequential parser says what is wrong.
            None if buf.len() > MAX_RUN => {
                return Err(Fallback("no package end within the limit".into()));
            }
            None => searched = buf.len(),
        }
    }
}

/// Reads up to `more` bytes onto `buf`; true at the end of the stream.
fn fill(r: &mut impl Read, buf: &mut Vec<u8>, more: usize) -> std::io::Result<bool> {
    let want = more as u64;
    let n = r.take(want).read_to_end(buf)?;
    Ok((n as u64) < want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::metadata::{Package, parse_primary};

    fn doc(n: usize, pad: usize) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"N\">\n",
        );
        for i in 0..n {
            s.push_str(&format!(
                "<package type=\"rpm\"><name>p{i}</name><arch>x86_64</arch><version epoch=\"0\" ver=\"1\" rel=\"{i}\"/><checksum type=\"sha256\" pkgid=\"YES\">{:064x}</checksum><description>{}</description><location href=\"p{i}.rpm\"/><format><rpm:provides><rpm:entry name=\"cap{i}\"/></rpm:provides></format></package>\n",
                i,
                "x".repeat(pad)
            ));
        }
        s.push_str("</metadata>\n");
        s
    }

    fn sequential(d: &str) -> Result<Vec<Package>, String> {
        let mut v = Vec::new();
        parse_primary(d.as_bytes(), |p| {
            v.push(p);
            Ok(())
        })?;
        Ok(v)
    }

    fn parallel(d: &str, workers: usize) -> Result<Vec<Package>, Fallback> {
        let mut v = Vec::new();
        parse_parallel(
            d.as_bytes(),
            "metadata",
            workers,
            |r| {
                let mut part = Vec::new();
                crate::repo::metadata::parse_primary_slice(r, |p| {
                    part.push(p);
                    Ok(())
                })?;
                Ok(part)
            },
            |part| {
                v.extend(part);
                Ok(())
            },
        )?;
        Ok(v)
    }

    #[test]
    fn same_packages_in_the_same_order_as_the_sequential_parse() {
        for (n, pad) in [(0, 0), (1, 0), (3, 10), (5000, 700), (40, 100_000)] {
            let d = doc(n, pad);
            let want = sequential(&d).unwrap();
            assert_eq!(want.len(), n);
            for workers in [1, 2, 4] {
                assert_eq!(parallel(&d, workers).unwrap(), want, "{n} packages");
            }
        }
    }

    #[test]
    fn malformed_input_falls_back() {
        let mut d = doc(3000, 500);
        // A package that never ends, far from the start.
        let at = d.len() / 2;
        d.insert_str(at, "<package><name>");
        assert!(sequential(&d).is_err());
        assert!(parallel(&d, 2).is_err());
        // A cut inside a comment: the parallel parse gives up, the sequential one succeeds.
        let d = doc(3000, 500).replacen("<package ", "<!-- </package> --><package ", 2000);
        assert!(sequential(&d).is_ok());
        let _ = parallel(&d, 2);
    }
}
