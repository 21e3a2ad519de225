//! The controller's HTTP endpoints on a loopback socket: `/healthz` always, `/readyz` only
//! once the caches are synced, `/metrics` in OpenMetrics text with MetalLB's names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lb_alloc::PoolStats;
use lb_k8s::controller::metrics::Metrics;
use lb_k8s::http::{Health, serve};

/// One HTTP/1.1 GET; returns (status code, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap();
    (code, body)
}

#[test]
fn probes_and_metrics() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(
        Arc::clone(&metrics) as Arc<dyn lb_k8s::http::Encode>
    ));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve(listener, Arc::clone(&health), async {
        let _ = stopped.await;
    }));

    assert_eq!(get(addr, "/healthz").0, 200);
    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    health.ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").0, 200);
    assert_eq!(get(addr, "/nothing").0, 404);

    metrics.config_loaded.set(1);
    metrics.updates.inc_by(3);
    metrics.reconcile_error("allocation_failed");
    let stats = BTreeMap::from([(
        "default".to_string(),
        PoolStats {
            total_v4: 256,
            total_v6: 0,
            in_use_v4: 2,
            in_use_v6: 0,
        },
    )]);
    metrics.set_pools(&stats);
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "metallb_k8s_client_config_loaded_bool 1",
        "metallb_k8s_client_config_stale_bool 0",
        "metallb_k8s_client_updates_total 3",
        "metallb_k8s_client_update_errors_total 0",
        "metallb_allocator_addresses_total{pool=\"default\"} 256.0",
        "metallb_allocator_ipv4_addresses_in_use_total{pool=\"default\"} 2.0",
        "lb_controller_reconcile_errors_total{reason=\"allocation_failed\"} 1",
        "lb_controller_leader 0",
        "# EOF",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }
    assert!(body.contains("lb_controller_reconcile_duration_seconds_bucket"));

    // A deleted pool's series go away.
    metrics.set_pools(&BTreeMap::new());
    let (_, body) = get(addr, "/metrics");
    assert!(!body.contains("pool=\"default\""), "{body}");

    stop.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}
