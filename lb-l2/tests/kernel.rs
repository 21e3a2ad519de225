//! The responder against the Linux kernel: two "node" namespaces and a "client" namespace on
//! one bridge (in a fourth namespace), documentation prefixes only. The client's own kernel
//! resolves the service IPs (its neighbour table is the observable), `arping` and `ndisc6`
//! ask directly, and a raw socket injects frames the kernel would not send.
//!
//! Needs root; outside CI a non-root run skips loudly, under `CI=true` it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lb_core::{Announcement, Announcer, L2Attributes, ServiceKey};
use lb_l2::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, Frame, NdpRepr, NeighborFlags,
    arp_frame, ndp_frame,
};
use lb_l2::{RawSocket, Responder, ResponderConfig};
use lb_testlab::{Daemon, Netns, NsRuntime, example_path, lab_available, serial, wait_for};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};

const ARPING: &str = "/usr/sbin/arping";
const NDISC6: &str = "/usr/bin/ndisc6";

const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);
const OTHER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x21);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

fn available(test: &str) -> bool {
    lab_available(test, &[ARPING, NDISC6])
}

/// A host on the lab's bridge.
struct Host {
    ns: Netns,
    mac: EthernetAddress,
}

/// Node A, node B and a client, each with `eth0` on one bridge.
struct Lab {
    a: Host,
    b: Host,
    client: Host,
    // Dropped last: the bridge's namespace.
    _switch: Netns,
}

fn mac_of(ns: &Netns, ifname: &str) -> EthernetAddress {
    let out = ns.ip(&["-br", "link", "show", ifname]);
    let mac = out.split_whitespace().nth(2).unwrap();
    EthernetAddress::from_str(mac).unwrap()
}

impl Lab {
    fn new() -> Self {
        let switch = Netns::new("l2s");
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        switch.ip(&["link", "set", "br0", "up"]);
        let host = |prefix: &str, port: &str, v4: &str, v6: &str| {
            let ns = Netns::new(prefix);
            switch.ip(&[
                "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ]);
            switch.ip(&["link", "set", port, "master", "br0", "up"]);
            ns.ip(&["addr", "add", v4, "dev", "eth0"]);
            ns.ip(&["addr", "add", v6, "dev", "eth0", "nodad"]);
            // No link-local address: its duplicate address detection would send Neighbor
            // Solicitations at random moments, which the wake-up test must not see.
            ns.ip(&["link", "set", "eth0", "addrgenmode", "none"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            let mac = mac_of(&ns, "eth0");
            Host { ns, mac }
        };
        let a = host("l2a", "pa", "192.0.2.1/24", "2001:db8::1/64");
        let b = host("l2b", "pb", "192.0.2.2/24", "2001:db8::2/64");
        let client = host("l2c", "pc", "192.0.2.100/24", "2001:db8::100/64");
        Self {
            a,
            b,
            client,
            _switch: switch,
        }
    }

    /// The client's neighbour entry for `ip`: (MAC, state), if any.
    fn client_neighbour(&self, ip: IpAddr) -> Option<(EthernetAddress, String)> {
        let out = self
            .client
            .ns
            .ip(&["neigh", "show", &ip.to_string(), "dev", "eth0"]);
        let words: Vec<&str> = out.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "lladdr")?;
        let mac = EthernetAddress::from_str(words.get(at + 1)?).ok()?;
        Some((mac, words.last()?.to_string()))
    }

    /// Makes the client's kernel resolve `ip` by sending it one UDP datagram.
    fn client_sends_to(&self, rt: &NsRuntime, ip: IpAddr) {
        rt.blocking(move || {
            let bind = if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(bind).unwrap();
            // The discard port; nobody listens and nothing answers, only resolution matters.
            let _ = socket.send_to(b"lb-l2 test", (ip, 9));
        });
    }
}

fn announcement(ips: &[IpAddr]) -> Announcement {
    Announcement {
        service: ServiceKey::new("test", "vip"),
        ips: ips.to_vec(),
        l2: Some(L2Attributes::default()),
        bgp: None,
    }
}

fn start_responder(rt: &NsRuntime) -> Responder {
    rt.call(async {
        Responder::start(ResponderConfig {
            takeover: lb_l2::TakeoverSchedule {
                interval: Duration::from_millis(300),
                rounds: 3,
            },
            ..ResponderConfig::default()
        })
        .await
        .unwrap()
    })
}

fn apply(rt: &NsRuntime, responder: &Responder, desired: Option<Announcement>) {
    let r = responder.clone();
    rt.call(async move {
        r.apply(&ServiceKey::new("test", "vip"), desired.as_ref())
            .await
            .unwrap();
    });
}

fn shutdown(rt: &NsRuntime, responder: &Responder) {
    let r = responder.clone();
    rt.call(async move { r.shutdown().await });
}

/// `arping` once from `from`'s eth0; its output, lower case.
fn arping(from: &Netns, ip: Ipv4Addr) -> String {
    let out = from
        .command(ARPING)
        .args(["-c", "1", "-w", "1000000", "-i", "eth0", &ip.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

fn ndisc6(lab: &Lab, ip: Ipv6Addr) -> String {
    let out = lab
        .client
        .ns
        .command(NDISC6)
        .args(["-r", "2", "-w", "500", &ip.to_string(), "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

fn spawn_respond(ns: &Netns, args: &[&str], log: &std::path::Path) -> Daemon {
    let file = std::fs::File::create(log).unwrap();
    let child = ns
        .command(example_path("respond"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Daemon {
        name: "respond",
        child,
    }
}

fn log_has(log: &std::path::Path, needle: &str) -> Option<()> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
        .then_some(())
}

#[test]
fn example_answers_arping_and_ndisc6_and_withdraws_on_sigusr1() {
    if !available("example_answers_arping_and_ndisc6_and_withdraws_on_sigusr1") {
        return;
    }
    let _serial = serial();
    let lab = Lab::new();
    let log = std::env::temp_dir().join(format!("{}.log", lab.a.ns.name));
    let mut daemon = spawn_respond(
        &lab.a.ns,
        &[
            "--interface",
            "eth0",
            "--ip",
            "192.0.2.20",
            "--ip",
            "2001:db8::20",
        ],
        &log,
    );
    wait_for("respond to announce", Duration::from_secs(10), || {
        log_has(&log, "announced")
    });
    let a_mac = lab.a.mac.to_string();

    // arping and ndisc6 get the owner's MAC.
    let out = arping(&lab.client.ns, VIP4);
    assert!(out.contains(&a_mac), "arping {VIP4}: {out}");
    let out = ndisc6(&lab, VIP6);
    assert!(out.contains(&a_mac), "ndisc6 {VIP6}: {out}");

    // The client's own kernel resolves them to the owner's MAC.
    let client_rt = lab.client.ns.runtime();
    for ip in [IpAddr::V4(VIP4), IpAddr::V6(VIP6)] {
        lab.client_sends_to(&client_rt, ip);
        let (mac, state) = wait_for("client neighbour entry", Duration::from_secs(5), || {
            lab.client_neighbour(ip)
        });
        assert_eq!(mac, lab.a.mac, "{ip} resolved to {mac} ({state})");
    }

    // The node joined the VIP's solicited-node group: link-layer membership for the NIC's
    // filter and the IPv6 group (MLD) for snooping switches.
    let groups = lab.a.ns.ip(&["maddr", "show", "dev", "eth0"]);
    assert!(groups.contains("33:33:ff:00:00:20"), "{groups}");
    assert!(groups.contains("ff02::1:ff00:20"), "{groups}");

    // Nobody announces these.
    let out = arping(&lab.client.ns, OTHER4);
    assert!(
        !out.contains(&a_mac),
        "unannounced {OTHER4} answered: {out}"
    );
    let out = ndisc6(&lab, OTHER6);
    assert!(
        !out.contains(&a_mac),
        "unannounced {OTHER6} answered: {out}"
    );

    // SIGUSR1 withdraws: no more answers, and the process keeps running.
    daemon.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_for("withdrawal", Duration::from_secs(5), || {
        log_has(&log, "withdrew every IP")
    });
    let out = arping(&lab.client.ns, VIP4);
    assert!(!out.contains(&a_mac), "withdrawn {VIP4} answered: {out}");
    let out = ndisc6(&lab, VIP6);
    assert!(!out.contains(&a_mac), "withdrawn {VIP6} answered: {out}");
    assert!(daemon.running(), "respond exited after SIGUSR1");
    let groups = lab.a.ns.ip(&["maddr", "show", "dev", "eth0"]);
    assert!(
        !groups.contains("33:33:ff:00:00:20"),
        "left the group: {groups}"
    );
    assert!(
        !groups.contains("ff02::1:ff00:20"),
        "left the group: {groups}"
    );

    // SIGUSR2 announces again.
    daemon.signal(nix::sys::signal::Signal::SIGUSR2);
    wait_for("re-announcement", Duration::from_secs(5), || {
        log_has(&log, "announced again")
    });
    let out = arping(&lab.client.ns, VIP4);
    assert!(out.contains(&a_mac), "re-announced {VIP4}: {out}");

    // SIGTERM stops it cleanly.
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = wait_for("exit", Duration::from_secs(5), || {
        daemon.child.try_wait().unwrap()
    });
    assert!(status.success(), "respond exited with {status}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn example_rejects_bad_flags() {
    let cases: &[(&[&str], &str)] = &[
        (&["--ip", "not-an-ip"], "not an IPv4 or IPv6 address"),
        (&["--interface", "eth0"], "--ip"),
        (&["--ip", "224.0.0.1"], "cannot be announced"),
        (
            &["--ip", "192.0.2.20", "--takeover-interval", "0"],
            "at least 1 ms",
        ),
        (&["--ip", "192.0.2.20", "--bogus"], "--bogus"),
    ];
    for (args, message) in cases {
        let out = Command::new(example_path("respond"))
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn example_rejects_an_unknown_interface() {
    if !available("example_rejects_an_unknown_interface") {
        return;
    }
    let ns = Netns::new("l2u");
    let out = ns
        .command(example_path("respond"))
        .args(["--interface", "nosuch0", "--ip", "192.0.2.20"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no interface named \"nosuch0\""),
        "{stderr}"
    );
}

/// Waits in the client's namespace for neighbour notifications giving `ip` the address
/// `mac`; returns when each was seen.
async fn watch_neighbours(
    wanted: Vec<(IpAddr, EthernetAddress)>,
    ready: std::sync::mpsc::Sender<()>,
) -> Vec<(IpAddr, Instant)> {
    let (conn, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Neigh]).unwrap();
    tokio::spawn(conn);
    ready.send(()).unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.len() < wanted.len() {
        let Ok(Some((message, _))) = tokio::time::timeout_at(deadline, messages.next()).await
        else {
            break;
        };
        let now = Instant::now();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) = message.payload
        else {
            continue;
        };
        let mut dst = None;
        let mut lladdr = None;
        for attr in &n.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    dst = Some(IpAddr::V4(*v4));
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    dst = Some(IpAddr::V6(*v6));
                }
                NeighbourAttribute::LinkLayerAddress(bytes) => {
                    lladdr = <[u8; 6]>::try_from(bytes.as_slice())
                        .ok()
                        .map(EthernetAddress);
                }
                _ => {}
            }
        }
        if let (Some(dst), Some(mac)) = (dst, lladdr)
            && wanted.contains(&(dst, mac))
            && !seen.iter().any(|(ip, _)| *ip == dst)
        {
            seen.push((dst, now));
        }
    }
    seen
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn takeover_moves_the_client_cache_without_the_client_asking() {
    if !available("takeover_moves_the_client_cache_without_the_client_asking") {
        return;
    }
    let _serial = serial();
    let lab = Lab::new();
    let (a_rt, b_rt, client_rt) = (
        lab.a.ns.runtime(),
        lab.b.ns.runtime(),
        lab.client.ns.runtime(),
    );
    let a = start_responder(&a_rt);
    let b = start_responder(&b_rt);
    let vips = [IpAddr::V4(VIP4), IpAddr::V6(VIP6)];

    // A owns the VIPs and the client has A's MAC cached.
    apply(&a_rt, &a, Some(announcement(&vips)));
    for ip in vips {
        lab.client_sends_to(&client_rt, ip);
        let (mac, _) = wait_for("client entry for A", Duration::from_secs(5), || {
            lab.client_neighbour(ip)
                .filter(|(_, state)| state != "INCOMPLETE")
        });
        assert_eq!(mac, lab.a.mac);
    }

    // Fail over back and forth; every time the client's entry must move by itself.
    const RUNS: usize = 5;
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let hosts = [(&lab.a, &a, &a_rt), (&lab.b, &b, &b_rt)];
    for run in 0..RUNS {
        let (old, old_responder, old_rt) = hosts[run % 2];
        let (new, new_responder, new_rt) = hosts[(run + 1) % 2];
        for ip in vips {
            let (mac, state) = lab.client_neighbour(ip).expect("entry cached");
            assert_eq!(mac, old.mac, "run {run}: {ip} before takeover ({state})");
        }
        apply(old_rt, old_responder, None);

        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let wanted: Vec<(IpAddr, EthernetAddress)> = vips.iter().map(|ip| (*ip, new.mac)).collect();
        let watcher = {
            let handle = client_rt_handle(&client_rt);
            handle.spawn(watch_neighbours(wanted, ready_tx))
        };
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();

        let start = Instant::now();
        apply(new_rt, new_responder, Some(announcement(&vips)));
        let seen = client_rt.call(async move { watcher.await.unwrap() });
        for ip in vips {
            let at = seen
                .iter()
                .find(|(s, _)| *s == ip)
                .unwrap_or_else(|| {
                    panic!(
                        "run {run}: client's entry for {ip} never moved to {}",
                        new.mac
                    )
                })
                .1;
            let took = at.duration_since(start);
            times[usize::from(ip.is_ipv6())].push(took);
            let (mac, _) = lab.client_neighbour(ip).unwrap();
            assert_eq!(mac, new.mac, "run {run}: {ip} after takeover");
        }
        // The new owner was never asked: the gratuitous frames alone moved the entries.
        let counters = new_responder.counters();
        for ip in vips {
            assert_eq!(
                counters[&ip].requests_received, 0,
                "run {run}: {ip} was solicited"
            );
            assert!(counters[&ip].gratuitous_sent > 0, "run {run}: {ip}");
        }
    }
    for (family, t) in ["IPv4", "IPv6"].iter().zip(&times) {
        let max = *t.iter().max().unwrap();
        eprintln!(
            "takeover {family}: announce → client entry moved, {RUNS} runs: median {:?}, max {max:?}, all {t:?}",
            median(t.clone())
        );
        assert!(
            max < Duration::from_secs(1),
            "{family} takeover took {max:?}"
        );
    }
    shutdown(&a_rt, &a);
    shutdown(&b_rt, &b);
}

fn client_rt_handle(rt: &NsRuntime) -> tokio::runtime::Handle {
    rt.call(async { tokio::runtime::Handle::current() })
}

#[test]
fn interfaces_are_followed_live() {
    if !available("interfaces_are_followed_live") {
        return;
    }
    let _serial = serial();
    let lab = Lab::new();
    let a_rt = lab.a.ns.runtime();
    let a = start_responder(&a_rt);
    apply(&a_rt, &a, Some(announcement(&[IpAddr::V4(VIP4)])));
    let status = |name: &str| a.interfaces().into_iter().find(|s| s.name == name);
    assert!(status("eth0").unwrap().active);
    assert!(!status("lo").unwrap().active, "lo is excluded");

    // A second segment appears after start: node A's eth1 to a new client.
    let other = Netns::new("l2o");
    lab.a.ns.ip(&[
        "link",
        "add",
        "eth1",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &other.name,
    ]);
    other.ip(&["addr", "add", "192.0.2.200/24", "dev", "eth0"]);
    other.ip(&["link", "set", "eth0", "up"]);
    wait_for("eth1 known and down", Duration::from_secs(5), || {
        status("eth1").filter(|s| !s.active)
    });
    lab.a.ns.ip(&["link", "set", "eth1", "up"]);
    let eth1 = wait_for("eth1 answering", Duration::from_secs(5), || {
        status("eth1").filter(|s| s.active)
    });
    let eth1_mac = eth1.mac.unwrap();
    // It announced the VIP there on its own.
    wait_for("gratuitous on eth1", Duration::from_secs(5), || {
        status("eth1").filter(|s| s.gratuitous_sent > 0)
    });
    let out = arping(&other, VIP4);
    assert!(
        out.contains(&eth1_mac.to_string()),
        "arping on the new link: {out}"
    );

    // An announcement restricted to eth0 stops answering on eth1.
    let mut only_eth0 = announcement(&[IpAddr::V4(VIP4)]);
    only_eth0.l2 = Some(L2Attributes {
        interfaces: vec!["eth0".to_owned()],
    });
    apply(&a_rt, &a, Some(only_eth0));
    let out = arping(&other, VIP4);
    assert!(
        !out.contains(&eth1_mac.to_string()),
        "answered outside the restriction: {out}"
    );
    let eth1 = status("eth1").unwrap();
    assert_eq!(
        eth1.drops.get("wrong_interface"),
        Some(&1),
        "{:?}",
        eth1.drops
    );
    apply(&a_rt, &a, Some(announcement(&[IpAddr::V4(VIP4)])));

    // The far end goes down and up: eth1 stays up but loses carrier; when the carrier is
    // back it announces again.
    let before = status("eth1").unwrap().gratuitous_sent;
    other.ip(&["link", "set", "eth0", "down"]);
    wait_for("carrier lost", Duration::from_secs(5), || {
        (!lab.a.ns.ip(&["link", "show", "eth1"]).contains("LOWER_UP")).then_some(())
    });
    other.ip(&["link", "set", "eth0", "up"]);
    wait_for(
        "announced again after carrier",
        Duration::from_secs(5),
        || status("eth1").filter(|s| s.active && s.gratuitous_sent > before),
    );

    // Down: it stops answering; up again: it answers and announces again.
    lab.a.ns.ip(&["link", "set", "eth1", "down"]);
    let down = wait_for("eth1 inactive", Duration::from_secs(5), || {
        status("eth1").filter(|s| !s.active)
    });
    assert_eq!(down.reason.as_deref(), Some("link is down"));
    lab.a.ns.ip(&["link", "set", "eth1", "up"]);
    wait_for("eth1 answering again", Duration::from_secs(5), || {
        status("eth1").filter(|s| s.active && s.gratuitous_sent > 0)
    });

    // Removed: forgotten.
    lab.a.ns.ip(&["link", "del", "eth1"]);
    wait_for("eth1 gone", Duration::from_secs(5), || {
        status("eth1").is_none().then_some(())
    });
    assert!(status("eth0").unwrap().active);
    shutdown(&a_rt, &a);
}

/// Frames that are not ARP requests or Neighbor Solicitations, as a client could send them.
fn noise(client: EthernetAddress, node: EthernetAddress) -> Vec<Vec<u8>> {
    let ether = |dst, ethertype: u16, payload: &[u8]| {
        let mut frame = vec![0u8; 14 + payload.len()];
        EthernetRepr {
            src_addr: client,
            dst_addr: dst,
            ethertype: EtherType(ethertype),
        }
        .emit(&mut frame)
        .unwrap();
        frame[14..].copy_from_slice(payload);
        frame
    };
    let ipv6 = |next_header: u8, icmp_type: u8| {
        let mut p = vec![0u8; 64];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&24u16.to_be_bytes());
        p[6] = next_header;
        p[7] = 255;
        p[8..24].copy_from_slice(&CLIENT6.octets());
        p[24..40].copy_from_slice(&VIP6.octets());
        p[40] = icmp_type;
        p
    };
    let mut frames = vec![
        // IPv4 unicast and broadcast.
        ether(node, 0x0800, &[0x45; 46]),
        ether(EthernetAddress::BROADCAST, 0x0800, &[0x45; 46]),
        // IPv6 UDP, ICMPv6 echo request, router solicitation, to the node and to all-nodes.
        ether(node, 0x86dd, &ipv6(17, 135)),
        ether(node, 0x86dd, &ipv6(58, 128)),
        ether(
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            0x86dd,
            &ipv6(58, 133),
        ),
        // LLDP.
        ether(
            EthernetAddress([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
            0x88cc,
            &[0; 46],
        ),
    ];
    // An ARP request for the VIP tagged for VLAN 100: the kernel strips the tag before the
    // socket sees it, and it must not be answered on the untagged network.
    let request = arp_frame(
        client,
        EthernetAddress::BROADCAST,
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: client,
            source_protocol_addr: CLIENT4,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: VIP4,
        },
    );
    let mut tagged = request[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
    tagged.extend_from_slice(&request[12..]);
    frames.push(tagged);
    // An ARP reply and a gratuitous reply for the VIP.
    let reply = |target_hw, target_ip| ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: client,
        source_protocol_addr: CLIENT4,
        target_hardware_addr: target_hw,
        target_protocol_addr: target_ip,
    };
    frames.push(arp_frame(client, node, reply(node, VIP4)));
    frames.push(arp_frame(
        client,
        EthernetAddress::BROADCAST,
        reply(EthernetAddress::BROADCAST, CLIENT4),
    ));
    // Neighbor Advertisements, solicited and unsolicited.
    for (dst_mac, dst_ip, solicited) in [
        (node, VIP6, true),
        (
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            false,
        ),
    ] {
        frames.push(ndp_frame(
            (client, dst_mac),
            (CLIENT6, dst_ip),
            NdpRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: false,
                    solicited,
                    override_: true,
                },
                target_addr: CLIENT6,
                target_lladdr: Some(client),
            },
        ));
    }
    frames
}

#[test]
fn only_arp_requests_and_solicitations_wake_the_responder() {
    if !available("only_arp_requests_and_solicitations_wake_the_responder") {
        return;
    }
    let _serial = serial();
    let lab = Lab::new();
    let (a_rt, client_rt) = (lab.a.ns.runtime(), lab.client.ns.runtime());
    let a = start_responder(&a_rt);
    apply(
        &a_rt,
        &a,
        Some(announcement(&[IpAddr::V4(VIP4), IpAddr::V6(VIP6)])),
    );
    let frames_received = || {
        a.interfaces()
            .into_iter()
            .find(|s| s.name == "eth0")
            .unwrap()
            .frames_received
    };
    let client = lab.client.mac;
    let node = lab.a.mac;
    let sent = client_rt.blocking(move || {
        let raw = RawSocket::open("eth0").unwrap();
        let frames = noise(client, node);
        for _ in 0..20 {
            for f in &frames {
                raw.send(f).unwrap();
            }
        }
        frames.len() * 20
    });
    let before = frames_received();

    // A control request behind the noise: once it is counted, everything before it was
    // delivered too.
    client_rt.blocking(move || {
        let raw = RawSocket::open("eth0").unwrap();
        let request = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: client,
            source_protocol_addr: CLIENT4,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: VIP4,
        };
        raw.send(&arp_frame(client, EthernetAddress::BROADCAST, request))
            .unwrap();
    });
    wait_for("control request counted", Duration::from_secs(5), || {
        (a.counters()[&IpAddr::V4(VIP4)].requests_received >= 1).then_some(())
    });
    // Give any frame queued behind the control request time to be counted too.
    std::thread::sleep(Duration::from_millis(100));
    let after = frames_received();
    let status = a
        .interfaces()
        .into_iter()
        .find(|s| s.name == "eth0")
        .unwrap();
    // A kernel on the segment may send a real request of its own meanwhile (a neighbour
    // probe of node A's own address when an entry goes stale): it passes the filter, as it
    // must, and is dropped as not for a service IP. Noise would show up as any other drop.
    let kernel_requests: u64 = ["not_ours", "not_for_us"]
        .iter()
        .map(|r| status.drops.get(r).copied().unwrap_or(0))
        .sum();
    assert!(
        status
            .drops
            .keys()
            .all(|k| *k == "not_ours" || *k == "not_for_us"),
        "{sent} noise frames: drops {:?}",
        status.drops
    );
    assert!(kernel_requests <= 4, "drops: {:?}", status.drops);
    assert_eq!(
        after,
        before + 1 + kernel_requests,
        "{sent} noise frames: the responder woke for {} frames besides the control request \
         and {kernel_requests} kernel requests",
        after.saturating_sub(before + 1 + kernel_requests)
    );
    assert_eq!(status.replies_sent, 1);

    // And the reply carried A's MAC: the pure responder's frame went out on the wire.
    let reply = Frame::parse(&arp_frame(
        node,
        client,
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: node,
            source_protocol_addr: VIP4,
            target_hardware_addr: client,
            target_protocol_addr: CLIENT4,
        },
    ))
    .unwrap();
    assert_eq!(reply.ethernet().src_addr, node);

    // A change of the announced set keeps the counts of the IPs that stay, starts the new
    // one at zero and drops the withdrawn one.
    let requests = a.counters()[&IpAddr::V4(VIP4)].requests_received;
    let added = IpAddr::V4(OTHER4);
    apply(&a_rt, &a, Some(announcement(&[IpAddr::V4(VIP4), added])));
    let counters = a.counters();
    assert_eq!(
        counters.keys().copied().collect::<Vec<_>>(),
        [IpAddr::V4(VIP4), added]
    );
    assert_eq!(counters[&IpAddr::V4(VIP4)].requests_received, requests);
    assert!(requests >= 1);
    assert_eq!(counters[&added].requests_received, 0);
    shutdown(&a_rt, &a);
}
