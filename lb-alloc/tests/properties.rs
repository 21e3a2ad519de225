//! Property tests over random pools, services and operation sequences.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lb_alloc::{
    AllocationRequest, Allocator, Families, IpAddressPool, NamespaceLabels, PoolSet,
    ServiceAllocation, SharingKey, is_buggy_ip,
};
use lb_core::{IpFamily, Protocol, ServiceKey, ServicePort, TrafficPolicy};
use proptest::prelude::*;

/// Small, non-overlapping candidate entries: each pool takes a few of them, so pools are
/// small enough to run out and overlap is impossible by construction.
fn entry_text(slot: u8, v6: bool, size: u8) -> String {
    if v6 {
        format!("2001:db8:0:{slot:x}::-2001:db8:0:{slot:x}::{size:x}")
    } else {
        // 203.0.113.0/24 split in 16 slots of 16 addresses; the range crosses .255 -> next.
        let base = u32::from(Ipv4Addr::new(192, 0, 2, 0)) + u32::from(slot) * 16 + 4;
        let first = Ipv4Addr::from(base);
        let last = Ipv4Addr::from(base + u32::from(size % 16));
        format!("{first}-{last}")
    }
}

#[derive(Debug, Clone)]
struct PoolPlan {
    slots: Vec<(u8, bool, u8)>,
    auto_assign: bool,
    avoid_buggy: bool,
    pinned_ns: Option<(i32, String)>,
}

fn pool_plan() -> impl Strategy<Value = PoolPlan> {
    (
        proptest::collection::vec((0u8..12, any::<bool>(), 0u8..6), 1..3),
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::option::weighted(0.3, (0i32..3, prop::sample::select(vec!["a", "b"]))),
    )
        .prop_map(|(slots, auto_assign, avoid_buggy, pinned)| PoolPlan {
            slots,
            auto_assign,
            avoid_buggy,
            pinned_ns: pinned.map(|(p, n)| (p, n.to_string())),
        })
}

/// Builds pools from plans, giving every (slot, family) to the first pool that claims it.
fn build(plans: &[PoolPlan]) -> Vec<IpAddressPool> {
    let mut taken = BTreeSet::new();
    plans
        .iter()
        .enumerate()
        .filter_map(|(i, plan)| {
            let entries: Vec<String> = plan
                .slots
                .iter()
                .filter(|(slot, v6, _)| taken.insert((*slot, *v6)))
                .map(|(slot, v6, size)| entry_text(*slot, *v6, *size))
                .collect();
            if entries.is_empty() {
                return None;
            }
            let mut p =
                IpAddressPool::new(&format!("pool-{i}"), entries.iter().map(String::as_str));
            p.auto_assign = plan.auto_assign;
            p.avoid_buggy_ips = plan.avoid_buggy;
            p.service_allocation = plan.pinned_ns.as_ref().map(|(prio, ns)| ServiceAllocation {
                priority: *prio,
                namespaces: vec![ns.clone()],
                ..Default::default()
            });
            Some(p)
        })
        .collect()
}

fn request() -> impl Strategy<Value = AllocationRequest> {
    (
        0u8..12,
        prop::sample::select(vec!["a", "b", "c"]),
        0u8..4,
        proptest::collection::btree_set((any::<bool>(), 50u16..54), 0..3),
        prop::option::weighted(0.5, prop::sample::select(vec!["k1", "k2"])),
        any::<bool>(),
        prop::option::weighted(0.15, 0usize..4),
    )
        .prop_map(|(n, ns, fam, ports, key, local, pool)| {
            let families = match fam {
                0 => Families::Single(IpFamily::V4),
                1 => Families::Single(IpFamily::V6),
                2 => Families::Dual {
                    primary: IpFamily::V4,
                    required: false,
                },
                _ => Families::Dual {
                    primary: IpFamily::V6,
                    required: true,
                },
            };
            let policy = if local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            };
            let selector = [("app".to_string(), format!("s{}", n % 2))].into();
            let mut r =
                AllocationRequest::new(ServiceKey::new(ns, format!("svc-{n}")), IpFamily::V4)
                    .with_families(families)
                    .with_ports(ports.into_iter().map(|(udp, p)| {
                        ServicePort::new(if udp { Protocol::Udp } else { Protocol::Tcp }, p)
                    }))
                    .with_sharing(SharingKey::new(key, policy, &selector));
            if let Some(p) = pool {
                r = r.with_pool(&format!("pool-{p}"));
            }
            r
        })
}

#[derive(Debug, Clone)]
enum Op {
    Ensure(AllocationRequest),
    Release(u8),
    Request(AllocationRequest, u8),
    ReplacePools(Vec<PoolPlan>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => request().prop_map(Op::Ensure),
        2 => (0u8..12).prop_map(Op::Release),
        1 => (request(), 0u8..80).prop_map(|(r, i)| Op::Request(r, i)),
        1 => proptest::collection::vec(pool_plan(), 1..4).prop_map(Op::ReplacePools),
    ]
}

/// An address of the candidate space, for requested IPs.
fn candidate_ip(i: u8, family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(192, 0, 2, 0)) + u32::from(i) * 3,
        )),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            u16::from(i % 12),
            0,
            0,
            0,
            u16::from(i % 6),
        )),
    }
}

fn pool_set(plans: &[PoolPlan]) -> PoolSet {
    PoolSet::new(&build(plans), &NamespaceLabels::new()).expect("generated pools are valid")
}

/// Checks every invariant of the allocation state.
fn check_invariants(a: &Allocator) -> Result<(), TestCaseError> {
    let snap = a.snapshot();
    let mut by_ip: BTreeMap<IpAddr, Vec<&AllocationRequest>> = BTreeMap::new();
    for e in &snap.entries {
        let pool = a.pools().get(&e.allocation.pool);
        prop_assert!(pool.is_some(), "allocation names a missing pool: {:?}", e);
        let pool = pool.unwrap();
        prop_assert!(!e.allocation.ips.is_empty() && e.allocation.ips.len() <= 2);
        let fams: BTreeSet<IpFamily> = e.allocation.ips.iter().map(IpFamily::of).collect();
        prop_assert_eq!(fams.len(), e.allocation.ips.len(), "two IPs of one family");
        match e.request.families {
            Families::Single(f) => prop_assert!(fams == BTreeSet::from([f])),
            Families::Dual { required: true, .. } => prop_assert_eq!(fams.len(), 2),
            Families::Dual {
                required: false, ..
            } => {}
        }
        for ip in &e.allocation.ips {
            prop_assert!(pool.contains(ip), "{ip} outside pool {}", pool.name());
            if pool.avoid_buggy_ips() {
                prop_assert!(!is_buggy_ip(ip));
            }
            by_ip.entry(*ip).or_default().push(&e.request);
        }
    }
    for (ip, holders) in &by_ip {
        if holders.len() < 2 {
            continue;
        }
        let first = &holders[0].sharing;
        prop_assert!(first.sharing.is_some(), "{ip} shared without a key");
        let mut ports = BTreeSet::new();
        for h in holders {
            prop_assert_eq!(&h.sharing, first, "{} shared with different keys", ip);
            for p in &h.ports {
                prop_assert!(ports.insert(*p), "{ip}: port {p} used twice");
            }
        }
    }
    // In-use counts are distinct IPs per pool.
    for (name, stats) in a.stats() {
        let used = by_ip
            .keys()
            .filter(|ip| a.pools().get(&name).is_some_and(|p| p.contains(ip)))
            .count();
        prop_assert_eq!(stats.in_use() as usize, used, "pool {}", name);
    }
    Ok(())
}

/// Re-runs `ensure` for every held service until nothing changes, as the controller does
/// after a configuration change; false when no fixpoint is reached in a few passes.
fn converge(a: &mut Allocator) -> bool {
    for _ in 0..6 {
        let before = a.snapshot();
        for e in &before.entries {
            let _ = a.ensure(&e.request);
        }
        if a.snapshot() == before {
            return true;
        }
    }
    false
}

fn run(a: &mut Allocator, ops: &[Op]) -> Result<(), TestCaseError> {
    for op in ops {
        match op {
            Op::Ensure(r) => {
                let before = a.allocation(&r.service).cloned();
                match a.ensure(r) {
                    Ok(_) => {}
                    Err(e) => {
                        // A failure never takes a still-valid allocation away silently.
                        if e.kept.is_some() {
                            prop_assert_eq!(a.allocation(&r.service), before.as_ref());
                        }
                    }
                }
            }
            Op::Release(n) => {
                for ns in ["a", "b", "c"] {
                    a.release(&ServiceKey::new(ns, format!("svc-{n}")));
                }
            }
            Op::Request(r, i) => {
                let ips: Vec<IpAddr> = match r.families {
                    Families::Single(f) => vec![candidate_ip(*i, f)],
                    Families::Dual { .. } => {
                        vec![
                            candidate_ip(*i, IpFamily::V4),
                            candidate_ip(*i, IpFamily::V6),
                        ]
                    }
                };
                let _ = a.ensure(&r.clone().with_requested_ips(ips));
            }
            Op::ReplacePools(plans) => {
                let before: BTreeMap<ServiceKey, Vec<IpAddr>> = a
                    .allocations()
                    .map(|(k, v)| (k.clone(), v.ips.clone()))
                    .collect();
                let new = pool_set(plans);
                let change = a.set_pools(new);
                for (k, ips) in &before {
                    match a.allocation(k) {
                        // Kept allocations never change IPs.
                        Some(now) => prop_assert_eq!(&now.ips, ips),
                        None => prop_assert!(change.dropped.iter().any(|(d, _)| d == k)),
                    }
                    // Kept when every IP still lies in one pool the service may use.
                    let still = ips.iter().all(|ip| a.pools().pool_for(ip).is_some());
                    if !still {
                        prop_assert!(a.allocation(k).is_none());
                    }
                }
            }
        }
        check_invariants(a)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_every_invariant(
        plans in proptest::collection::vec(pool_plan(), 1..4),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut a = Allocator::new(pool_set(&plans));
        run(&mut a, &ops)?;
    }

    #[test]
    fn same_inputs_give_the_same_outputs(
        plans in proptest::collection::vec(pool_plan(), 1..4),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut a = Allocator::new(pool_set(&plans));
        let mut b = Allocator::new(pool_set(&plans));
        run(&mut a, &ops)?;
        run(&mut b, &ops)?;
        prop_assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn restore_in_any_order_reproduces_the_assignments(
        plans in proptest::collection::vec(pool_plan(), 1..4),
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<usize>(),
    ) {
        let mut a = Allocator::new(pool_set(&plans));
        run(&mut a, &ops)?;
        prop_assume!(converge(&mut a));
        let snap = a.snapshot();
        let mut entries = snap.entries.clone();
        // A deterministic shuffle from the seed.
        let len = entries.len().max(1);
        for i in 0..entries.len() {
            let j = seed.wrapping_mul(i + 7) % len;
            entries.swap(i, j);
        }
        let mut b = Allocator::new(a.pools().clone());
        let report = b.restore(entries.into_iter().map(|e| (e.request, e.allocation.ips)));
        prop_assert!(report.cleared.is_empty(), "{:?}", report.cleared);
        prop_assert!(report.allocated.is_empty(), "{:?}", report.allocated);
        prop_assert_eq!(b.snapshot(), snap);
    }

    #[test]
    fn release_returns_all_capacity(
        plans in proptest::collection::vec(pool_plan(), 1..4),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut a = Allocator::new(pool_set(&plans));
        run(&mut a, &ops)?;
        let empty = Allocator::new(a.pools().clone()).stats();
        let keys: Vec<ServiceKey> = a.allocations().map(|(k, _)| k.clone()).collect();
        for k in keys {
            prop_assert!(a.release(&k).is_some());
        }
        prop_assert!(a.is_empty());
        prop_assert_eq!(a.stats(), empty);
    }

    #[test]
    fn single_pool_choice_matches_metallbs_scan(
        plan in pool_plan(),
        ops in proptest::collection::vec((0u8..40, any::<bool>(), any::<bool>()), 1..80),
    ) {
        // Without sharing, MetalLB takes the lowest unused address of the first entry (in
        // configured order) of the family that has one. Model it by enumeration.
        let mut plan = plan;
        plan.auto_assign = true;
        plan.pinned_ns = None;
        let spec = build(&[plan]);
        let set = PoolSet::new(&spec, &NamespaceLabels::new()).unwrap();
        let pool = set.pools()[0].clone();
        let mut a = Allocator::new(set);
        let mut used: BTreeSet<IpAddr> = BTreeSet::new();
        let mut held: BTreeMap<u8, IpAddr> = BTreeMap::new();
        for (n, v6, release) in ops {
            let key = ServiceKey::new("ns", format!("s{n}"));
            if release {
                if let Some(ip) = held.remove(&n) { used.remove(&ip); }
                a.release(&key);
                continue;
            }
            if held.contains_key(&n) { continue; }
            let family = if v6 { IpFamily::V6 } else { IpFamily::V4 };
            let expected = pool.ranges().filter(|r| r.family() == family).find_map(|r| {
                r.cidrs().iter().flat_map(|c| c.hosts_inclusive()).find(|ip| {
                    !(used.contains(ip) || (pool.avoid_buggy_ips() && is_buggy_ip(ip)))
                })
            });
            let got = a.ensure(&AllocationRequest::new(key, family)).ok().map(|e| e.allocation.ips[0]);
            prop_assert_eq!(got, expected);
            if let Some(ip) = got { used.insert(ip); held.insert(n, ip); }
        }
    }
}

/// Every address of a CIDR, network and broadcast included (test-side enumeration only).
trait HostsInclusive {
    fn hosts_inclusive(&self) -> Box<dyn Iterator<Item = IpAddr>>;
}

impl HostsInclusive for ipnet::IpNet {
    fn hosts_inclusive(&self) -> Box<dyn Iterator<Item = IpAddr>> {
        match self {
            ipnet::IpNet::V4(n) => {
                let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
                Box::new((a..=b).map(|x| IpAddr::V4(x.into())))
            }
            ipnet::IpNet::V6(n) => {
                let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
                Box::new((a..=b).map(|x| IpAddr::V6(x.into())))
            }
        }
    }
}
