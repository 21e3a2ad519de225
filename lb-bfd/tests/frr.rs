//! The runtime against FRR's bfdd in network namespaces the test creates: single-hop IPv4
//! and IPv6 sessions come Up, FRR sees the intervals and multiplier we ask for, a timer
//! change keeps the session Up, passive mode waits for FRR, a silenced speaker is declared
//! down by FRR within the detection time, and a multihop session through a router comes Up
//! and honours the minimum TTL. Needs root; skipped loudly outside CI without it, a failure
//! under `CI=true`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use lb_bfd::runtime::{Bfd, BfdOptions, PeerKey, PeerSpec};
use lb_bfd::session::SessionConfig;
use lb_bfd::wire::State;
use lb_testlab::{Frr, Netns, NsRuntime, lab_available, run, serial, veth, wait_for};
use serde_json::Value;

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BFDD: &str = "/usr/lib/frr/bfdd";
const VTYSH: &str = "/usr/bin/vtysh";

const ROUTER_V4: &str = "198.51.100.1";
const ROUTER_V6: &str = "2001:db8:1::1";
const SPEAKER_V4: &str = "198.51.100.11";
const SPEAKER_V6: &str = "2001:db8:1::11";
const FAR_V4: &str = "203.0.113.2";

fn available(test: &str) -> bool {
    lab_available(test, &[ZEBRA, BFDD, VTYSH])
}

/// FRR's view of its BFD session to `peer`.
fn frr_peer(frr: &Frr, peer: &str) -> Option<Value> {
    serde_json::from_str::<Value>(&frr.vtysh("bfdd", "show bfd peers json"))
        .ok()?
        .as_array()?
        .iter()
        .find(|p| p["peer"] == peer)
        .cloned()
}

fn frr_status(frr: &Frr, peer: &str) -> String {
    frr_peer(frr, peer)
        .and_then(|p| p["status"].as_str().map(String::from))
        .unwrap_or_default()
}

fn start_bfdd(ns: &Netns, conf: &str) -> Frr {
    Frr::start(ns, &[("bfdd", conf)])
}

/// The router and speaker namespaces, joined by a veth pair.
fn two_namespaces() -> (Netns, Netns) {
    let router = Netns::new("bfr");
    let speaker = Netns::new("bfs");
    veth(&router, "eth0", &speaker, "eth0");
    for (ns, v4, v6) in [
        (&router, ROUTER_V4, ROUTER_V6),
        (&speaker, SPEAKER_V4, SPEAKER_V6),
    ] {
        ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
        ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
    }
    (router, speaker)
}

fn config(ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(ms),
        required_min_rx: Duration::from_millis(ms),
        detect_mult: mult,
        passive: false,
    }
}

fn single_hop(peer: &str, config: SessionConfig) -> PeerSpec {
    PeerSpec {
        key: PeerKey {
            peer: peer.parse().unwrap(),
            local: None,
            multihop: false,
        },
        config,
        minimum_ttl: 255,
    }
}

fn start(rt: &NsRuntime) -> Bfd {
    rt.call(async { Bfd::start(BfdOptions::default()).await.unwrap() })
}

/// Sets the peers (it only queues a command for the runtime's task).
fn set_peers(bfd: &Bfd, peers: Vec<PeerSpec>) {
    bfd.set_peers(peers).unwrap();
}

fn wait_up(bfd: &Bfd, frr: &Frr, peers: &[&str], timeout: Duration) {
    wait_for("sessions Up on both sides", timeout, || {
        peers
            .iter()
            .all(|p| {
                let key = PeerKey {
                    peer: p.parse::<IpAddr>().unwrap(),
                    local: None,
                    multihop: false,
                };
                bfd.state(&key) == Some(State::Up)
            })
            .then_some(())
            .filter(|()| {
                [SPEAKER_V4, SPEAKER_V6][..peers.len()]
                    .iter()
                    .all(|s| frr_status(frr, s) == "up")
            })
    });
}

const FRR_CONF: &str = "hostname router\n!\nbfd\n peer 198.51.100.11 local-address 198.51.100.1\n  \
                        transmit-interval 300\n  receive-interval 300\n  detect-multiplier 3\n !\n \
                        peer 2001:db8:1::11 local-address 2001:db8:1::1\n  transmit-interval 300\n  \
                        receive-interval 300\n  detect-multiplier 3\n !\n!\n";

/// Up both ways over IPv4 and IPv6; FRR sees our intervals and multiplier; a timer change
/// keeps the session Up; a silenced speaker is declared down within the detection time.
#[test]
fn single_hop_sessions_with_frr() {
    if !available("single_hop_sessions_with_frr") {
        return;
    }
    let _serial = serial();
    let (router, speaker) = two_namespaces();
    let frr = start_bfdd(&router, FRR_CONF);
    let rt = speaker.runtime();
    let bfd = start(&rt);
    set_peers(
        &bfd,
        vec![
            single_hop(ROUTER_V4, config(200, 4)),
            single_hop(ROUTER_V6, config(200, 4)),
        ],
    );
    wait_up(&bfd, &frr, &[ROUTER_V4, ROUTER_V6], Duration::from_secs(15));
    // FRR's view of our side: the intervals (ms) and multiplier we asked for.
    let want = |peer: &str, ms: u64, mult: u64| {
        wait_for(
            &format!("FRR sees {ms} ms x {mult} from {peer}"),
            Duration::from_secs(5),
            || {
                let p = frr_peer(&frr, peer)?;
                (p["remote-receive-interval"] == ms
                    && p["remote-transmit-interval"] == ms
                    && p["remote-detect-multiplier"] == mult)
                    .then_some(p)
            },
        )
    };
    want(SPEAKER_V4, 200, 4);
    want(SPEAKER_V6, 200, 4);
    // And ours of FRR: 300 ms x 3 gives a detection time of 900 ms.
    let v4 = PeerKey {
        peer: ROUTER_V4.parse().unwrap(),
        local: None,
        multihop: false,
    };
    let status = bfd.peers().into_iter().find(|p| p.key == v4).unwrap();
    assert_eq!(status.detection_time, Some(Duration::from_millis(900)));
    assert_eq!(status.transmit_interval, Some(Duration::from_millis(300)));

    // A timer change: through a Poll Sequence, without a flap on either side.
    let uptime = frr_peer(&frr, SPEAKER_V4).unwrap()["uptime"]
        .as_u64()
        .unwrap_or(0);
    set_peers(
        &bfd,
        vec![
            single_hop(ROUTER_V4, config(100, 5)),
            single_hop(ROUTER_V6, config(200, 4)),
        ],
    );
    want(SPEAKER_V4, 100, 5);
    std::thread::sleep(Duration::from_secs(2));
    let p = frr_peer(&frr, SPEAKER_V4).unwrap();
    assert_eq!(p["status"], "up", "{p}");
    assert!(
        p["uptime"].as_u64().unwrap_or(0) >= uptime,
        "FRR's session restarted: {p}"
    );
    let status = bfd.peers().into_iter().find(|p| p.key == v4).unwrap();
    assert_eq!(status.counters.down_events, 0, "{status:?}");
    assert!(status.counters.control_in > 0 && status.counters.control_out > 0);

    // Silenced (as a frozen or dead speaker): FRR declares it down within its detection time
    // of our side: our multiplier (5) times the slower of our 100 ms and its 300 ms.
    let detection = Duration::from_millis(5 * 300);
    let t0 = Instant::now();
    drop(bfd);
    wait_for(
        "FRR declares the IPv4 session down",
        Duration::from_secs(5),
        || (frr_status(&frr, SPEAKER_V4) == "down").then_some(()),
    );
    let took = t0.elapsed();
    eprintln!(
        "RESULT FRR declared the silenced speaker down after {took:?} (detection {detection:?})"
    );
    // The polling of vtysh adds its own delay (each call takes tens of milliseconds).
    assert!(took < detection + Duration::from_millis(500), "{took:?}");
    assert_eq!(
        frr_peer(&frr, SPEAKER_V4).unwrap()["diagnostic"],
        "control detection time expired"
    );
    drop(rt);
}

/// Passive: our side sends nothing until FRR does, then comes Up; AdminDown on removal takes
/// FRR's session down at once (diagnostic: neighbor signalled down).
#[test]
fn passive_mode_waits_for_frr_and_removal_signals_down() {
    if !available("passive_mode_waits_for_frr_and_removal_signals_down") {
        return;
    }
    let _serial = serial();
    let (router, speaker) = two_namespaces();
    let rt = speaker.runtime();
    let bfd = start(&rt);
    let passive = SessionConfig {
        passive: true,
        ..config(300, 3)
    };
    set_peers(&bfd, vec![single_hop(ROUTER_V4, passive)]);
    std::thread::sleep(Duration::from_secs(2));
    let status = bfd.peers()[0];
    assert_eq!(status.counters.control_out, 0, "a passive session sent");
    assert_eq!(status.state, State::Down);
    let frr = start_bfdd(&router, FRR_CONF);
    wait_up(&bfd, &frr, &[ROUTER_V4], Duration::from_secs(15));
    // Removal: AdminDown goes out, FRR goes down at once.
    let t0 = Instant::now();
    set_peers(&bfd, Vec::new());
    wait_for("FRR sees the session down", Duration::from_secs(5), || {
        (frr_status(&frr, SPEAKER_V4) == "down").then_some(())
    });
    let p = frr_peer(&frr, SPEAKER_V4).unwrap();
    eprintln!("RESULT removal seen by FRR after {:?}: {p}", t0.elapsed());
    assert_eq!(p["remote-diagnostic"], "administratively down", "{p}");
    assert!(bfd.peers().is_empty());
}

/// Multihop through a router (RFC 5883, port 4784): Up, and a minimum TTL above what the
/// path leaves refuses FRR's packets.
#[test]
fn multihop_session_through_a_router() {
    if !available("multihop_session_through_a_router") {
        return;
    }
    let _serial = serial();
    let (router, speaker) = two_namespaces();
    let far = Netns::new("bff");
    veth(&router, "eth1", &far, "eth0");
    router.ip(&["addr", "add", "203.0.113.1/24", "dev", "eth1"]);
    run(router
        .command("sysctl")
        .args(["-qw", "net.ipv4.ip_forward=1"]));
    far.ip(&["addr", "add", &format!("{FAR_V4}/24"), "dev", "eth0"]);
    far.ip(&["route", "add", "198.51.100.0/24", "via", "203.0.113.1"]);
    speaker.ip(&["route", "add", "203.0.113.0/24", "via", ROUTER_V4]);
    let conf = format!(
        "hostname far\n!\nbfd\n peer {SPEAKER_V4} multihop local-address {FAR_V4}\n  \
         transmit-interval 300\n  receive-interval 300\n  minimum-ttl 254\n !\n!\n"
    );
    let frr = start_bfdd(&far, &conf);
    let rt = speaker.runtime();
    let bfd = start(&rt);
    let key = PeerKey {
        peer: FAR_V4.parse().unwrap(),
        local: Some(SPEAKER_V4.parse().unwrap()),
        multihop: true,
    };
    let spec = |minimum_ttl| PeerSpec {
        key,
        config: config(300, 3),
        minimum_ttl,
    };
    set_peers(&bfd, vec![spec(254)]);
    wait_for("multihop session Up", Duration::from_secs(15), || {
        (bfd.state(&key) == Some(State::Up) && frr_status(&frr, SPEAKER_V4) == "up").then_some(())
    });
    // FRR sends with TTL 255; one router makes it 254. Asking for 255 refuses every packet:
    // the session goes down by detection.
    set_peers(&bfd, vec![spec(255)]);
    wait_for(
        "the session goes down on the TTL check",
        Duration::from_secs(5),
        || (bfd.state(&key) == Some(State::Down)).then_some(()),
    );
    assert!(bfd.unmatched().refused > 0, "{:?}", bfd.unmatched());
    drop(bfd);
    drop(frr);
}
