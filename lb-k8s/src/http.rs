//! The HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (liveness: the process
//! serves) and `/readyz` (readiness: the caches are synced).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Something that renders metrics as OpenMetrics text (the controller's and the speaker's
/// metrics).
pub trait Encode: Send + Sync {
    /// The OpenMetrics text of every metric.
    fn encode(&self) -> String;
}

/// What the endpoints read.
pub struct Health {
    /// The metrics.
    pub metrics: Arc<dyn Encode>,
    /// True once every reflector listed its objects.
    pub ready: AtomicBool,
}

impl Health {
    /// Not ready yet.
    pub fn new(metrics: Arc<dyn Encode>) -> Self {
        Self {
            metrics,
            ready: AtomicBool::new(false),
        }
    }
}

/// The router of the three endpoints.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced\n")
    }
}

/// Serves the endpoints on `listener` until `shutdown` completes.
///
/// Fails when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}
