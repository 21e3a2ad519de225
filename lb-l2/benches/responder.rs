//! The per-frame cost of answering, and of rebuilding the announced set.
//!
//! `cargo bench -p lb-l2 --bench responder`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use lb_core::{Announcement, L2Attributes, ServiceKey};
use lb_l2::responder::Interface;
use lb_l2::wire::{
    ArpOperation, ArpRepr, EthernetAddress, Frame, NdpRepr, arp_frame, ndp_frame, solicited_node,
};
use lb_l2::{AnnouncedIps, respond};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x64]);

/// `n` services, one IPv6 address each (2001:db8::/32 has room), plus one IPv4 VIP.
fn announcements(n: u16) -> Vec<Announcement> {
    let mut all: Vec<Announcement> = (0..n)
        .map(|i| Announcement {
            service: ServiceKey::new("bench", format!("svc-{i}").as_str()),
            ips: vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i))],
            l2: Some(L2Attributes::default()),
            bgp: None,
        })
        .collect();
    all.push(Announcement {
        service: ServiceKey::new("bench", "v4"),
        ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20))],
        l2: Some(L2Attributes::default()),
        bgp: None,
    });
    all
}

fn bench(c: &mut Criterion) {
    let mut announced = AnnouncedIps::new();
    announced.resync(&announcements(10_000));
    let interface = Interface {
        name: "eth0",
        mac: OUR_MAC,
    };
    let arp = arp_frame(
        CLIENT_MAC,
        EthernetAddress::BROADCAST,
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: CLIENT_MAC,
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 100),
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 20),
        },
    );
    let target = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 5_000);
    let ns = ndp_frame(
        (
            CLIENT_MAC,
            EthernetAddress::ipv6_multicast(solicited_node(target)),
        ),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100),
            solicited_node(target),
        ),
        NdpRepr::NeighborSolicit {
            target_addr: target,
            source_lladdr: Some(CLIENT_MAC),
        },
    );
    assert!(respond(&arp, interface, &announced).is_ok());
    assert!(respond(&ns, interface, &announced).is_ok());

    let mut g = c.benchmark_group("responder");
    g.bench_function("parse ARP request", |b| {
        b.iter(|| Frame::parse(black_box(&arp)));
    });
    g.bench_function("parse NS (checksum verified)", |b| {
        b.iter(|| Frame::parse(black_box(&ns)));
    });
    g.bench_function("answer ARP request, 10k IPs announced", |b| {
        b.iter(|| respond(black_box(&arp), interface, &announced));
    });
    g.bench_function("answer NS, 10k IPs announced", |b| {
        b.iter(|| respond(black_box(&ns), interface, &announced));
    });
    let all = announcements(10_000);
    g.bench_function("resync 10k services", |b| {
        b.iter(|| {
            let mut set = AnnouncedIps::new();
            set.resync(black_box(&all));
            set
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
