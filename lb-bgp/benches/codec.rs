//! Codec and Adj-RIB-Out benchmarks: encoding and decoding the UPDATE stream of 10,000
//! prefixes, and single messages.
//!
//! Run with `cargo bench -p lb-bgp --bench codec`; results and the command are kept in
//! `docs/benchmarks.md`. No packet is sent: these are byte computations only (the prefixes
//! are IPv6 documentation /128s and the benchmarking range 198.18.0.0/15 as data).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::IpNet;
use lb_bgp::rib::{AdjRibOut, RouteAttributes, RouteSet, SessionParams};
use lb_bgp::wire::{Codec, Family, Message, frame_len};
use lb_core::{Community, LargeCommunity};

const N: u32 = 10_000;

fn params() -> SessionParams {
    SessionParams {
        local_asn: 64512,
        peer_asn: 64500,
        codec: Codec::FOUR_OCTET,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some((Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11), None)),
    }
}

fn attrs() -> RouteAttributes {
    RouteAttributes {
        communities: vec![Community::new(64512, 100)],
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local1: 1,
            local2: 2,
        }],
        ..RouteAttributes::default()
    }
}

fn routes(v6: bool) -> RouteSet {
    (0..N)
        .map(|i| {
            let prefix = if v6 {
                let a =
                    Ipv6Addr::from(0x2001_0db8_00ff_0000_0000_0000_0000_0000u128 + u128::from(i));
                IpNet::new(IpAddr::V6(a), 128).unwrap()
            } else {
                let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
                IpNet::new(IpAddr::V4(a), 32).unwrap()
            };
            (prefix, attrs())
        })
        .collect()
}

fn encode_stream(updates: Vec<lb_bgp::wire::Update>) -> Vec<u8> {
    let mut out = Vec::new();
    for u in updates {
        Message::Update(u)
            .encode(Codec::FOUR_OCTET, &mut out)
            .unwrap();
    }
    out
}

fn decode_stream(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(Some(len)) = frame_len(bytes) {
        let (frame, rest) = bytes.split_at(len);
        let m = Message::decode(frame, Codec::FOUR_OCTET).unwrap();
        if let Message::Update(u) = m {
            n += u.announced().len();
        }
        bytes = rest;
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("full_table_10k");
    g.throughput(Throughput::Elements(u64::from(N)));
    for (name, v6) in [("ipv4_slash32", false), ("ipv6_slash128", true)] {
        let set = routes(v6);
        g.bench_function(format!("rib_and_encode_{name}"), |b| {
            b.iter(|| {
                let mut rib = AdjRibOut::new(params());
                black_box(encode_stream(rib.full_table(&set)))
            });
        });
        let bytes = encode_stream(AdjRibOut::new(params()).full_table(&set));
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| assert_eq!(decode_stream(black_box(&bytes)), N as usize));
        });
        g.bench_function(format!("sync_one_new_prefix_{name}"), |b| {
            let mut bigger = set.clone();
            bigger.insert("203.0.113.10/32".parse().unwrap(), attrs());
            b.iter_batched(
                || {
                    let mut rib = AdjRibOut::new(params());
                    rib.full_table(&set);
                    rib
                },
                |mut rib| {
                    let bytes = encode_stream(rib.sync(&bigger));
                    // Returned so that dropping the table is not timed.
                    (rib, black_box(bytes))
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();

    let keepalive = Message::Keepalive.to_bytes(Codec::FOUR_OCTET).unwrap();
    c.bench_function("decode_keepalive", |b| {
        b.iter(|| Message::decode(black_box(&keepalive), Codec::FOUR_OCTET).unwrap());
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
