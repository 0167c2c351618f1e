use super::*;
use crate::metrics::{
    render_openmetrics, render_prometheus, ApplianceMetrics, Snapshot, OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

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
        client_deadline: Duration::from_millis(600),
        header_timeout: Duration::from_millis(300),
        max_connections: 16,
    }
}

fn start_with(opts: Options) -> (MetricsServer, Arc<MetricsHub>) {
    let hub = Arc::new(MetricsHub::new());
    hub.publish(snapshot(1));
    let srv = serve_with("127.0.0.1:0".parse().unwrap(), hub.clone(), opts).unwrap();
    (srv, hub)
}

fn start() -> (MetricsServer, Arc<MetricsHub>) {
    start_with(quick())
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
    assert!(status.ends_with(" 200 OK"), "{status}");
    let (status, headers, body) = exchange(
        srv.local_addr(),
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    assert_ne!(header(&headers, "content-length"), Some("0"));
    srv.stop();
}

#[test]
fn accept_header_selects_openmetrics() {
    let (srv, _hub) = start();
    let (status, headers, body) = exchange(
        srv.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3\r\n\r\n",
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );
    assert_eq!(body, render_openmetrics(&snapshot(1)));
    assert!(body.ends_with("# EOF\n"));
    let (_, headers, body) = exchange(
        srv.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(
        header(&headers, "content-type"),
        Some(PROMETHEUS_CONTENT_TYPE)
    );
    assert!(!body.contains("# EOF"));
    srv.stop();
}

#[test]
fn other_requests_get_errors() {
    let (srv, _hub) = start();
    let a = srv.local_addr();
    let get = |path: &str| {
        exchange(
            a,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    };
    assert_eq!(get("/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(get("/metricsx").0, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = exchange(
        a,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
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
    assert_eq!(get("/metrics").0, "HTTP/1.1 200 OK");
    srv.stop();
}

/// Opens a connection that sends part of a request head and then nothing (slowloris).
fn slowloris(a: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    s
}

/// Ten clients that hold their connections with half-sent requests do not delay a scrape:
/// each connection is its own task, waiting on its own header timer (production defaults
/// here, 5 s, so the scrape cannot be rescued by the timers firing).
#[test]
fn slow_clients_do_not_delay_a_scrape() {
    let (srv, _hub) = start_with(Options::default());
    let a = srv.local_addr();
    let _slow: Vec<TcpStream> = (0..10).map(|_| slowloris(a)).collect();
    // Let the server accept them all before the scrape.
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let (status, _, body) = exchange(a, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let took = t0.elapsed();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("conduit_table_generation 1\n"));
    eprintln!("scrape with 10 slowloris clients connected: {took:?}");
    // Well under a second in practice; 2 s keeps a loaded CI machine from failing it.
    assert!(took < Duration::from_secs(2), "{took:?}");
    srv.stop();
}

/// A client that never finishes its head is cut off at the header timeout.
#[test]
fn a_slow_head_is_cut_off() {
    let (srv, _hub) = start();
    let mut s = slowloris(srv.local_addr());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out); // a 408 or a bare close, then EOF
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!String::from_utf8_lossy(&out).contains(" 200 "), "{out:?}");
    srv.stop();
}

/// Connections past the bound are closed at once; the slots come back when holders leave.
#[test]
fn connections_are_bounded() {
    // Production timeouts: the held connections must not time out while the test runs.
    let (srv, _hub) = start_with(Options {
        max_connections: 2,
        ..Options::default()
    });
    let a = srv.local_addr();
    let held: Vec<TcpStream> = (0..2).map(|_| slowloris(a)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(a).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let t0 = Instant::now();
    let _ = extra.read_to_end(&mut out);
    // Closed without an answer, long before a timeout (5 s) could have closed it.
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        exchange(a, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").0,
        "HTTP/1.1 200 OK"
    );
    srv.stop();
}

#[test]
fn stop_releases_the_port() {
    let (srv, _hub) = start();
    let a = srv.local_addr();
    let _slow = slowloris(a);
    let t0 = Instant::now();
    srv.stop();
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The port can be bound again.
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
