//! Controller scale benchmarks against kube's mocked API service (`tower-test`): a task
//! answers every request at once, so the figures are the controller's own cost plus the
//! client's request encoding and response decoding.
//!
//! - `restore_10k_recorded`: 10,000 LoadBalancer Services whose status and annotation already
//!   record their IPs (a controller restart): time from an empty state to converged (config
//!   loaded, every IP taken back, nothing to write but the ConfigurationState and pool status).
//! - `allocate_10k_new`: 10,000 pending Services: every one allocated and written (status
//!   patch, annotation patch, `IPAllocated` event): 30,000 requests.
//!
//! Run with `cargo bench -p lb-k8s --bench controller`; results and the command are kept in
//! `docs/benchmarks.md`. Documentation prefixes only; no socket is opened.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use lb_k8s::controller::metrics::Metrics;
use lb_k8s::controller::{Engine, Stores};
use lb_k8s::reflect::ConfigStores;
use lb_k8s::writer::Writer;
use lb_metallb::controller::Settings;
use lb_metallb::crd::{IPAddressPool, IPAddressPoolSpec};
use serde_json::json;

const N: usize = 10_000;
const NS: &str = "metallb-system";

/// A store holding `objects`, synced.
fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

fn pool() -> IPAddressPool {
    let mut p = IPAddressPool::new(
        "default",
        IPAddressPoolSpec {
            addresses: vec!["2001:db8::/112".into()],
            ..IPAddressPoolSpec::default()
        },
    );
    p.metadata.namespace = Some(NS.into());
    p
}

/// Service `i`: IPv6 single stack; with `recorded`, its status and annotation already say
/// 2001:db8::<i+1> from pool `default`.
fn service(i: usize, recorded: bool) -> Service {
    let ip = format!("2001:db8::{:x}", i + 1);
    Service {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i:05}")),
            namespace: Some(format!("team-{}", i % 50)),
            uid: Some(format!("uid-{i}")),
            annotations: recorded.then(|| {
                BTreeMap::from([(
                    "metallb.io/ip-allocated-from-pool".to_string(),
                    "default".to_string(),
                )])
            }),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ips: Some(vec![format!("2001:db8:c1::{:x}", i + 1)]),
            ip_families: Some(vec!["IPv6".into()]),
            ..ServiceSpec::default()
        }),
        status: recorded.then(|| ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        }),
    }
}

fn stores(services: Vec<Service>) -> Stores {
    Stores {
        services: store(services),
        config: ConfigStores {
            pools: store(vec![pool()]),
            l2_advertisements: store(Vec::new()),
            bgp_advertisements: store(Vec::new()),
            communities: store(Vec::new()),
            bfd_profiles: store(Vec::new()),
            peers: store(Vec::new()),
            secrets: store(Vec::new()),
        },
        namespaces: store(Vec::new()),
        nodes: store(Vec::new()),
    }
}

/// A minimal object of the kind the request path names, for the client to decode.
fn answer(path: &str) -> serde_json::Value {
    let name = path.rsplit('/').find(|s| *s != "status").unwrap_or("x");
    if path.contains("/events") {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}})
    } else if path.contains("/services/") {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}})
    } else if path.contains("/ipaddresspools/") {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": name}, "spec": {"addresses": []}})
    } else {
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState",
               "metadata": {"name": name}, "spec": {}})
    }
}

/// A client whose every request is answered at once by a task; returns the request count.
fn mocked_client(rt: &tokio::runtime::Runtime) -> (Client, Arc<AtomicUsize>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    rt.spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            seen.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::to_vec(&answer(request.uri().path())).unwrap();
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(body))
                    .unwrap(),
            );
        }
    });
    let client = rt.block_on(async { Client::new(service, "default") });
    (client, count)
}

fn engine(rt: &tokio::runtime::Runtime, services: &[Service]) -> (Engine, Arc<AtomicUsize>) {
    let (client, count) = mocked_client(rt);
    let settings = Settings {
        namespace: NS.into(),
        lb_class: None,
    };
    let writer = Writer::new(client, NS, "bench");
    let stores = stores(services.to_vec());
    let engine = Engine::new(settings, stores, writer, Arc::new(Metrics::new()), 16);
    (engine, count)
}

fn bench_controller(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("controller");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));

    let recorded: Vec<Service> = (0..N).map(|i| service(i, true)).collect();
    group.bench_function("restore_10k_recorded", |b| {
        b.iter_batched(
            || engine(&rt, &recorded),
            |(mut engine, count)| {
                rt.block_on(engine.start());
                assert_eq!(engine.state().allocator().len(), N);
                // ConfigurationState (get, status patch) and one pool status; no Service.
                assert_eq!(count.load(Ordering::Relaxed), 3);
                engine
            },
            BatchSize::PerIteration,
        );
    });

    let pending: Vec<Service> = (0..N).map(|i| service(i, false)).collect();
    group.bench_function("allocate_10k_new", |b| {
        b.iter_batched(
            || engine(&rt, &pending),
            |(mut engine, count)| {
                rt.block_on(engine.start());
                assert_eq!(engine.state().allocator().len(), N);
                assert!(engine.failed().is_empty());
                assert_eq!(count.load(Ordering::Relaxed), 3 + 3 * N);
                engine
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_controller);
criterion_main!(benches);
