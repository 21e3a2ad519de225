//! The speaker against real BGP daemons (FRR's bgpd and GoBGP) in network namespaces the
//! test creates: attributes in the peer's RIB, withdrawal, peer restart, hold timer expiry,
//! TCP MD5, graceful restart across a SIGKILL, malformed messages, and convergence times.
//! Needs root; skipped loudly outside CI without it, a failure under `CI=true`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![allow(clippy::print_stdout)]

mod support;

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lb_bgp::fsm::{Backoff, State};
use lb_bgp::rib::RouteAttributes;
use lb_bgp::wire::{Capability, Codec, Family, Message, Notification, Open, frame_len};
use lb_bgp::{PeerConfig, Route, Speaker, SpeakerConfig};
use lb_core::{
    Announcement, Announcer, BgpAdvertisement, BgpAttributes, Community, LargeCommunity, ServiceKey,
};
use serde_json::Value;
use support::*;

const LOCAL_ASN: u32 = 64512;
const ROUTER_ASN: u32 = 64500;

fn frr_conf(asn: u32, global: &str, neighbors: &[(&str, u32, &str)]) -> String {
    let mut s = format!(
        "frr defaults traditional\nhostname router\nlog stdout debugging\nrouter bgp {asn}\n bgp router-id {ROUTER_V4}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check\n{global}"
    );
    for (addr, remote, extra) in neighbors {
        s += &format!(" neighbor {addr} remote-as {remote}\n");
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            s += &format!(" neighbor {addr} {}\n", line.trim());
        }
    }
    for (af, v6) in [("ipv4", false), ("ipv6", true)] {
        s += &format!(" address-family {af} unicast\n");
        for (addr, _, _) in neighbors {
            if addr.contains(':') == v6 {
                s += &format!("  neighbor {addr} activate\n");
            }
        }
        s += " exit-address-family\n";
    }
    s
}

fn peer(addr: &str, peer_asn: u32) -> PeerConfig {
    let address: IpAddr = addr.parse().unwrap();
    let mut p = PeerConfig::new(addr, address, LOCAL_ASN, peer_asn);
    p.router_id = Some(SPEAKER_V4.parse().unwrap());
    p.hold_time = 9;
    p.connect_timeout = Duration::from_secs(2);
    p.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
        jitter: 0.25,
    };
    p
}

fn route(prefix: &str, attributes: &RouteAttributes) -> Route {
    Route {
        prefix: IpNet::from_str(prefix).unwrap(),
        attributes: attributes.clone(),
        peers: vec![],
    }
}

fn attrs() -> RouteAttributes {
    RouteAttributes {
        local_pref: Some(250),
        communities: vec![Community::new(64512, 100), Community::new(64512, 200)],
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local1: 1,
            local2: 2,
        }],
        ..RouteAttributes::default()
    }
}

fn start_speaker(rt: &NsRuntime, listen: bool) -> Speaker {
    let config = SpeakerConfig {
        router_id: None,
        listen_port: listen.then_some(179),
    };
    rt.call(async move { Speaker::start(config).unwrap() })
}

fn set_peers(rt: &NsRuntime, speaker: &Speaker, peers: Vec<PeerConfig>) {
    let s = speaker.clone();
    rt.call(async move { s.set_peers(peers).unwrap() });
}

fn wait_established(speaker: &Speaker, name: &str, timeout: Duration) {
    wait_for(&format!("session to {name} Established"), timeout, || {
        speaker
            .peers()
            .iter()
            .any(|p| p.name == name && p.state == State::Established)
            .then_some(())
    });
}

/// FRR's path for `prefix`, if it has one.
fn frr_path(lab: &Lab, prefix: &str) -> Option<Value> {
    let af = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = lab.vtysh_json(&format!("show bgp {af} unicast {prefix} json"));
    v["paths"].as_array().and_then(|p| p.first().cloned())
}

fn frr_pfx_rcd(lab: &Lab, af: &str, neighbor: &str) -> u64 {
    let v = lab.vtysh_json(&format!("show bgp {af} unicast summary json"));
    v["peers"][neighbor]["pfxRcd"].as_u64().unwrap_or(0)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A lab with bgpd as `router_asn` peering with our speaker over IPv4 and IPv6, and a
/// speaker with those two peers (listening on 179 too when `listen`).
fn frr_dual_session(router_asn: u32, listen: bool) -> (Lab, Daemon, NsRuntime, Speaker) {
    let lab = Lab::new();
    let frr = lab.start_frr(&frr_conf(
        router_asn,
        "",
        &[(SPEAKER_V4, LOCAL_ASN, ""), (SPEAKER_V6, LOCAL_ASN, "")],
    ));
    let rt = lab.runtime_in(&lab.speaker);
    let speaker = start_speaker(&rt, listen);
    set_peers(
        &rt,
        &speaker,
        vec![peer(ROUTER_V4, router_asn), peer(ROUTER_V6, router_asn)],
    );
    (lab, frr, rt, speaker)
}

#[test]
fn frr_ebgp_ipv4_and_ipv6_attributes_withdrawal_and_latency() {
    if !lab_available("frr_ebgp", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Listening too: bgpd also dials us, so the collision resolution runs for real.
    let (lab, _frr, rt, speaker) = frr_dual_session(ROUTER_ASN, true);
    let a = attrs();
    speaker.set_routes(vec![
        route("203.0.113.10/32", &a),
        route("2001:db8:ff::10/128", &a),
    ]);

    let v4 = wait_for("IPv4 prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.10/32")
    });
    assert_eq!(v4["nexthops"][0]["ip"], SPEAKER_V4, "{v4}");
    assert_eq!(v4["aspath"]["string"], "64512", "{v4}");
    assert_eq!(v4["origin"], "IGP");
    assert_eq!(
        strings(&v4["community"]["list"]),
        ["64512:100", "64512:200"],
        "{v4}"
    );
    assert_eq!(
        strings(&v4["largeCommunity"]["list"]),
        ["64512:1:2"],
        "{v4}"
    );
    assert!(
        v4.get("locPrf").is_none(),
        "LOCAL_PREF must not be sent on eBGP: {v4}"
    );

    let v6 = wait_for("IPv6 prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "2001:db8:ff::10/128")
    });
    assert_eq!(v6["nexthops"][0]["ip"], SPEAKER_V6, "{v6}");
    assert_eq!(v6["nexthops"][0]["scope"], "global", "{v6}");
    assert_eq!(v6["aspath"]["string"], "64512");
    assert_eq!(
        strings(&v6["community"]["list"]),
        ["64512:100", "64512:200"]
    );
    assert_eq!(strings(&v6["largeCommunity"]["list"]), ["64512:1:2"]);

    // Exactly one session per peer survived the collision, both Established.
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(10));
    wait_established(&speaker, ROUTER_V6, Duration::from_secs(10));
    for p in speaker.peers() {
        assert_eq!(p.prefixes_announced, 1, "{p:?}");
    }

    // Withdrawal: the IPv4 prefix leaves FRR's RIB, the IPv6 one stays.
    speaker.set_routes(vec![route("2001:db8:ff::10/128", &a)]);
    wait_for("IPv4 prefix withdrawn", Duration::from_secs(10), || {
        frr_path(&lab, "203.0.113.10/32").is_none().then_some(())
    });
    assert!(frr_path(&lab, "2001:db8:ff::10/128").is_some());

    // One new prefix, timed from set_routes to FRR's RIB (vtysh polling adds its own ms).
    let mut samples = Vec::new();
    for i in 0..5u8 {
        let p = format!("203.0.113.{}/32", 100 + i);
        let mut routes = vec![route("2001:db8:ff::10/128", &a)];
        routes.push(route(&p, &a));
        let t = Instant::now();
        speaker.set_routes(routes);
        wait_for("new prefix in FRR", Duration::from_secs(10), || {
            frr_path(&lab, &p)
        });
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "BENCH one-prefix-to-FRR-RIB median={:?} samples={samples:?}",
        samples[2]
    );
    rt.call(async move { speaker.shutdown("test done", Duration::from_secs(2)).await });
}

#[test]
fn frr_ibgp_sends_local_pref_and_empty_as_path() {
    if !lab_available("frr_ibgp", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (lab, _frr, rt, speaker) = frr_dual_session(LOCAL_ASN, false);
    // Through lb_core::Announcer, as lb-k8s drives it: per-advertisement peer restrictions.
    let ad = |prefix: &str, peers: &[&str]| BgpAdvertisement {
        prefix: prefix.parse().unwrap(),
        local_pref: Some(250),
        communities: vec![Community::new(64512, 100)],
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local1: 1,
            local2: 2,
        }],
        peers: peers.iter().map(|p| (*p).to_owned()).collect(),
    };
    let announcement = Announcement {
        service: ServiceKey::new("default", "web"),
        ips: vec![
            "203.0.113.20".parse().unwrap(),
            "2001:db8:ff::20".parse().unwrap(),
        ],
        l2: None,
        bgp: Some(BgpAttributes {
            advertisements: vec![
                ad("203.0.113.20/32", &[ROUTER_V4]),
                ad("2001:db8:ff::20/128", &[]),
                ad("203.0.113.21/32", &["some-other-peer"]),
            ],
        }),
    };
    let s = speaker.clone();
    rt.call(async move { s.resync(&[announcement]).await.unwrap() });
    for prefix in ["203.0.113.20/32", "2001:db8:ff::20/128"] {
        let p = wait_for("prefix in FRR", Duration::from_secs(20), || {
            frr_path(&lab, prefix)
        });
        assert_eq!(p["locPrf"], 250, "{p}");
        assert_eq!(p["aspath"]["string"], "Local", "{p}");
        assert_eq!(p["aspath"]["length"], 0, "{p}");
        assert_eq!(p["peer"]["type"], "internal", "{p}");
        assert_eq!(strings(&p["largeCommunity"]["list"]), ["64512:1:2"]);
    }
    assert!(
        frr_path(&lab, "203.0.113.21/32").is_none(),
        "restricted to another peer"
    );
    let s = speaker;
    rt.call(async move {
        s.apply(&ServiceKey::new("default", "web"), None)
            .await
            .unwrap();
    });
    wait_for(
        "service withdrawn through Announcer::apply",
        Duration::from_secs(10),
        || {
            (frr_path(&lab, "203.0.113.20/32").is_none()
                && frr_path(&lab, "2001:db8:ff::20/128").is_none())
            .then_some(())
        },
    );
}

fn gobgp_conf(asn: u32, peer_asn: u32) -> String {
    let mut s =
        format!("[global.config]\n  as = {asn}\n  router-id = \"{ROUTER_V4}\"\n  port = 179\n");
    for (addr, af) in [(SPEAKER_V4, "ipv4-unicast"), (SPEAKER_V6, "ipv6-unicast")] {
        s += &format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {peer_asn}\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{af}\"\n"
        );
    }
    s
}

/// GoBGP's path attributes for `prefix` as (type → attribute JSON).
fn gobgp_attrs(lab: &Lab, prefix: &str) -> Option<Vec<Value>> {
    let af = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = lab.gobgp_json(&["global", "rib", "-a", af]);
    v[prefix][0]["attrs"].as_array().cloned()
}

fn attr(attrs: &[Value], type_code: u64) -> Option<&Value> {
    attrs.iter().find(|a| a["type"] == type_code)
}

#[test]
fn gobgp_ibgp_and_ebgp_ipv4_and_ipv6() {
    if !lab_available("gobgp", &[GOBGPD, GOBGP]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for ibgp in [true, false] {
        let lab = Lab::new();
        let router_asn = if ibgp { LOCAL_ASN } else { ROUTER_ASN };
        let _gobgp = lab.start_gobgp(&gobgp_conf(router_asn, LOCAL_ASN));
        let rt = lab.runtime_in(&lab.speaker);
        let speaker = start_speaker(&rt, false);
        set_peers(
            &rt,
            &speaker,
            vec![peer(ROUTER_V4, router_asn), peer(ROUTER_V6, router_asn)],
        );
        let a = attrs();
        speaker.set_routes(vec![
            route("203.0.113.30/32", &a),
            route("2001:db8:ff::30/128", &a),
        ]);
        let community = f64::from(64512u32 << 16 | 100);
        for prefix in ["203.0.113.30/32", "2001:db8:ff::30/128"] {
            let at = wait_for("prefix in GoBGP", Duration::from_secs(20), || {
                gobgp_attrs(&lab, prefix)
            });
            let as_path = &attr(&at, 2).unwrap()["as_paths"];
            if ibgp {
                assert_eq!(as_path.as_array().map(Vec::len), Some(0), "{as_path}");
                assert_eq!(attr(&at, 5).unwrap()["value"], 250);
            } else {
                assert_eq!(as_path[0]["asns"][0], LOCAL_ASN, "{as_path}");
                assert!(attr(&at, 5).is_none(), "no LOCAL_PREF on eBGP");
            }
            let next_hop = if prefix.contains(':') {
                &attr(&at, 14).unwrap()["nexthop"]
            } else {
                &attr(&at, 3).unwrap()["nexthop"]
            };
            assert_eq!(
                next_hop,
                if prefix.contains(':') {
                    SPEAKER_V6
                } else {
                    SPEAKER_V4
                }
            );
            let comms: Vec<f64> = attr(&at, 8).unwrap()["communities"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            assert!(comms.contains(&community), "{comms:?}");
            assert_eq!(attr(&at, 32).unwrap()["value"][0]["LocalData2"], 2);
        }
        // Withdraw the IPv6 prefix.
        speaker.set_routes(vec![route("203.0.113.30/32", &a)]);
        wait_for(
            "IPv6 prefix withdrawn from GoBGP",
            Duration::from_secs(10),
            || {
                gobgp_attrs(&lab, "2001:db8:ff::30/128")
                    .is_none()
                    .then_some(())
            },
        );
    }
}

#[test]
fn hold_timer_expires_on_frozen_peer_and_peer_restart_is_survived() {
    if !lab_available("hold_timer", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let conf = frr_conf(ROUTER_ASN, "", &[(SPEAKER_V4, LOCAL_ASN, "timers 1 3")]);
    let frr = lab.start_frr(&conf);
    let rt = lab.runtime_in(&lab.speaker);
    let speaker = start_speaker(&rt, false);
    let mut p = peer(ROUTER_V4, ROUTER_ASN);
    p.hold_time = 3;
    set_peers(&rt, &speaker, vec![p]);
    let a = attrs();
    speaker.set_routes(vec![route("203.0.113.40/32", &a)]);
    wait_for("prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.40/32")
    });

    frr.signal(nix::sys::signal::Signal::SIGSTOP);
    let t = Instant::now();
    let status = wait_for("our hold timer to expire", Duration::from_secs(10), || {
        speaker.peers().into_iter().find(|p| {
            p.state != State::Established
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("Hold Timer Expired"))
        })
    });
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "expired after {waited:?}, before the 3 s hold time"
    );
    assert!(status.notifications_sent >= 1, "{status:?}");
    frr.signal(nix::sys::signal::Signal::SIGCONT);
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(20));
    wait_for("prefix back in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.40/32")
    });

    // Peer restart: bgpd stops (Cease) and comes back; our session and routes return.
    let before = speaker.peers()[0].established_count;
    frr.stop();
    wait_for(
        "session down after bgpd stopped",
        Duration::from_secs(10),
        || (speaker.peers()[0].state != State::Established).then_some(()),
    );
    let _frr = lab.start_frr(&conf);
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(20));
    wait_for(
        "prefix re-sent after peer restart",
        Duration::from_secs(20),
        || frr_path(&lab, "203.0.113.40/32"),
    );
    assert!(speaker.peers()[0].established_count > before);
}

#[test]
fn md5_session_comes_up_only_with_matching_passwords() {
    if !lab_available("md5", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let _frr = lab.start_frr(&frr_conf(
        ROUTER_ASN,
        "",
        &[(SPEAKER_V4, LOCAL_ASN, "password lb-secret-1")],
    ));
    // bgpd opens its vty before it has read the configuration; until the neighbour (and so
    // the MD5 key on the listening socket) exists, a connection without a key is accepted.
    wait_for(
        "FRR to configure the MD5 neighbour",
        Duration::from_secs(10),
        || {
            let n = lab.vtysh_json("show bgp neighbors json");
            n.get(SPEAKER_V4).is_some().then_some(())
        },
    );
    // Its password line follows within the same configuration read.
    std::thread::sleep(Duration::from_millis(300));
    let rt = lab.runtime_in(&lab.speaker);
    let speaker = start_speaker(&rt, false);
    let a = attrs();
    speaker.set_routes(vec![route("203.0.113.50/32", &a)]);

    for wrong in [None, Some("not-the-secret")] {
        let mut p = peer(ROUTER_V4, ROUTER_ASN);
        p.password = wrong.map(String::from);
        set_peers(&rt, &speaker, vec![p]);
        std::thread::sleep(Duration::from_secs(4));
        let status = &speaker.peers()[0];
        assert_ne!(
            status.state,
            State::Established,
            "password {wrong:?}: {status:?}"
        );
        assert!(status.connect_attempts >= 2, "retried: {status:?}");
        assert!(frr_path(&lab, "203.0.113.50/32").is_none());
    }
    let mut p = peer(ROUTER_V4, ROUTER_ASN);
    p.password = Some("lb-secret-1".into());
    set_peers(&rt, &speaker, vec![p]);
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(15));
    wait_for("prefix in FRR over MD5", Duration::from_secs(10), || {
        frr_path(&lab, "203.0.113.50/32")
    });
}

#[test]
fn graceful_restart_keeps_routes_across_sigkill() {
    if !lab_available("graceful_restart", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let _frr = lab.start_frr(&frr_conf(
        ROUTER_ASN,
        " bgp graceful-restart\n",
        &[(SPEAKER_V4, LOCAL_ASN, "")],
    ));
    let args = |gr: bool, prefix: &'static str| {
        let mut v = vec![
            "--local-asn",
            "64512",
            "--router-id",
            SPEAKER_V4,
            "--peer",
            "64500@198.51.100.1",
            "--hold-time",
            "9",
            "--prefix",
            prefix,
        ];
        if gr {
            v.extend(["--graceful-restart", "60"]);
        }
        v
    };
    let stale = |p: &Value| p["stale"].as_bool().unwrap_or(false);

    // With graceful restart: FRR keeps the route, marked stale, while we are gone.
    let speaker = lab.spawn_announce(&args(true, "203.0.113.60/32"));
    let p = wait_for("prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.60/32")
    });
    assert!(!stale(&p));
    speaker.signal(nix::sys::signal::Signal::SIGKILL);
    drop(speaker);
    wait_for("route marked stale", Duration::from_secs(10), || {
        frr_path(&lab, "203.0.113.60/32").filter(stale)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        frr_path(&lab, "203.0.113.60/32").is_some(),
        "route kept during the restart time"
    );
    let speaker = lab.spawn_announce(&args(true, "203.0.113.60/32"));
    wait_for(
        "route refreshed, no longer stale",
        Duration::from_secs(20),
        || frr_path(&lab, "203.0.113.60/32").filter(|p| !stale(p)),
    );
    std::thread::sleep(Duration::from_secs(2));
    let p = frr_path(&lab, "203.0.113.60/32").expect("route stays after End-of-RIB");
    assert!(!stale(&p), "{p}");
    assert!(lab.log("announce.out").contains("Established"));
    speaker.stop();

    // SIGTERM sent Cease: the route is gone at once. Without graceful restart a SIGKILL
    // also loses the route (the control that shows the check above can fail).
    wait_for(
        "route withdrawn after Cease",
        Duration::from_secs(10),
        || frr_path(&lab, "203.0.113.60/32").is_none().then_some(()),
    );
    let speaker = lab.spawn_announce(&args(false, "203.0.113.61/32"));
    wait_for("prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.61/32")
    });
    speaker.signal(nix::sys::signal::Signal::SIGKILL);
    drop(speaker);
    wait_for(
        "route gone without graceful restart",
        Duration::from_secs(10),
        || frr_path(&lab, "203.0.113.61/32").is_none().then_some(()),
    );
}

/// Reads one whole BGP message from `stream`.
async fn read_message(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Message> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Ok(Some(len)) = frame_len(buf)
            && buf.len() >= len
        {
            let frame: Vec<u8> = buf.drain(..len).collect();
            return Message::decode(&frame, Codec::FOUR_OCTET).ok();
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn malformed_messages_get_the_right_notification_and_the_speaker_recovers() {
    if !lab_available("malformed", &[]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let router = lab.runtime_in(&lab.router);
    let rt = lab.runtime_in(&lab.speaker);
    let listener = std::sync::Arc::new(router.call(async {
        tokio::net::TcpListener::bind((ROUTER_V4, 179))
            .await
            .unwrap()
    }));
    let speaker = start_speaker(&rt, false);
    set_peers(&rt, &speaker, vec![peer(ROUTER_V4, ROUTER_ASN)]);
    speaker.set_routes(vec![route("203.0.113.70/32", &attrs())]);

    let keepalive_len = |len: u16| {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.push(4);
        m.resize(usize::from(len), 0);
        m
    };
    let mut bad_update_withdrawn = vec![0xff; 16];
    bad_update_withdrawn.extend_from_slice(&[0, 23, 2, 0, 9, 0, 0]); // withdrawn length 9 > body
    let mut unknown_well_known = vec![0xff; 16];
    unknown_well_known.extend_from_slice(&[0, 27, 2, 0, 0, 0, 4, 0x40, 99, 1, 0]);
    let mut bad_marker = vec![0xff; 16];
    bad_marker[3] = 0;
    bad_marker.extend_from_slice(&[0, 19, 4]);
    let cases: Vec<(&str, Vec<u8>, u8, u8)> = vec![
        ("withdrawn length overrun", bad_update_withdrawn, 3, 1),
        (
            "unrecognised well-known attribute",
            unknown_well_known,
            3,
            2,
        ),
        ("KEEPALIVE of 20 octets", keepalive_len(20), 1, 2),
        ("marker not all ones", bad_marker, 1, 1),
    ];
    for (what, bytes, code, subcode) in cases {
        let listener_ref = std::sync::Arc::clone(&listener);
        let got: Notification = router.call(async move {
            let (mut stream, _) =
                tokio::time::timeout(Duration::from_secs(20), listener_ref.accept())
                    .await
                    .expect("the speaker reconnects")
                    .unwrap();
            let mut buf = Vec::new();
            let Some(Message::Open(open)) = read_message(&mut stream, &mut buf).await else {
                panic!("no OPEN")
            };
            assert_eq!(open.asn(), LOCAL_ASN);
            let ours = Open::new(
                ROUTER_ASN,
                9,
                ROUTER_V4.parse().unwrap(),
                vec![
                    Capability::Multiprotocol(Family::IPV4_UNICAST),
                    Capability::FourOctetAs(ROUTER_ASN),
                ],
            );
            use tokio::io::AsyncWriteExt;
            let mut out = Message::Open(ours).to_bytes(Codec::default()).unwrap();
            out.extend(Message::Keepalive.to_bytes(Codec::default()).unwrap());
            stream.write_all(&out).await.unwrap();
            // Wait for the session to come up (our table and End-of-RIB arrive), then send junk.
            loop {
                match read_message(&mut stream, &mut buf).await {
                    Some(Message::Update(u)) if u.end_of_rib_family().is_some() => break,
                    Some(_) => {}
                    None => panic!("connection closed before End-of-RIB"),
                }
            }
            stream.write_all(&bytes).await.unwrap();
            loop {
                match read_message(&mut stream, &mut buf).await {
                    Some(Message::Notification(n)) => return n,
                    Some(_) => {}
                    None => panic!("closed without NOTIFICATION"),
                }
            }
        });
        assert_eq!(
            (got.code, got.subcode),
            (code, subcode),
            "{what}: got {got}"
        );
    }
    // The speaker is still running and reconnecting.
    assert!(speaker.peers()[0].connect_attempts >= 4);
    drop(listener);
}

#[test]
fn ten_thousand_prefixes_reach_frr() {
    if !lab_available("10k prefixes", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (lab, _frr, _rt, speaker) = frr_dual_session(ROUTER_ASN, false);
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(20));
    wait_established(&speaker, ROUTER_V6, Duration::from_secs(20));
    let a = RouteAttributes {
        communities: vec![Community::new(64512, 1)],
        ..RouteAttributes::default()
    };
    // Documentation space only: every IPv4 /32 of the three documentation /24s (768) and
    // 10,000 IPv6 /128s of 2001:db8:ff::/64.
    let mut routes = Vec::new();
    for net in ["192.0.2", "198.51.100", "203.0.113"] {
        for host in 0..=255u16 {
            routes.push(route(&format!("{net}.{host}/32"), &a));
        }
    }
    for i in 0..10_000u128 {
        let addr = Ipv6Addr::from(0x2001_0db8_00ff_0000_0000_0000_0000_0000u128 + i);
        routes.push(Route {
            prefix: IpNet::new(IpAddr::V6(addr), 128).unwrap(),
            attributes: a.clone(),
            peers: vec![],
        });
    }
    let t = Instant::now();
    speaker.set_routes(routes);
    wait_for(
        "10,000 IPv6 + 768 IPv4 prefixes in FRR",
        Duration::from_secs(60),
        || {
            (frr_pfx_rcd(&lab, "ipv6", SPEAKER_V6) == 10_000
                && frr_pfx_rcd(&lab, "ipv4", SPEAKER_V4) == 768)
                .then_some(())
        },
    );
    let elapsed = t.elapsed();
    println!("BENCH 10000-ipv6+768-ipv4-prefixes-to-FRR-RIB {elapsed:?}");
    let status = speaker.peers();
    assert_eq!(
        status.iter().map(|p| p.prefixes_announced).sum::<usize>(),
        10_768
    );
    // Withdraw everything: FRR's RIB empties.
    let t = Instant::now();
    speaker.set_routes(vec![]);
    wait_for("all prefixes withdrawn", Duration::from_secs(60), || {
        (frr_pfx_rcd(&lab, "ipv6", SPEAKER_V6) == 0 && frr_pfx_rcd(&lab, "ipv4", SPEAKER_V4) == 0)
            .then_some(())
    });
    println!("BENCH withdraw-10768-prefixes {:?}", t.elapsed());
}

/// The misbehaving peer's address.
const BAD_PEER: &str = "198.51.100.2";

/// How the misbehaving peer of [`misbehaving_peers_cost_bounded_memory`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Asks for the table again and again and never reads a byte.
    RefreshNeverRead,
    /// Writes UPDATEs as fast as TCP takes them, one in four with an RFC 7606 error.
    UpdateFlood,
}

/// An UPDATE from AS 64501 announcing 64 /32s of 198.51.100.0/24 (`round` picks which);
/// with a bad ORIGIN (treat-as-withdraw) when `faulty`.
fn flood_update(round: u8, faulty: bool) -> Vec<u8> {
    let origin: u8 = if faulty { 3 } else { 0 };
    let mut attrs = vec![0x40, 1, 1, origin];
    attrs.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xf5]);
    attrs.extend_from_slice(&[0x40, 3, 4, 198, 51, 100, 1]);
    let mut nlri = Vec::new();
    for i in 0..64u8 {
        nlri.extend_from_slice(&[32, 198, 51, 100, round.wrapping_mul(64).wrapping_add(i)]);
    }
    let body_len = 2 + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body_len).unwrap().to_be_bytes());
    m.push(2);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    m.extend_from_slice(&attrs);
    m.extend_from_slice(&nlri);
    m
}

/// Accepts the speaker's connections on `listener` for `duration` and misbehaves on each
/// once it is up. Returns how many sessions it had.
async fn misbehave(
    listener: std::sync::Arc<tokio::net::TcpListener>,
    how: Misbehaviour,
    duration: Duration,
) -> u32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let end = tokio::time::Instant::now() + duration;
    let refresh = Message::RouteRefresh(lb_bgp::wire::RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: 0,
    })
    .to_bytes(Codec::FOUR_OCTET)
    .unwrap();
    let refreshes: Vec<u8> = refresh.repeat(2_000);
    let updates: Vec<u8> = (0..16u8)
        .flat_map(|round| flood_update(round, round % 4 == 3))
        .collect();
    let mut sessions = 0;
    // Bounded by `duration`: every wait below ends at `end` at the latest.
    while let Ok(accepted) = tokio::time::timeout_at(end, listener.accept()).await {
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let mut buf = Vec::new();
        let Ok(Some(Message::Open(_))) =
            tokio::time::timeout_at(end, read_message(&mut stream, &mut buf)).await
        else {
            continue;
        };
        let ours = Open::new(
            64501,
            9,
            BAD_PEER.parse().unwrap(),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(64501),
                Capability::RouteRefresh,
            ],
        );
        let mut out = Message::Open(ours).to_bytes(Codec::default()).unwrap();
        out.extend(Message::Keepalive.to_bytes(Codec::default()).unwrap());
        if stream.write_all(&out).await.is_err() {
            continue;
        }
        sessions += 1;
        match how {
            Misbehaviour::RefreshNeverRead => {
                // Until the speaker resets the session (the write fails) or time is up.
                while let Ok(Ok(())) =
                    tokio::time::timeout_at(end, stream.write_all(&refreshes)).await
                {
                }
            }
            Misbehaviour::UpdateFlood => {
                let (mut rd, mut wr) = stream.into_split();
                let drain = tokio::spawn(async move {
                    let mut sink = vec![0u8; 65536];
                    while let Ok(n) = rd.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
                while let Ok(Ok(())) = tokio::time::timeout_at(end, wr.write_all(&updates)).await {}
                drain.abort();
            }
        }
    }
    sessions
}

/// Resident memory of process `pid` in KiB (VmRSS), 0 once it is gone.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The speaker (the `announce` example, its own process) has two peers: FRR, and a peer that
/// for 60 s asks for the table again and again without reading, then for 60 s floods UPDATEs
/// at full speed, one in four malformed. The speaker's RSS stays under 32 MiB, the session to
/// FRR stays Established with every prefix, the warnings stay few, and the memory the flood
/// took is given back.
#[test]
fn misbehaving_peers_cost_bounded_memory() {
    if !lab_available("misbehaving peers", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let _frr = lab.start_frr(&frr_conf(ROUTER_ASN, "", &[(SPEAKER_V4, LOCAL_ASN, "")]));
    // The misbehaving peer: a second address of the router namespace, port 1179 (bgpd has
    // 179).
    ip(&[
        "-n",
        &lab.router,
        "addr",
        "add",
        &format!("{BAD_PEER}/24"),
        "dev",
        "eth0",
    ]);
    let router = lab.runtime_in(&lab.router);
    let listener = std::sync::Arc::new(router.call(async {
        tokio::net::TcpListener::bind((BAD_PEER, 1179))
            .await
            .unwrap()
    }));
    let prefixes: Vec<String> = (0..200).map(|i| format!("203.0.113.{}/32", i)).collect();
    let mut args: Vec<String> = [
        "--local-asn",
        "64512",
        "--router-id",
        SPEAKER_V4,
        "--hold-time",
        "9",
        "--peer",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    args.push(format!("{ROUTER_ASN}@{ROUTER_V4}"));
    args.push("--peer".into());
    args.push(format!("64501@{BAD_PEER}:1179"));
    for p in &prefixes {
        args.push("--prefix".into());
        args.push(p.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let speaker = lab.spawn_announce(&args);
    let pid = speaker.pid();
    wait_for("FRR has all 200 prefixes", Duration::from_secs(30), || {
        (frr_pfx_rcd(&lab, "ipv4", SPEAKER_V4) == 200).then_some(())
    });
    let baseline = rss_kib(pid);
    for how in [Misbehaviour::RefreshNeverRead, Misbehaviour::UpdateFlood] {
        let lines_before = lab.log("announce.out").lines().count();
        let l = std::sync::Arc::clone(&listener);
        let duration = Duration::from_secs(60);
        let ns = lab.router.clone();
        let bad = std::thread::spawn(move || {
            lb_testlab::NsRuntime::new(&ns).call(misbehave(l, how, duration))
        });
        let mut peak = 0;
        let started = Instant::now();
        // Bounded: until the misbehaving peer is done (at most 80 s), a sample every 250 ms.
        while !bad.is_finished() && started.elapsed() < Duration::from_secs(80) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(250));
            if started.elapsed().as_millis() % 5_000 < 250 {
                assert_eq!(
                    frr_pfx_rcd(&lab, "ipv4", SPEAKER_V4),
                    200,
                    "{how:?}: the session to FRR lost prefixes"
                );
            }
        }
        let sessions = bad.join().unwrap();
        // The misbehaving connection is closed: the speaker gives the memory back once the
        // writer's grace period (2 s) is over. Bounded: 10 s, a sample every 100 ms.
        let closed = Instant::now();
        let mut after = rss_kib(pid);
        while after >= baseline + 4 * 1024 && closed.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            after = rss_kib(pid);
        }
        let returned_in = closed.elapsed();
        let lines = lab.log("announce.out").lines().count() - lines_before;
        println!(
            "RESULT {how:?} 60 s: speaker RSS baseline {baseline} KiB, peak {peak} KiB, {after} KiB {returned_in:?} after; {sessions} sessions; {lines} log lines"
        );
        assert!(sessions >= 1, "{how:?}: the speaker never connected");
        assert!(peak > 0 && peak < 32 * 1024, "{how:?}: peak RSS {peak} KiB");
        assert!(lines < 400, "{how:?}: {lines} log lines");
        assert_eq!(frr_pfx_rcd(&lab, "ipv4", SPEAKER_V4), 200);
        // What the flood took is given back: at most 4 MiB above where it started.
        assert!(
            after < baseline + 4 * 1024,
            "{how:?}: RSS {after} KiB after, {baseline} KiB before"
        );
    }
    let log = lab.log("announce.out");
    assert!(log.contains("Established"), "{log}");
    assert!(
        log.contains("Out of Resources"),
        "the never-reading peer was not reset: {log}"
    );
    drop(speaker);
    drop(listener);
}

/// A forwarding path said down (BFD's verdict) resets the session at once with Cease / BFD
/// Down, the routes leave FRR, and nothing reconnects until the path is up again; a peer
/// reconfigured meanwhile stays held.
#[test]
fn a_path_down_resets_the_session_and_holds_it_until_up() {
    if !lab_available("path down", &[BGPD, VTYSH]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Listening too: bgpd's own connections must be refused while the path is down.
    let (lab, _frr, rt, speaker) = frr_dual_session(ROUTER_ASN, true);
    speaker.set_routes(vec![route("203.0.113.20/32", &attrs())]);
    wait_for("prefix in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.20/32")
    });
    let v4: IpAddr = ROUTER_V4.parse().unwrap();
    let t0 = Instant::now();
    speaker.set_path_down(v4, true);
    wait_for("prefix withdrawn", Duration::from_secs(5), || {
        frr_path(&lab, "203.0.113.20/32").is_none().then_some(())
    });
    println!(
        "RESULT path down to route gone from FRR: {:?}",
        t0.elapsed()
    );
    let frr = lab.vtysh_json(&format!("show bgp neighbors {SPEAKER_V4} json"));
    let last = frr[SPEAKER_V4]["lastNotificationReason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("BFD Down") || last.contains("Cease"), "{frr}");
    // Held: not Established for 4 s, whatever bgpd tries meanwhile.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let p = speaker
            .peers()
            .into_iter()
            .find(|p| p.address == v4)
            .unwrap();
        assert!(p.path_down && p.state != State::Established, "{p:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A configuration change meanwhile keeps it held.
    let mut changed = peer(ROUTER_V4, ROUTER_ASN);
    changed.hold_time = 12;
    set_peers(&rt, &speaker, vec![changed, peer(ROUTER_V6, ROUTER_ASN)]);
    std::thread::sleep(Duration::from_secs(2));
    let p = speaker
        .peers()
        .into_iter()
        .find(|p| p.address == v4)
        .unwrap();
    assert!(p.path_down && p.state != State::Established, "{p:?}");
    // The IPv6 session never noticed.
    wait_established(&speaker, ROUTER_V6, Duration::from_secs(1));
    // Up again: the session and the route come back.
    speaker.set_path_down(v4, false);
    wait_established(&speaker, ROUTER_V4, Duration::from_secs(20));
    wait_for("prefix back in FRR", Duration::from_secs(20), || {
        frr_path(&lab, "203.0.113.20/32")
    });
    rt.call(async move { speaker.shutdown("test done", Duration::from_secs(2)).await });
}
