//! `http::serve` hands each request the client's address as axum's
//! `ConnectInfo<SocketAddr>`, which the account service's per-address
//! throttle reads (without it that throttle was silently off in the demo
//! server: `axum::serve` had been given a plain router).

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use hwkey::http::serve::{ServeLimits, serve};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn requests_carry_the_peer_address() {
    let app = Router::new()
        .route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, ServeLimits::default(), async {
        let _ = stopped.await;
    }));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("127.0.0.1"), "{reply}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
