//! Connection limits of the demo server (CONTRACTS §2.2), over TCP on
//! 127.0.0.1 against the `rp_server` process: slow and idle connections,
//! oversized headers, slow bodies, SIGTERM with idle keep-alives; and, in
//! process, [`hwkey::http::serve`]'s panic guard and load shedding.
#![cfg(all(feature = "http", feature = "sqlite"))]

mod limits_common;

use axum::Router;
use axum::routing::get;
use hwkey::http::serve::{ServeLimits, serve};
use limits_common::{Conn, Server, percentile, probe_latencies, raise_fd_limit};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn mem_server(extra: &[&str]) -> Server {
    Server::start("sqlite::memory:", extra)
}

/// 300 connections that send their request head one byte a second are all
/// closed within 15 s, and a client meanwhile is served as fast as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_closed_and_others_are_unaffected() {
    let server = mem_server(&[]);
    let addr = server.addr;
    let mut baseline = probe_latencies(addr, 100).await;
    let base_p99 = percentile(&mut baseline, 99);

    let start = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(tokio::spawn(async move {
            let mut c = Conn::connect(addr).await.expect("connect");
            let head = b"POST /api/login/options HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
            let t = Instant::now();
            for b in head.iter().cycle() {
                if c.stream.write_all(&[*b]).await.is_err() {
                    return t.elapsed();
                }
                // Closed by the server? (a read of 0 or an error within the next second)
                if c.closed_within(Duration::from_secs(1)).await {
                    return t.elapsed();
                }
                if t.elapsed() > Duration::from_secs(40) {
                    break;
                }
            }
            t.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut during = probe_latencies(addr, 300).await;
    let during_p99 = percentile(&mut during, 99);
    let mut worst = Duration::ZERO;
    for h in slow {
        worst = worst.max(h.await.expect("slow client"));
    }
    assert!(worst <= Duration::from_secs(15), "a slow-header connection stayed open {worst:?} (limit 15 s)");
    assert!(start.elapsed() < Duration::from_secs(20));
    // "Unaffected": within 5x the quiet p99, or 100 ms on a busy CI machine.
    let bound = (base_p99 * 5).max(Duration::from_millis(100));
    assert!(during_p99 <= bound, "p99 {during_p99:?} under slowloris, {base_p99:?} before (bound {bound:?})");
}

/// 2,000 idle connections: other clients are served meanwhile, and each
/// idle one is closed within 15 s of its connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections() {
    let soft = raise_fd_limit();
    if soft < 2_300 {
        // .ci/faults.sh raises the limit first and sets HWKEY_FAULTS=1: there it must run.
        assert!(
            std::env::var("HWKEY_FAULTS").is_err(),
            "the open-file limit ({soft}) is too low for 2,000 connections even after raising it"
        );
        println!("skipped: the open-file limit ({soft}) is too low for 2,000 connections; .ci/faults.sh raises it");
        return;
    }
    let server = mem_server(&[]);
    let addr = server.addr;
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        idle.push((Instant::now(), Conn::connect(addr).await.expect("connect")));
    }
    let mut during = probe_latencies(addr, 100).await;
    let p99 = percentile(&mut during, 99);
    assert!(p99 < Duration::from_millis(250), "p99 {p99:?} with 2,000 idle connections");
    // Each one closed within 15 s of its own connect (10 s header timeout, and slack).
    let mut still_open = 0;
    let handles: Vec<_> = idle
        .into_iter()
        .map(|(opened, mut c)| {
            tokio::spawn(async move {
                let left = Duration::from_secs(15).saturating_sub(opened.elapsed());
                c.closed_within(left).await
            })
        })
        .collect();
    for h in handles {
        if !h.await.expect("join") {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "{still_open} of 2,000 idle connections still open after 15 s");
}

/// A keep-alive connection left idle after a request is closed well within 75 s.
#[tokio::test]
async fn idle_keep_alive_is_closed() {
    let server = mem_server(&[]);
    let mut c = Conn::connect(server.addr).await.expect("connect");
    let r = c.request("POST", "/api/login/options", &[], b"{}").await.expect("reply");
    assert_eq!(r.status, 200);
    let t = Instant::now();
    assert!(c.closed_within(Duration::from_secs(75)).await, "idle keep-alive connection not closed in 75 s");
    assert!(t.elapsed() <= Duration::from_secs(15), "closed only after {:?}", t.elapsed());
}

/// A 200 KiB request head gets 431 or a closed connection, never an answer.
#[tokio::test]
async fn oversized_headers_get_431() {
    let server = mem_server(&[]);
    let mut c = Conn::connect(server.addr).await.expect("connect");
    let big = "a".repeat(200 * 1024);
    match c.request("POST", "/api/login/options", &[("X-Big", &big)], b"{}").await {
        None => {}
        Some(r) => assert_eq!(r.status, 431, "a 200 KiB header was answered {}", r.status),
    }
}

/// A body that never arrives: 503 `overloaded` with Retry-After after the
/// request timeout, not a connection held open for ever.
#[tokio::test]
async fn slow_body_times_out() {
    let server = mem_server(&["--request-timeout", "2"]);
    let mut c = Conn::connect(server.addr).await.expect("connect");
    let head = "POST /api/login/options HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{";
    c.stream.write_all(head.as_bytes()).await.expect("send");
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), c.read_reply()).await;
    let r = r.expect("no answer within 10 s").expect("closed without an answer");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "overloaded");
    assert!(r.header("retry-after").is_some());
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// SIGTERM with idle keep-alive connections open and a request in flight:
/// the request is answered, and the process exits 0 within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_keep_alives_exits_zero() {
    let mut server = mem_server(&["--header-timeout", "60"]);
    let addr = server.addr;
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut c = Conn::connect(addr).await.expect("connect");
        assert_eq!(c.request("POST", "/api/login/options", &[], b"{}").await.expect("reply").status, 200);
        idle.push(c);
    }
    // A request in flight: its body arrives after the signal.
    let mut busy = Conn::connect(addr).await.expect("connect");
    busy.stream
        .write_all(b"POST /api/login/options HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    busy.stream.write_all(b"}").await.expect("finish the body");
    let r = busy.read_reply().await.expect("the request in flight was answered");
    assert_eq!(r.status, 200);
    let status = tokio::task::spawn_blocking(move || {
        let s = server.wait_exit(Duration::from_secs(10));
        (s, server)
    })
    .await
    .expect("join");
    let (status, server) = status;
    let status = status.unwrap_or_else(|| panic!("still running 10 s after SIGTERM; stderr: {}", server.stderr()));
    assert!(status.success(), "exit status {status:?}");
    assert!(t.elapsed() <= Duration::from_secs(10));
    drop(idle);
}

async fn serve_in_process(
    router: Router,
    limits: ServeLimits,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A panicking handler answers 500 `internal_error` for that request only;
/// the server and the same connection go on.
#[tokio::test]
async fn a_panic_answers_500_for_that_request_only() {
    let router = Router::new()
        .route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("deliberate test panic");
                }
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "fine" }));
    let (addr, _stop) = serve_in_process(router, ServeLimits::default()).await;
    let mut c = Conn::connect(addr).await.expect("connect");
    let r = c.request("GET", "/boom", &[], b"").await.expect("reply");
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], "internal_error");
    let mut c2 = Conn::connect(addr).await.expect("connect");
    let r = c2.request("GET", "/ok", &[], b"").await.expect("reply");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"fine"[..]));
}

/// Over the in-flight cap: 503 `overloaded` with Retry-After, at once.
#[tokio::test]
async fn over_the_in_flight_cap_sheds_with_503() {
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "done"
        }),
    );
    let limits = ServeLimits { max_in_flight: 1, ..ServeLimits::default() };
    let (addr, _stop) = serve_in_process(router, limits).await;
    let first = tokio::spawn(async move {
        let mut c = Conn::connect(addr).await.expect("connect");
        c.request("GET", "/slow", &[], b"").await.expect("reply").status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = Conn::connect(addr).await.expect("connect");
    let t = Instant::now();
    let r = c.request("GET", "/slow", &[], b"").await.expect("reply");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(first.await.expect("join"), 200);
}

/// Graceful shutdown in process: `serve` returns once the shutdown future
/// resolves, with an idle keep-alive connection open.
#[tokio::test]
async fn serve_returns_on_shutdown_with_idle_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = Router::new().route("/ok", get(|| async { "fine" }));
    let task = tokio::spawn(serve(listener, router, ServeLimits::default(), async move {
        let _ = rx.await;
    }));
    let mut c = Conn::connect(addr).await.expect("connect");
    assert_eq!(c.request("GET", "/ok", &[], b"").await.expect("reply").status, 200);
    let t = Instant::now();
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve returned").expect("join").expect("ok");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(c.closed_within(Duration::from_secs(1)).await);
}
