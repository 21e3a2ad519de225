//! One test per allocation rule of MetalLB (reference section b), plus the seed scenarios.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::IpAddr;

use lb_alloc::{
    AllocError, AllocationRequest, Allocator, ClearReason, Families, IpAddressPool, LabelSelector,
    NamespaceLabels, PoolSet, ServiceAllocation, SharingKey,
};
use lb_core::{IpFamily, Protocol, ServiceKey, ServicePort, TrafficPolicy};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pools(specs: &[IpAddressPool]) -> PoolSet {
    PoolSet::new(specs, &NamespaceLabels::new()).unwrap()
}

fn svc(name: &str) -> AllocationRequest {
    AllocationRequest::new(ServiceKey::new("default", name), IpFamily::V4)
}

fn in_ns(ns: &str, name: &str) -> AllocationRequest {
    AllocationRequest::new(ServiceKey::new(ns, name), IpFamily::V4)
}

fn tcp(port: u16) -> ServicePort {
    ServicePort::new(Protocol::Tcp, port)
}

fn udp(port: u16) -> ServicePort {
    ServicePort::new(Protocol::Udp, port)
}

fn dual(required: bool) -> Families {
    Families::Dual {
        primary: IpFamily::V4,
        required,
    }
}

fn pinned(name: &str, addr: &str, sa: ServiceAllocation) -> IpAddressPool {
    let mut p = IpAddressPool::new(name, [addr]);
    p.service_allocation = Some(sa);
    p
}

fn ips_of(a: &Allocator, name: &str) -> Vec<IpAddr> {
    a.allocation(&ServiceKey::new("default", name))
        .map(|x| x.ips.clone())
        .unwrap_or_default()
}

#[test]
fn network_address_is_allocated_first() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["192.0.2.0/24"])]));
    assert_eq!(
        a.ensure(&svc("a")).unwrap().allocation.ips,
        [ip("192.0.2.0")]
    );
    assert_eq!(
        a.ensure(&svc("b")).unwrap().allocation.ips,
        [ip("192.0.2.1")]
    );
}

#[test]
fn the_unspecified_address_is_never_allocated_nor_counted() {
    let v6 = AllocationRequest::new(ServiceKey::new("default", "v6"), IpFamily::V6);
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("all-v4", ["0.0.0.0/0"]),
        IpAddressPool::new("all-v6", ["::/0"]),
    ]));
    assert_eq!(a.ensure(&svc("a")).unwrap().allocation.ips, [ip("0.0.0.1")]);
    assert_eq!(a.ensure(&v6).unwrap().allocation.ips, [ip("::1")]);
    for unspecified in ["0.0.0.0", "::"] {
        let request = if unspecified == "::" {
            AllocationRequest::new(ServiceKey::new("default", "b"), IpFamily::V6)
        } else {
            svc("b")
        };
        let err = a
            .ensure(&request.with_requested_ips([ip(unspecified)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "service default/b: {unspecified} is the unspecified address and is never allocated"
            )
        );
    }
    // 2^32 addresses, less the unspecified one, less the one held.
    assert_eq!(a.stats()["all-v4"].available_v4(), (1u128 << 32) - 2);
    // An entry holding only the unspecified address has no address to give.
    let mut edge = Allocator::new(pools(&[IpAddressPool::new("edge", ["0.0.0.0-0.0.0.0"])]));
    assert_eq!(edge.stats()["edge"].available_v4(), 0);
    assert!(matches!(
        edge.ensure(&svc("c")).unwrap_err().error,
        AllocError::NoAvailableIps { .. }
    ));
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_refuses_requests_for_it() {
    let mut p = IpAddressPool::new("p", ["192.0.2.255-192.0.3.1"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(pools(&[p]));
    assert_eq!(
        a.ensure(&svc("a")).unwrap().allocation.ips,
        [ip("192.0.3.1")]
    );
    let err = a
        .ensure(&svc("b").with_requested_ips([ip("192.0.3.0")]))
        .unwrap_err();
    assert!(
        matches!(err.error, AllocError::BuggyIpAvoided { .. }),
        "{err}"
    );
    assert!(matches!(
        a.ensure(&svc("c")).unwrap_err().error,
        AllocError::NoAvailableIps { .. }
    ));
}

#[test]
fn seed_auto_assign_false_pool_is_reachable_only_through_the_pool_annotation() {
    let mut reserved = IpAddressPool::new("reserved", ["203.0.113.0/30"]);
    reserved.auto_assign = false;
    let mut a = Allocator::new(pools(&[reserved]));
    let err = a.ensure(&svc("auto")).unwrap_err();
    assert!(
        matches!(err.error, AllocError::NoAvailableIps { .. }),
        "{err}"
    );
    let got = a.ensure(&svc("named").with_pool("reserved")).unwrap();
    assert_eq!(got.allocation.pool, "reserved");
    assert_eq!(got.allocation.ips, [ip("203.0.113.0")]);
    // A requested IP in the pool works too.
    let got = a
        .ensure(&svc("exact").with_requested_ips([ip("203.0.113.3")]))
        .unwrap();
    assert_eq!(got.allocation.pool, "reserved");
    // The /30 holds exactly four services.
    a.ensure(&svc("n2").with_pool("reserved")).unwrap();
    a.ensure(&svc("n3").with_pool("reserved")).unwrap();
    let err = a.ensure(&svc("n4").with_pool("reserved")).unwrap_err();
    assert!(
        matches!(
            err.error,
            AllocError::PoolExhausted {
                family: IpFamily::V4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn seed_tcp_and_udp_dns_share_one_ip_through_the_same_key() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let dns_tcp = svc("dns-tcp").with_ports([tcp(53)]).with_sharing_key("dns");
    let dns_udp = svc("dns-udp").with_ports([udp(53)]).with_sharing_key("dns");
    let t = a.ensure(&dns_tcp).unwrap().allocation;
    let u = a.ensure(&dns_udp).unwrap().allocation;
    assert_eq!(t.ips, u.ips);
    assert_eq!(a.services_on(&t.ips[0]).len(), 2);
    // The shared IP counts once.
    assert_eq!(a.stats()["p"].in_use_v4, 1);
    // The same with an explicit IP on both.
    let x = svc("x-tcp")
        .with_ports([tcp(53)])
        .with_sharing_key("x")
        .with_requested_ips([ip("198.51.100.50")]);
    let y = svc("x-udp")
        .with_ports([udp(53)])
        .with_sharing_key("x")
        .with_requested_ips([ip("198.51.100.50")]);
    a.ensure(&x).unwrap();
    a.ensure(&y).unwrap();
    assert_eq!(a.services_on(&ip("198.51.100.50")).len(), 2);
}

#[test]
fn shared_ip_rejected_when_ports_collide() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let want = [ip("198.51.100.7")];
    a.ensure(
        &svc("a")
            .with_ports([tcp(80)])
            .with_sharing_key("k")
            .with_requested_ips(want),
    )
    .unwrap();
    let err = a
        .ensure(
            &svc("b")
                .with_ports([tcp(80), tcp(443)])
                .with_sharing_key("k")
                .with_requested_ips(want),
        )
        .unwrap_err();
    match err.error {
        AllocError::PortInUse { port, other, .. } => {
            assert_eq!(port, tcp(80));
            assert_eq!(other, ServiceKey::new("default", "a"));
        }
        e => panic!("unexpected {e}"),
    }
    // Automatic allocation with the same key and a colliding port takes another address.
    let c = a
        .ensure(&svc("c").with_ports([tcp(80)]).with_sharing_key("k"))
        .unwrap();
    assert_ne!(c.allocation.ips, want);
}

#[test]
fn sharing_needs_the_same_non_empty_key() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let want = [ip("198.51.100.9")];
    a.ensure(&svc("a").with_ports([tcp(80)]).with_requested_ips(want))
        .unwrap();
    let err = a.ensure(
        &svc("b")
            .with_ports([tcp(81)])
            .with_sharing_key("k")
            .with_requested_ips(want),
    );
    assert!(matches!(
        err.unwrap_err().error,
        AllocError::SharingNotAllowed { .. }
    ));
    a.release(&ServiceKey::new("default", "a"));
    a.ensure(
        &svc("a")
            .with_ports([tcp(80)])
            .with_sharing_key("k1")
            .with_requested_ips(want),
    )
    .unwrap();
    let err = a.ensure(
        &svc("b")
            .with_ports([tcp(81)])
            .with_sharing_key("k2")
            .with_requested_ips(want),
    );
    assert!(matches!(
        err.unwrap_err().error,
        AllocError::SharingNotAllowed { .. }
    ));
}

#[test]
fn sharing_needs_the_same_backend_key() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let sel_a: lb_alloc::Labels = [("app".to_string(), "a".to_string())].into();
    let sel_b: lb_alloc::Labels = [("app".to_string(), "b".to_string())].into();
    let want = [ip("198.51.100.10")];
    let local = |name: &str, port, sel| {
        svc(name)
            .with_ports([tcp(port)])
            .with_sharing(SharingKey::new(Some("k"), TrafficPolicy::Local, sel))
            .with_requested_ips(want)
    };
    a.ensure(&local("a", 80, &sel_a)).unwrap();
    // Local with another selector: refused.
    assert!(a.ensure(&local("b", 81, &sel_b)).is_err());
    // Local with the same selector: shared.
    a.ensure(&local("c", 82, &sel_a)).unwrap();
    // Cluster policy cannot join Local services.
    let cluster = svc("d")
        .with_ports([tcp(83)])
        .with_sharing_key("k")
        .with_requested_ips(want);
    assert!(a.ensure(&cluster).is_err());
}

#[test]
fn sole_owner_may_change_its_sharing_key_in_place() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let want = [ip("198.51.100.11")];
    a.ensure(&svc("a").with_sharing_key("old").with_requested_ips(want))
        .unwrap();
    a.ensure(&svc("a").with_sharing_key("new").with_requested_ips(want))
        .unwrap();
    a.ensure(
        &svc("b")
            .with_sharing_key("new")
            .with_ports([tcp(1)])
            .with_requested_ips(want),
    )
    .unwrap();
}

#[test]
fn requested_ip_outside_every_pool_is_refused() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["198.51.100.0/24"])]));
    let err = a
        .ensure(&svc("a").with_requested_ips([ip("203.0.113.1")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "service default/a: 203.0.113.1 is not in any address pool"
    );
}

#[test]
fn requested_ips_of_the_wrong_family_are_refused() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new(
        "p",
        ["198.51.100.0/24", "2001:db8::/64"],
    )]));
    let err = a
        .ensure(&svc("a").with_requested_ips([ip("2001:db8::1")]))
        .unwrap_err();
    assert!(
        matches!(err.error, AllocError::InvalidRequestedIps { .. }),
        "{err}"
    );
    let both = svc("b")
        .with_families(dual(true))
        .with_requested_ips([ip("198.51.100.1"), ip("2001:db8::1")]);
    assert_eq!(a.ensure(&both).unwrap().allocation.ips.len(), 2);
}

#[test]
fn requested_ips_in_another_pool_than_the_annotation_are_refused() {
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("a", ["198.51.100.0/24"]),
        IpAddressPool::new("b", ["203.0.113.0/24"]),
    ]));
    let err = a
        .ensure(
            &svc("x")
                .with_pool("b")
                .with_requested_ips([ip("198.51.100.1")]),
        )
        .unwrap_err();
    assert!(
        matches!(err.error, AllocError::PoolMismatch { .. }),
        "{err}"
    );
    assert!(a.is_empty());
}

#[test]
fn unknown_pool_is_an_error_naming_it() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("a", ["198.51.100.0/24"])]));
    let err = a.ensure(&svc("x").with_pool("nope")).unwrap_err();
    assert_eq!(err.to_string(), "service default/x: unknown pool \"nope\"");
}

#[test]
fn pinned_pools_are_tried_by_priority_with_zero_last() {
    let mut a = Allocator::new(pools(&[
        pinned(
            "p0",
            "192.0.2.0/24",
            ServiceAllocation {
                priority: 0,
                namespaces: vec!["team".into()],
                ..Default::default()
            },
        ),
        pinned(
            "p2",
            "198.51.100.0/24",
            ServiceAllocation {
                priority: 2,
                namespaces: vec!["team".into()],
                ..Default::default()
            },
        ),
        pinned(
            "p1",
            "203.0.113.0/31",
            ServiceAllocation {
                priority: 1,
                namespaces: vec!["team".into()],
                ..Default::default()
            },
        ),
        IpAddressPool::new("open", ["2001:db8::/64", "203.0.113.128/25"]),
    ]));
    let pool_of = |a: &mut Allocator, n: &str| a.ensure(&in_ns("team", n)).unwrap().allocation.pool;
    assert_eq!(pool_of(&mut a, "s1"), "p1");
    assert_eq!(pool_of(&mut a, "s2"), "p1");
    assert_eq!(pool_of(&mut a, "s3"), "p2");
    // Other namespaces never see the pinned pools.
    assert_eq!(
        a.ensure(&in_ns("other", "s")).unwrap().allocation.pool,
        "open"
    );
}

#[test]
fn pools_with_service_allocation_are_never_a_fallback() {
    let mut a = Allocator::new(pools(&[pinned(
        "team-only",
        "192.0.2.0/24",
        ServiceAllocation {
            namespaces: vec!["team".into()],
            ..Default::default()
        },
    )]));
    let err = a.ensure(&in_ns("other", "s")).unwrap_err();
    assert!(matches!(err.error, AllocError::NoAvailableIps { .. }));
    // Nor usable through the annotation from a namespace it does not admit.
    let err = a
        .ensure(&in_ns("other", "s").with_pool("team-only"))
        .unwrap_err();
    assert!(
        matches!(err.error, AllocError::PoolNotAllowed { .. }),
        "{err}"
    );
}

#[test]
fn service_selectors_admit_matching_services_only() {
    let mut a = Allocator::new(pools(&[
        pinned(
            "gold",
            "192.0.2.0/24",
            ServiceAllocation {
                service_selectors: vec![LabelSelector::from_labels([("tier", "gold")])],
                ..Default::default()
            },
        ),
        IpAddressPool::new("open", ["198.51.100.0/24"]),
    ]));
    let gold = svc("g").with_labels([("tier", "gold")]);
    assert_eq!(a.ensure(&gold).unwrap().allocation.pool, "gold");
    assert_eq!(a.ensure(&svc("plain")).unwrap().allocation.pool, "open");
    let err = a
        .ensure(&svc("x").with_requested_ips([ip("192.0.2.100")]))
        .unwrap_err();
    assert!(
        matches!(err.error, AllocError::PoolNotAllowed { .. }),
        "{err}"
    );
}

#[test]
fn equal_open_pools_are_chosen_by_name() {
    // Deliberate improvement: MetalLB picks in Go map order.
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("zeta", ["192.0.2.0/24"]),
        IpAddressPool::new("alpha", ["198.51.100.0/24"]),
    ]));
    assert_eq!(a.ensure(&svc("s")).unwrap().allocation.pool, "alpha");
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("v4-only", ["192.0.2.0/24"]),
        IpAddressPool::new("v6-only", ["2001:db8:1::/64"]),
        IpAddressPool::new("x-dual", ["198.51.100.0/24", "2001:db8:2::/64"]),
    ]));
    let got = a
        .ensure(&svc("d").with_families(dual(true)))
        .unwrap()
        .allocation;
    assert_eq!(got.pool, "x-dual");
    assert_eq!(got.ips, [ip("198.51.100.0"), ip("2001:db8:2::")]);
}

#[test]
fn require_dual_stack_without_a_dual_pool_fails() {
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("v4-only", ["192.0.2.0/24"]),
        IpAddressPool::new("v6-only", ["2001:db8:1::/64"]),
    ]));
    assert!(a.ensure(&svc("d").with_families(dual(true))).is_err());
    assert!(a.is_empty());
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family_then_adds_the_other_later() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["192.0.2.0/24"])]));
    let req = svc("d").with_families(Families::Dual {
        primary: IpFamily::V6,
        required: false,
    });
    // No IPv6 anywhere: the IPv4 family is taken.
    assert_eq!(a.ensure(&req).unwrap().allocation.ips, [ip("192.0.2.0")]);
    // The pool gains IPv6: the next sync adds it from the same pool.
    a.set_pools(pools(&[IpAddressPool::new(
        "p",
        ["192.0.2.0/24", "2001:db8::/64"],
    )]));
    let again = a.ensure(&req).unwrap();
    assert_eq!(again.additional_family, Some(Ok(ip("2001:db8::"))));
    assert_eq!(again.allocation.ips, [ip("192.0.2.0"), ip("2001:db8::")]);
    assert!(!again.newly_allocated);
}

#[test]
fn ipv6_primary_prefer_dual_takes_ipv6_when_only_single_family_pools_exist() {
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("a4", ["192.0.2.0/24"]),
        IpAddressPool::new("b6", ["2001:db8::/64"]),
    ]));
    let req = svc("d").with_families(Families::Dual {
        primary: IpFamily::V6,
        required: false,
    });
    assert_eq!(a.ensure(&req).unwrap().allocation.ips, [ip("2001:db8::")]);
}

#[test]
fn ipv6_slash_64_pool_allocates_without_enumeration() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("v6", ["2001:db8::/64"])]));
    for i in 0..1000 {
        let r = AllocationRequest::new(ServiceKey::new("ns", format!("s{i}")), IpFamily::V6);
        a.ensure(&r).unwrap();
    }
    let s = a.stats()["v6"];
    assert_eq!(s.total_v6, 1u128 << 64);
    assert_eq!(s.in_use_v6, 1000);
}

#[test]
fn release_returns_capacity() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["192.0.2.0/31"])]));
    a.ensure(&svc("a")).unwrap();
    a.ensure(&svc("b")).unwrap();
    assert!(a.ensure(&svc("c")).is_err());
    assert_eq!(
        a.release(&ServiceKey::new("default", "a")).unwrap().ips,
        [ip("192.0.2.0")]
    );
    assert_eq!(
        a.ensure(&svc("c")).unwrap().allocation.ips,
        [ip("192.0.2.0")]
    );
    assert_eq!(a.release(&ServiceKey::new("default", "zzz")), None);
}

#[test]
fn pool_annotation_change_moves_the_service() {
    let mut a = Allocator::new(pools(&[
        IpAddressPool::new("a", ["192.0.2.0/24"]),
        IpAddressPool::new("b", ["198.51.100.0/24"]),
    ]));
    a.ensure(&svc("s")).unwrap();
    let moved = a.ensure(&svc("s").with_pool("b")).unwrap();
    assert_eq!(moved.allocation.pool, "b");
    let cleared = moved.cleared.unwrap();
    assert_eq!(
        cleared.reason,
        ClearReason::PoolChanged {
            requested: "b".into()
        }
    );
    assert_eq!(a.stats()["a"].in_use_v4, 0);
}

#[test]
fn failed_change_keeps_the_previous_still_valid_allocation() {
    let mut full = IpAddressPool::new("full", ["198.51.100.0/32"]);
    full.auto_assign = false;
    let mut a = Allocator::new(pools(&[IpAddressPool::new("a", ["192.0.2.0/24"]), full]));
    a.ensure(&svc("blocker").with_pool("full")).unwrap();
    let before = a.ensure(&svc("s")).unwrap().allocation;
    let err = a.ensure(&svc("s").with_pool("full")).unwrap_err();
    assert_eq!(err.kept.as_ref(), Some(&before));
    assert_eq!(
        a.allocation(&ServiceKey::new("default", "s")),
        Some(&before)
    );
}

#[test]
fn pool_shrink_drops_and_rename_rehomes() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("a", ["192.0.2.0/24"])]));
    for n in ["s0", "s1", "s2"] {
        a.ensure(&svc(n)).unwrap();
    }
    let change = a.set_pools(pools(&[
        IpAddressPool::new("renamed", ["192.0.2.0/31"]),
        IpAddressPool::new("other", ["198.51.100.0/24"]),
    ]));
    assert_eq!(change.rehomed.len(), 2);
    assert_eq!(change.dropped.len(), 1);
    assert_eq!(change.dropped[0].0, ServiceKey::new("default", "s2"));
    assert_eq!(ips_of(&a, "s0"), [ip("192.0.2.0")]);
    // The dropped service gets a new IP on its next sync.
    let again = a.ensure(&svc("s2")).unwrap();
    assert!(again.newly_allocated);
    assert_eq!(again.allocation.pool, "other");
}

#[test]
fn turning_on_avoid_buggy_ips_clears_a_dot_zero_allocation() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new("p", ["192.0.2.0/24"])]));
    assert_eq!(
        a.ensure(&svc("s")).unwrap().allocation.ips,
        [ip("192.0.2.0")]
    );
    let mut p = IpAddressPool::new("p", ["192.0.2.0/24"]);
    p.avoid_buggy_ips = true;
    let change = a.set_pools(pools(&[p]));
    assert_eq!(change.dropped.len(), 1);
    assert_eq!(
        a.ensure(&svc("s")).unwrap().allocation.ips,
        [ip("192.0.2.1")]
    );
}

#[test]
fn losing_pool_admission_clears_and_reallocates() {
    let gold = pinned(
        "gold",
        "192.0.2.0/24",
        ServiceAllocation {
            service_selectors: vec![LabelSelector::from_labels([("tier", "gold")])],
            ..Default::default()
        },
    );
    let mut a = Allocator::new(pools(&[
        gold,
        IpAddressPool::new("open", ["198.51.100.0/24"]),
    ]));
    a.ensure(&svc("s").with_labels([("tier", "gold")])).unwrap();
    let got = a.ensure(&svc("s")).unwrap();
    assert_eq!(got.allocation.pool, "open");
    assert!(matches!(
        got.cleared.unwrap().reason,
        ClearReason::NoLongerAllowed(_)
    ));
}

#[test]
fn restore_gives_recorded_ips_back_before_pending_services_allocate() {
    let p = pools(&[IpAddressPool::new("p", ["192.0.2.0/30"])]);
    let mut a = Allocator::new(p);
    let report = a.restore([
        (svc("pending"), vec![]),
        (svc("b"), vec![ip("192.0.2.0")]),
        (svc("a"), vec![ip("192.0.2.1")]),
    ]);
    assert_eq!(report.kept.len(), 2);
    assert_eq!(ips_of(&a, "b"), [ip("192.0.2.0")]);
    assert_eq!(ips_of(&a, "pending"), [ip("192.0.2.2")]);
}

#[test]
fn restore_resolves_a_double_claim_deterministically() {
    let p = pools(&[IpAddressPool::new("p", ["192.0.2.0/30"])]);
    let mut a = Allocator::new(p);
    let report = a.restore([
        (svc("y"), vec![ip("192.0.2.1")]),
        (svc("x"), vec![ip("192.0.2.1")]),
    ]);
    assert_eq!(ips_of(&a, "x"), [ip("192.0.2.1")]);
    assert_eq!(report.cleared.len(), 1);
    assert_eq!(ips_of(&a, "y"), [ip("192.0.2.0")]);
}

#[test]
fn snapshot_round_trips_through_json_and_restore() {
    let mut a = Allocator::new(pools(&[IpAddressPool::new(
        "p",
        ["192.0.2.0/24", "2001:db8::/64"],
    )]));
    a.ensure(&svc("a").with_families(dual(true))).unwrap();
    a.ensure(&svc("b").with_ports([tcp(53)]).with_sharing_key("dns"))
        .unwrap();
    a.ensure(&svc("c").with_ports([udp(53)]).with_sharing_key("dns"))
        .unwrap();
    let snap = a.snapshot();
    let text = serde_json_like(&snap);
    assert!(text.contains("dns"));
    let (b, report) = Allocator::from_snapshot(a.pools().clone(), &snap);
    assert!(report.cleared.is_empty() && report.failed.is_empty());
    assert_eq!(b.snapshot(), snap);
}

/// A YAML round trip of the snapshot (serde-saphyr is the project's YAML crate).
fn serde_json_like(snap: &lb_alloc::Snapshot) -> String {
    let text = serde_saphyr::to_string(snap).unwrap();
    let back: lb_alloc::Snapshot = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(&back, snap);
    text
}

#[test]
fn stats_count_capacity_and_use_per_family() {
    let mut p = IpAddressPool::new("p", ["192.0.2.0/24", "2001:db8::/120"]);
    p.avoid_buggy_ips = true;
    let mut a = Allocator::new(pools(&[p]));
    a.ensure(&svc("a").with_families(dual(true))).unwrap();
    let s = a.stats()["p"];
    assert_eq!(
        (s.total_v4, s.total_v6, s.in_use_v4, s.in_use_v6),
        (254, 256, 1, 1)
    );
    assert_eq!(s.available_v4(), 253);
}
