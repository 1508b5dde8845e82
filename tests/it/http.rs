//! A small static HTTP server on 127.0.0.1 for tests: serves a directory, logs requests,
//! and can be told to fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct Server {
    pub addr: String,
    pub log: Arc<Mutex<Vec<String>>>,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

/// Misbehaviour on demand, for paths containing `target`.
#[derive(Default)]
pub struct Faults {
    pub target: Mutex<String>,
    /// Answer this many requests with 503 first.
    pub unavailable: std::sync::atomic::AtomicUsize,
    /// Cut this many responses off halfway (the connection drops).
    pub truncate: std::sync::atomic::AtomicUsize,
    /// Answer range requests with the whole file (200), as servers without range support do.
    pub ignore_range: AtomicBool,
    /// Hold answers back until this is cleared.
    pub hold: AtomicBool,
    /// Answer with an endless body and no Content-Length (stops after 256 MiB, or when the
    /// client hangs up).
    pub endless: AtomicBool,
    /// Send bodies this many bytes at a time, one piece every 50 ms (0: at once).
    pub trickle: std::sync::atomic::AtomicUsize,
}

impl Server {
    /// Serves `root` until dropped.
    pub fn serve(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Faults::default());
        let (root, log2, stop2, faults2) =
            (root.to_owned(), log.clone(), stop.clone(), faults.clone());
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (root, log, faults) = (root.clone(), log2.clone(), faults2.clone());
                        thread::spawn(move || handle(s, &root, &log, &faults));
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            log,
            faults,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn take(counter: &std::sync::atomic::AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn handle(s: TcpStream, root: &Path, log: &Mutex<Vec<String>>, faults: &Faults) {
    s.set_nonblocking(false).ok();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut range: Option<u64> = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    log.lock().unwrap().push(match range {
        Some(n) => format!("{method} {path} range={n}"),
        None => format!("{method} {path}"),
    });
    let rel = path.trim_start_matches('/');
    let file: PathBuf = root.join(rel);
    let mut s = s;
    if rel.split('/').any(|c| c == "..") || !file.is_file() {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let targeted = {
        let t = faults.target.lock().unwrap();
        !t.is_empty() && path.contains(t.as_str())
    };
    while targeted && faults.hold.load(Ordering::SeqCst) {
        thread::sleep(std::time::Duration::from_millis(10));
    }
    if targeted && take(&faults.unavailable) {
        let _ = s.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    if targeted && faults.endless.load(Ordering::SeqCst) {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..256 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        return;
    }
    let mut body = Vec::new();
    std::fs::File::open(&file)
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    let total = body.len() as u64;
    match range {
        Some(n) if n < total && !(targeted && faults.ignore_range.load(Ordering::SeqCst)) => {
            let _ = write!(
                s,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                total - 1,
                total - n
            );
            let _ = s.write_all(&body[n as usize..]);
        }
        _ => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            );
            if method != "HEAD" {
                let piece = faults.trickle.load(Ordering::SeqCst);
                if targeted && piece > 0 {
                    for c in body.chunks(piece) {
                        if s.write_all(c).and_then(|_| s.flush()).is_err() {
                            return;
                        }
                        thread::sleep(std::time::Duration::from_millis(50));
                    }
                    return;
                }
                if targeted && take(&faults.truncate) {
                    let _ = s.write_all(&body[..body.len() / 2]);
                    let _ = s.flush();
                    return; // the connection drops mid-body
                }
                let _ = s.write_all(&body);
            }
        }
    }
}
