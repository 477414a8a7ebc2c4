//! A loopback HTTP proxy in front of an S3 server that counts what a tool sends: requests,
//! bytes up (requests with their bodies) and bytes down. One proxy per tool, so that each
//! tool's figures are its own. Requests are counted by reading the client's stream as HTTP/1.1:
//! a header block, then a body of `Content-Length` bytes or in chunked encoding.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct Counts {
    requests: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

/// What went through a proxy: requests, bytes up, bytes down.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    pub requests: u64,
    pub up: u64,
    pub down: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, o: Traffic) -> Traffic {
        Traffic {
            requests: self.requests - o.requests,
            up: self.up - o.up,
            down: self.down - o.down,
        }
    }
}

impl Counts {
    pub(crate) fn now(&self) -> Traffic {
        Traffic {
            requests: self.requests.load(Ordering::SeqCst),
            up: self.up.load(Ordering::SeqCst),
            down: self.down.load(Ordering::SeqCst),
        }
    }
}

/// Starts a proxy to `upstream` (host:port); returns its port and its counters.
pub(crate) fn start(upstream: String) -> (u16, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the counting proxy");
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c1, c2) = (c.clone(), c.clone());
            let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut parser = RequestParser::default();
                pump(client, server, |buf| {
                    c1.up.fetch_add(buf.len() as u64, Ordering::SeqCst);
                    let n = parser.feed(buf);
                    c1.requests.fetch_add(n, Ordering::SeqCst);
                })
            });
            std::thread::spawn(move || {
                pump(server2, client2, |buf| {
                    c2.down.fetch_add(buf.len() as u64, Ordering::SeqCst);
                })
            });
        }
    });
    (port, counts)
}

fn pump(mut from: TcpStream, mut to: TcpStream, mut seen: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Where the parser is in the client's stream.
#[derive(Default)]
enum State {
    #[default]
    Headers,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
}

/// What the current request's headers said about its body.
#[derive(Default)]
struct Headers {
    length: u64,
    chunked: bool,
}

#[derive(Default)]
struct RequestParser {
    state: State,
    line: Vec<u8>,
    headers: Headers,
}

impl RequestParser {
    /// Feeds bytes of the client's stream; returns how many request header blocks ended in them.
    fn feed(&mut self, mut buf: &[u8]) -> u64 {
        let mut requests = 0;
        while !buf.is_empty() {
            match self.state {
                State::Body(n) | State::ChunkData(n) => {
                    let take = n.min(buf.len() as u64);
                    buf = &buf[take as usize..];
                    let left = n - take;
                    self.state = match (&self.state, left) {
                        (State::Body(_), 0) => State::Headers,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                }
                _ => {
                    self.line.push(buf[0]);
                    buf = &buf[1..];
                    if !self.line.ends_with(b"\n") {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    self.state = self.on_line(line, &mut requests);
                }
            }
        }
        requests
    }

    fn on_line(&mut self, line: Vec<u8>, requests: &mut u64) -> State {
        let text = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
        match self.state {
            State::Headers if text.is_empty() => {
                // The end of a header block: one request; its body follows.
                *requests += 1;
                let headers = std::mem::take(&mut self.headers);
                if headers.chunked {
                    State::ChunkSize
                } else if headers.length > 0 {
                    State::Body(headers.length)
                } else {
                    State::Headers
                }
            }
            State::Headers => {
                let h = &mut self.headers;
                if let Some(v) = text.strip_prefix("content-length:") {
                    h.length = v.trim().parse().unwrap_or(0);
                } else if text.starts_with("transfer-encoding:") && text.contains("chunked") {
                    h.chunked = true;
                }
                State::Headers
            }
            State::ChunkSize => {
                let size =
                    u64::from_str_radix(text.split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                }
            }
            State::ChunkEnd => State::ChunkSize,
            State::Trailers if text.is_empty() => State::Headers,
            _ => State::Trailers,
        }
    }
}
