//! The Prometheus scrape endpoint: `hyper` (HTTP/1.1) on a small Tokio runtime that runs on its
//! own thread, `conduit-metrics`, never on a worker lcore.
//!
//! `GET /metrics` (or `HEAD`) answers `200` with the hub's latest snapshot, encoded by
//! [`crate::metrics::encode`] in the format the `Accept` header asks for ([`negotiate`]):
//! OpenMetrics 1.0.0 for `application/openmetrics-text`, else the Prometheus text format 0.0.4.
//! Any other path is `404`, any other method `405`, a malformed request `400`, a request head
//! over [`MAX_REQUEST_BYTES`] `431` (hyper's answers). Every response closes the connection.
//!
//! # Decisions
//!
//! - **hyper on a current-thread Tokio runtime.** hyper is the HTTP implementation the Rust
//!   field builds on (axum, tonic, reqwest, and exporters such as `metrics-exporter-prometheus`
//!   serve their `/metrics` with it); it parses HTTP for us, enforces a header read timeout and
//!   serves every connection as its own task, so clients that send their request slowly
//!   (slowloris) wait on their own timers instead of holding the endpoint. One thread is
//!   plenty for a few scrapes a second and keeps the appliance's thread count fixed.
//! - **Bounded.** At most [`Options::max_connections`] connections are served at once (more are
//!   accepted and closed at once, so the kernel backlog does not fill); a request head must
//!   arrive within [`Options::header_timeout`], and a whole exchange within
//!   [`Options::client_deadline`]. No keep-alive: scrapes come every few seconds and a closed
//!   connection holds nothing.
//! - **Stopping.** [`MetricsServer::stop`] (or dropping the server) signals the runtime, which
//!   stops accepting, drops every connection and the listener, and the thread ends.
//! - Not on the packet path: the thread only reads an `Arc<Snapshot>` from the [`MetricsHub`]
//!   and the process's own `/proc` files.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use crate::metrics::{encode, Format, MetricsHub};

/// Largest request head (request line and headers) read; bigger requests get `431`. hyper's
/// smallest read buffer.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Tunables of the server (the defaults suit production; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Longest time one client may take to send its request and read the answer.
    pub client_deadline: Duration,
    /// Longest time a client may take to send its request head.
    pub header_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_deadline: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            // A few Prometheus servers and an operator's curl; slack for half-open clients.
            max_connections: 64,
        }
    }
}

/// A running metrics endpoint; stops when [`MetricsServer::stop`] is called or it is dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
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
    // Bind here, on the caller's thread, so that errors (address in use) reach the caller.
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _in_runtime = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("conduit-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, hub, opts) => {}
                }
            });
            // Dropping the runtime here cancels every connection task and closes its socket.
        })?;
    Ok(MetricsServer {
        addr: bound,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl MetricsServer {
    /// The address actually bound (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops every connection, waits for the thread and releases the port.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            // An error only means the thread already ended.
            let _ = s.send(());
        }
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

async fn accept_loop(listener: tokio::net::TcpListener, hub: Arc<MetricsHub>, opts: Options) {
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_BYTES);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log::debug!("metrics: {peer}: too many connections, closed");
            continue; // dropping the stream closes it
        };
        let hub = Arc::clone(&hub);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| {
                let hub = Arc::clone(&hub);
                async move { Ok::<_, Infallible>(answer(&req, &hub)) }
            }),
        );
        tokio::spawn(async move {
            match tokio::time::timeout(opts.client_deadline, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("metrics: client {peer}: {e}"),
                Err(_) => log::debug!("metrics: client {peer}: deadline passed"),
            }
            drop(slot);
        });
    }
}

/// The response to one request.
fn answer(req: &Request<Incoming>, hub: &MetricsHub) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = encode(hub.current(), format);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests;
