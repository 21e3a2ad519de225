//! Allocation benchmarks: our allocator against a reference model of MetalLB's algorithm
//! (scan each CIDR from its first address; the lowest address `checkSharing` accepts wins).
//!
//! Run with `cargo bench -p lb-alloc --bench allocation`; results and the command are kept in
//! `docs/benchmarks.md`. No packet is sent: these are address computations only.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lb_alloc::{
    AddressRange, AllocationRequest, Allocator, IpAddressPool, NamespaceLabels, PoolSet,
};
use lb_core::{IpFamily, Protocol, ServiceKey, ServicePort};

const N: usize = 100_000;
/// The reference model is quadratic; it is measured on this many services, and ours too.
const N_REF: usize = 10_000;

fn pools(entry: &str) -> PoolSet {
    PoolSet::new(
        &[IpAddressPool::new("bench", [entry])],
        &NamespaceLabels::new(),
    )
    .unwrap()
}

/// `n` single-stack services; with `sharing`, every tenth pair is a TCP/53 + UDP/53 pair with
/// its own sharing key (10% of services carry a key).
fn requests(n: usize, family: IpFamily, sharing: bool) -> Vec<AllocationRequest> {
    (0..n)
        .map(|i| {
            let r = AllocationRequest::new(ServiceKey::new("bench", format!("svc-{i:06}")), family)
                .with_ports([ServicePort::new(Protocol::Tcp, 80)]);
            if sharing && i % 20 < 2 {
                let proto = if i % 2 == 0 {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                r.with_ports([ServicePort::new(proto, 53)])
                    .with_sharing_key(&format!("dns-{}", i / 20))
            } else {
                r
            }
        })
        .collect()
}

fn fill(pools: PoolSet, reqs: &[AllocationRequest]) -> Allocator {
    let mut a = Allocator::new(pools);
    for r in reqs {
        a.ensure(r).unwrap();
    }
    a
}

/// MetalLB's allocation, modelled: per IP a sharing key and the ports in use; a new service
/// scans the pool from its first address and takes the first IP `checkSharing` accepts.
struct Reference {
    first: u128,
    last: u128,
    ips: HashMap<u128, (Option<String>, BTreeSet<ServicePort>, usize)>,
    by_service: HashMap<ServiceKey, u128>,
}

impl Reference {
    fn new(entry: &str) -> Self {
        let r = AddressRange::parse(entry).unwrap();
        let num = |ip: IpAddr| match ip {
            IpAddr::V4(v) => u128::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v),
        };
        Self {
            first: num(r.first()),
            last: num(r.last()),
            ips: HashMap::new(),
            by_service: HashMap::new(),
        }
    }

    fn usable(&self, a: u128, r: &AllocationRequest) -> bool {
        match self.ips.get(&a) {
            None => true,
            Some((key, ports, _)) => {
                key.is_some()
                    && *key == r.sharing.sharing
                    && r.ports.iter().all(|p| !ports.contains(p))
            }
        }
    }

    fn allocate(&mut self, r: &AllocationRequest) -> Option<u128> {
        let a = (self.first..=self.last).find(|a| self.usable(*a, r))?;
        self.assign(r, a).then_some(a)
    }

    fn assign(&mut self, r: &AllocationRequest, a: u128) -> bool {
        if !self.usable(a, r) {
            return false;
        }
        let e = self
            .ips
            .entry(a)
            .or_insert((r.sharing.sharing.clone(), BTreeSet::new(), 0));
        e.1.extend(r.ports.iter().copied());
        e.2 += 1;
        self.by_service.insert(r.service.clone(), a);
        true
    }

    fn release(&mut self, r: &AllocationRequest) {
        if let Some(a) = self.by_service.remove(&r.service)
            && let Some(e) = self.ips.get_mut(&a)
        {
            e.2 -= 1;
            for p in &r.ports {
                e.1.remove(p);
            }
            if e.2 == 0 {
                self.ips.remove(&a);
            }
        }
    }
}

fn bench_allocate(c: &mut Criterion, name: &str, entry: &str, family: IpFamily, sharing: bool) {
    let mut g = c.benchmark_group(name);
    for (label, n) in [("ours_100k", N), ("ours_10k", N_REF)] {
        let reqs = requests(n, family, sharing);
        g.bench_function(label, |b| {
            b.iter_batched(
                || pools(entry),
                |p| black_box(fill(p, &reqs)),
                BatchSize::LargeInput,
            );
        });
    }
    let reqs = requests(N_REF, family, sharing);
    g.bench_function("metallb_model_10k", |b| {
        b.iter_batched(
            || Reference::new(entry),
            |mut m| {
                for r in &reqs {
                    m.allocate(r).unwrap();
                }
                black_box(m.by_service.len())
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn allocate_v4(c: &mut Criterion) {
    bench_allocate(c, "allocate_ipv4_slash8", "10.0.0.0/8", IpFamily::V4, false);
}

fn allocate_v6(c: &mut Criterion) {
    bench_allocate(
        c,
        "allocate_ipv6_slash64",
        "2001:db8::/64",
        IpFamily::V6,
        false,
    );
}

fn allocate_sharing(c: &mut Criterion) {
    bench_allocate(
        c,
        "allocate_10pct_sharing",
        "10.0.0.0/8",
        IpFamily::V4,
        true,
    );
}

/// Restore of 100k recorded assignments, in reverse order, into a fresh allocator.
fn restore(c: &mut Criterion) {
    let mut g = c.benchmark_group("restore");
    let reqs = requests(N, IpFamily::V4, true);
    let done = fill(pools("10.0.0.0/8"), &reqs);
    let mut recorded: Vec<(AllocationRequest, Vec<IpAddr>)> = done
        .snapshot()
        .entries
        .into_iter()
        .map(|e| (e.request, e.allocation.ips))
        .collect();
    recorded.reverse();
    g.bench_function("ours_100k", |b| {
        b.iter_batched(
            || (Allocator::new(pools("10.0.0.0/8")), recorded.clone()),
            |(mut a, input)| black_box(a.restore(input).kept.len()),
            BatchSize::LargeInput,
        );
    });
    let as_numbers: Vec<(AllocationRequest, u128)> = recorded
        .iter()
        .map(|(r, ips)| match ips[0] {
            IpAddr::V4(v) => (r.clone(), u128::from(u32::from(v))),
            IpAddr::V6(v) => (r.clone(), u128::from(v)),
        })
        .collect();
    g.bench_function("metallb_model_100k", |b| {
        b.iter_batched(
            || (Reference::new("10.0.0.0/8"), as_numbers.clone()),
            |(mut m, mut input)| {
                // MetalLB sorts by number of IPs (all equal here), then re-assigns each.
                input.sort_by_key(|(r, _)| std::cmp::Reverse(r.ports.len()));
                for (r, a) in &input {
                    assert!(m.assign(r, *a));
                }
                black_box(m.by_service.len())
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// Release one service and allocate a new one, `ops` times, on a pool already holding
/// `n` services. Victims are spread over the whole pool (a fixed stride).
fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("churn_release_allocate");
    for (label, n) in [("ours_100k", N), ("ours_10k", N_REF)] {
        let reqs = requests(n, IpFamily::V4, false);
        let filled = fill(pools("10.0.0.0/8"), &reqs);
        let fresh = requests(n, IpFamily::V4, false)
            .into_iter()
            .map(|mut r| {
                r.service.name = format!("{}-new", r.service.name).into();
                r
            })
            .collect::<Vec<_>>();
        g.bench_function(label, |b| {
            b.iter_batched(
                || filled.clone(),
                |mut a| {
                    for i in 0..n {
                        let victim = &reqs[(i * 7919) % n].service;
                        a.release(victim);
                        a.ensure(&fresh[i]).unwrap();
                    }
                    black_box(a.len())
                },
                BatchSize::LargeInput,
            );
        });
    }
    let reqs = requests(N_REF, IpFamily::V4, false);
    let fresh: Vec<AllocationRequest> = reqs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.service.name = format!("{}-new", r.service.name).into();
            r
        })
        .collect();
    g.bench_function("metallb_model_10k", |b| {
        b.iter_batched(
            || {
                let mut m = Reference::new("10.0.0.0/8");
                for r in &reqs {
                    m.allocate(r).unwrap();
                }
                m
            },
            |mut m| {
                for i in 0..N_REF {
                    m.release(&reqs[(i * 7919) % N_REF]);
                    m.allocate(&fresh[i]).unwrap();
                }
                black_box(m.by_service.len())
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = allocate_v4, allocate_v6, allocate_sharing, restore, churn
}
criterion_main!(benches);
