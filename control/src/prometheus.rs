//! The Prometheus scrape endpoint: a deliberately tiny HTTP/1.1 server on a std `TcpListener`.
//!
//! `GET /metrics` (or `HEAD`) answers `200` with [`render_prometheus`] of the hub's latest
//! snapshot as `text/plain; version=0.0.4`; any other path is `404`, any other method `405`,
//! a malformed request `400`, a request head over [`MAX_REQUEST_BYTES`] `431`. Every response
//! closes the connection (`Connection: close`, with a `Content-Length`), which is what a
//! scraper expects and keeps the server stateless.
//!
//! # Decisions
//!
//! - **One thread, one client at a time.** Scrapes come every few seconds from one or two
//!   Prometheus servers; serving them in turn needs no pool and bounds the memory to one
//!   request. A stalled client holds the thread for at most [`Options::client_deadline`]
//!   (whole request and response), never longer, so it cannot stop scrapes for good.
//! - **Stopping.** The listener is non-blocking and the thread checks its stop flag every
//!   [`Options::poll_interval`] (100 ms) between connections, so [`MetricsServer::stop`]
//!   needs no self-connection trick (which is awkward for `0.0.0.0`/`[::]` listeners).
//!   Dropping the server also stops it.
//! - **No panics** reach the thread's top: a handler panic is caught per connection and the
//!   server keeps going; I/O errors on one connection only end that connection.
//! - Not on the packet path: the thread only reads an `Arc<Snapshot>` from the [`MetricsHub`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::{render_prometheus, MetricsHub, PROMETHEUS_CONTENT_TYPE};

/// Largest request head (request line and headers) read; bigger requests get `431`.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Tunables of the server (the defaults suit production; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Longest time one client may take to send its request and read the answer.
    pub client_deadline: Duration,
    /// How often the idle listener checks whether it should stop.
    pub poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_deadline: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// A running metrics endpoint; stops when [`MetricsServer::stop`] is called or it is dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `addr` (port 0 picks a free port) and serves `hub` from a new thread named
/// `conduit-metrics`, with default [`Options`].
pub fn serve(addr: SocketAddr, hub: Arc<MetricsHub>) -> io::Result<MetricsServer> {
    serve_with(addr, hub, Options::default())
}

/// As [`serve`], with explicit options.
pub fn serve_with(
    addr: SocketAddr,
    hub: Arc<MetricsHub>,
    opts: Options,
) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("conduit-metrics".into())
        .spawn(move || accept_loop(listener, hub, opts, flag))?;
    Ok(MetricsServer {
        addr: bound,
        stop,
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for the thread (at most one poll interval plus one client's
    /// deadline) and releases the port.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("metrics server thread panicked");
            }
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, hub: Arc<MetricsHub>, opts: Options, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let served = catch_unwind(AssertUnwindSafe(|| handle(stream, &hub, opts)));
                match served {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => log::debug!("metrics: client {peer}: {e}"),
                    Err(_) => log::error!("metrics: handler panicked for client {peer}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(opts.poll_interval)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("metrics: accept: {e}");
                std::thread::sleep(opts.poll_interval);
            }
        }
    }
}

/// What the request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
}

/// Parses the request line of a complete head.
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.split("\r\n").next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Some(Request::BadMethod)
        }
        _ => return None,
    };
    Some(if path == "/metrics" {
        Request::Metrics { head_only }
    } else {
        Request::NotFound
    })
}

fn handle(mut stream: TcpStream, hub: &MetricsHub, opts: Options) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let deadline = Instant::now() + opts.client_deadline;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "client deadline passed"))
    };
    stream.set_write_timeout(Some(opts.client_deadline))?;

    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    let head_end = loop {
        if let Some(pos) = find_head_end(&buf[..len]) {
            break Some(pos);
        }
        if len == buf.len() {
            break None;
        }
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(()), // the client went away
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let Some(head_end) = head_end else {
        respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request too large\n",
            false,
        )?;
        // Closing with unread input makes the kernel send a reset, which can destroy the
        // answer before the client reads it: swallow what is still coming, within bounds.
        stream.set_read_timeout(Some(remaining()?))?;
        let _ = io::copy(&mut (&mut stream).take(64 * 1024), &mut io::sink());
        return Ok(());
    };
    match parse_head(&buf[..head_end]) {
        Some(Request::Metrics { head_only }) => {
            let body = render_prometheus(&hub.current());
            respond(
                &mut stream,
                "200 OK",
                PROMETHEUS_CONTENT_TYPE,
                body.as_bytes(),
                head_only,
            )
        }
        Some(Request::NotFound) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found; metrics are at /metrics\n",
            false,
        ),
        Some(Request::BadMethod) => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
            false,
        ),
        None => respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        ),
    }
}

/// Index just past the blank line that ends the head (`\r\n\r\n`, or a bare `\n\n`).
fn find_head_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" },
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    // Tell the client we are done; errors here only mean it left first.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ApplianceMetrics, Snapshot};

    fn snapshot(generation: u64) -> Snapshot {
        Snapshot {
            appliance: ApplianceMetrics {
                version: "9.9.9".into(),
                table_generation: generation,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn quick() -> Options {
        Options {
            client_deadline: Duration::from_millis(300),
            poll_interval: Duration::from_millis(10),
        }
    }

    fn start() -> (MetricsServer, Arc<MetricsHub>) {
        let hub = Arc::new(MetricsHub::new());
        hub.publish(snapshot(1));
        let srv = serve_with("127.0.0.1:0".parse().unwrap(), hub.clone(), quick()).unwrap();
        (srv, hub)
    }

    /// Sends raw bytes and returns (status line, headers, body).
    fn exchange(addr: SocketAddr, req: &[u8]) -> (String, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.to_string(), headers.to_string(), body.to_string())
    }

    fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
        headers.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[test]
    fn serves_the_current_snapshot() {
        let (srv, hub) = start();
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        let (status, headers, body) = exchange(srv.local_addr(), req);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(
            header(&headers, "content-type"),
            Some(PROMETHEUS_CONTENT_TYPE)
        );
        assert_eq!(
            header(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(body, render_prometheus(&snapshot(1)));
        assert!(body.contains("conduit_table_generation 1\n"));

        hub.publish(snapshot(7));
        let (_, _, body) = exchange(srv.local_addr(), req);
        assert!(body.contains("conduit_table_generation 7\n"), "{body}");
        // Query strings are ignored; HEAD has the headers and no body.
        let (status, _, _) = exchange(srv.local_addr(), b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let (status, headers, body) = exchange(srv.local_addr(), b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.is_empty());
        assert_ne!(header(&headers, "content-length"), Some("0"));
        srv.stop();
    }

    #[test]
    fn other_requests_get_errors() {
        let (srv, _hub) = start();
        let a = srv.local_addr();
        assert_eq!(
            exchange(a, b"GET / HTTP/1.1\r\n\r\n").0,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            exchange(a, b"GET /metricsx HTTP/1.1\r\n\r\n").0,
            "HTTP/1.1 404 Not Found"
        );
        let (status, headers, _) =
            exchange(a, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
        assert_eq!(
            exchange(a, b"garbage\r\n\r\n").0,
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            exchange(a, b"GET /metrics SMTP/1.0\r\n\r\n").0,
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            exchange(a, b"\xff\xfe /metrics HTTP/1.1\r\n\r\n").0,
            "HTTP/1.1 400 Bad Request"
        );

        let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_REQUEST_BYTES + 100, b'a');
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The server may close before reading everything; a write error is fine.
        let _ = s.write_all(&big);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"),
            "{out:?}"
        );

        // Still serving after all that.
        assert_eq!(
            exchange(a, b"GET /metrics HTTP/1.1\r\n\r\n").0,
            "HTTP/1.1 200 OK"
        );
        srv.stop();
    }

    #[test]
    fn a_silent_client_does_not_block_others_for_long() {
        let (srv, _hub) = start();
        let a = srv.local_addr();
        let _silent = TcpStream::connect(a).unwrap();
        let mut partial = TcpStream::connect(a).unwrap();
        partial.write_all(b"GET /metr").unwrap();
        let t0 = Instant::now();
        let (status, _, _) = exchange(a, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        // Two stalled clients at 300 ms each, plus slack.
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        srv.stop();
    }

    #[test]
    fn stop_releases_the_port() {
        let (srv, _hub) = start();
        let a = srv.local_addr();
        let t0 = Instant::now();
        srv.stop();
        assert!(t0.elapsed() < Duration::from_secs(2));
        // The port can be bound again, and nobody answers on it meanwhile.
        let again = TcpListener::bind(a).expect("port released");
        drop(again);
        assert!(serve("127.0.0.1:0".parse().unwrap(), Arc::new(MetricsHub::new())).is_ok());
    }

    #[test]
    fn bind_errors_are_reported() {
        let (srv, _hub) = start();
        let err = serve(srv.local_addr(), Arc::new(MetricsHub::new())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn request_line_parsing() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\n\r\n"),
            Some(Request::Metrics { head_only: false })
        );
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1 extra\r\n\r\n"), None);
        assert_eq!(parse_head(b"GET metrics HTTP/1.1\r\n\r\n"), None);
        assert_eq!(
            parse_head(b"DELETE /x HTTP/1.1\r\n\r\n"),
            Some(Request::BadMethod)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\r\nA: b\r\n"), None);
    }
}
