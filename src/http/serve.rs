//! Serving a [`Router`] with the limits of CONTRACTS §2.2: what
//! `axum::serve` does not do.
//!
//! [`serve`] runs an accept loop over hyper's HTTP/1.1 connection builder
//! (hyper-util's tokio glue and graceful-shutdown watcher) and wraps the
//! router in tower's load-shed, concurrency-limit and timeout layers and
//! tower-http's panic guard:
//!
//! | limit | default ([`ServeLimits::default`]) | what happens when it is reached |
//! |---|---|---|
//! | request headers complete within | 10 s | the connection is closed |
//! | idle keep-alive connection | 10 s (the header timer runs while a connection waits for its next request; the contract's bound is 75 s) | the connection is closed |
//! | request headers size | 64 KiB | 431, then the connection is closed |
//! | a request's whole handling (body read included) | 30 s | 503 `overloaded` with `Retry-After` |
//! | open connections | [`default_max_connections`] (sized for the machine and its open-file limit) | no more `accept()` until one closes: back-pressure into the kernel's backlog |
//! | requests in flight | 1024 | 503 `overloaded` with `Retry-After`, at once |
//! | a panic while handling a request | | 500 `internal_error` for that request only, logged; the process goes on |
//! | shutdown (the future given to [`serve`], e.g. SIGTERM) | 8 s grace | stop accepting, close idle connections, finish requests in flight, return |
//!
//! ```no_run
//! # async fn demo(router: axum::Router) -> std::io::Result<()> {
//! use hwkey::http::serve::{ServeLimits, serve, shutdown_signal};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, router, ServeLimits::default(), shutdown_signal()).await
//! # }
//! ```

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::any::Any;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

/// The limits [`serve`] applies. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// A connection that has not sent a complete request head within this
    /// long is closed. hyper's timer also runs while a keep-alive connection
    /// waits for its next request, so this is the idle timeout as well.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; larger
    /// ones get 431 and the connection is closed. Default 64 KiB.
    pub max_header_bytes: usize,
    /// Longest time one request may take, reading its body included; then it
    /// gets 503 `overloaded`. Default 30 s.
    pub request_timeout: Duration,
    /// Open connections at most; at the cap the server stops accepting until
    /// one closes. Default [`default_max_connections`].
    pub max_connections: usize,
    /// Requests being handled at once at most; more get 503 `overloaded`
    /// at once. Default 1024.
    pub max_in_flight: usize,
    /// After the shutdown future resolves, how long requests in flight may
    /// take before [`serve`] returns anyway. Default 8 s (so a process that
    /// exits after `serve` returns does so within 10 s of SIGTERM).
    pub shutdown_grace: Duration,
    /// The `Retry-After` value (seconds) sent with 503 `overloaded`. Default 1.
    pub retry_after_secs: u32,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            max_in_flight: 1024,
            shutdown_grace: Duration::from_secs(8),
            retry_after_secs: 1,
        }
    }
}

/// The default connection cap: 2,048 per CPU, at least 4,096, and at most
/// the process's open-file limit less 128 descriptors kept for the database
/// and logs (read from `/proc/self/limits` on Linux; elsewhere not
/// lowered). Raise the open-file limit (`ulimit -n`) to allow more.
pub fn default_max_connections() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let wanted = cpus.saturating_mul(2048).max(4096);
    match open_file_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(128)).max(16),
        None => wanted,
    }
}

/// The soft open-file limit, from `/proc/self/limits` ("Max open files").
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    soft.parse().ok() // "unlimited" does not parse: no cap from it
}

/// The body of a 503 `overloaded`, with `Retry-After`.
pub fn overloaded_response(retry_after_secs: u32, message: &str) -> axum::response::Response {
    let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

fn error_response(status: StatusCode, code: &str, message: &str) -> axum::response::Response {
    let body = serde_json::json!({ "verified": false, "error": code, "message": message });
    let mut r = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Turns a panic into 500 `internal_error`, and logs it.
#[derive(Clone, Copy, Debug)]
struct PanicToInternalError;

impl ResponseForPanic for PanicToInternalError {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let what = err
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
        tracing::error!("a request handler panicked (answered 500 internal_error): {what}");
        error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server failed on this request")
    }
}

/// `router` inside the load-shed, concurrency-limit, timeout and panic
/// layers of `limits`: what [`serve`] runs for every connection.
fn limited(
    router: Router,
    limits: &ServeLimits,
) -> impl tower::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let retry = limits.retry_after_secs;
    ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: BoxError| async move {
            if e.is::<tower::timeout::error::Elapsed>() {
                overloaded_response(retry, "the request took too long; try again later")
            } else if e.is::<tower::load_shed::error::Overloaded>() {
                overloaded_response(retry, "the server is at its limit of requests in flight; try again later")
            } else {
                tracing::error!("request failed in the serving layers: {e}");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server failed on this request")
            }
            .into_response()
        }))
        .load_shed()
        .concurrency_limit(limits.max_in_flight.max(1))
        .timeout(limits.request_timeout)
        .layer(CatchPanicLayer::custom(PanicToInternalError))
        .service(router)
}

/// Serve `router` on `listener` with `limits` until `shutdown` resolves;
/// then stop accepting, let idle connections close and requests in flight
/// finish (for at most [`ServeLimits::shutdown_grace`]), and return.
///
/// Responses go out without Nagle delay (`TCP_NODELAY`). Errors accepting a
/// connection are logged and retried (after 50 ms when the process is out
/// of file descriptors); only a failure before serving returns `Err`.
pub async fn serve<F>(listener: TcpListener, router: Router, limits: ServeLimits, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let app = limited(router, &limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Back-pressure: at the cap, do not accept (the kernel queues, then refuses).
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => (tcp, peer),
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        // The client's address for the per-address throttle, as axum's
        // `ConnectInfo` (what `into_make_service_with_connect_info` would set).
        let service = TowerToHyperService::new(
            ServiceBuilder::new()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    req
                })
                .service(app.clone()),
        );
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown: requests still in flight after {:?}; giving up on them", limits.shutdown_grace);
        }
    }
    Ok(())
}

async fn accept_error(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {}
        _ => {
            // EMFILE/ENFILE and the like: wait for connections to close.
            tracing::error!("accept failed: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: a shutdown future for [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
