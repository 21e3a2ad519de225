//! CPU of 100 BFD sessions at 50 ms, side by side with FRR's bfdd holding the same sessions.
//!
//! ```sh
//! cargo bench -p lb-bfd --bench sessions_cpu           # as root; `-- --test`: 10 sessions, 3 s
//! ```
//!
//! Two namespaces joined by a veth pair: bfdd in one with 100 local addresses
//! (198.51.100.100–199), one session each to 198.51.100.11; our runtime in the other with 100
//! sessions to them. The sessions are multihop (RFC 5883, the same state machine and timers):
//! bfdd tells single-hop sessions apart by peer and interface only, so it would hold one. Once all are Up, the CPU time (user + system, from /proc) of this process
//! and of bfdd is read over the measuring period and reported as a share of one core.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::time::{Duration, Instant};

use lb_bfd::runtime::{Bfd, BfdOptions, PeerKey, PeerSpec};
use lb_bfd::session::SessionConfig;
use lb_bfd::wire::State;
use lb_testlab::{Frr, Netns, cpu_time, veth, wait_for};

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/usr/lib/frr/bfdd").exists() {
        eprintln!("sessions_cpu: needs root and FRR's bfdd; skipped");
        return;
    }
    let (sessions, period) = if quick {
        (10u8, Duration::from_secs(3))
    } else {
        (100u8, Duration::from_secs(30))
    };
    let router = Netns::new("bcr");
    let speaker = Netns::new("bcs");
    veth(&router, "eth0", &speaker, "eth0");
    speaker.ip(&["addr", "add", "198.51.100.11/24", "dev", "eth0"]);
    let mut conf = String::from("hostname router\n!\nbfd\n");
    for i in 0..sessions {
        let local = format!("198.51.100.{}", 100 + u32::from(i));
        router.ip(&["addr", "add", &format!("{local}/24"), "dev", "eth0"]);
        conf.push_str(&format!(
            " peer 198.51.100.11 multihop local-address {local}\n  transmit-interval 50\n  receive-interval 50\n !\n"
        ));
    }
    conf.push_str("!\n");
    let frr = Frr::start(&router, &[("bfdd", &conf)]);
    let rt = speaker.runtime();
    let bfd = rt.call(async { Bfd::start(BfdOptions::default()).await.unwrap() });
    let config = SessionConfig {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: 3,
        passive: false,
    };
    let peers: Vec<PeerSpec> = (0..sessions)
        .map(|i| PeerSpec {
            key: PeerKey {
                peer: format!("198.51.100.{}", 100 + u32::from(i))
                    .parse()
                    .unwrap(),
                local: None,
                multihop: true,
            },
            config,
            minimum_ttl: 254,
        })
        .collect();
    bfd.set_peers(peers).unwrap();
    let up = wait_for("every session Up", Duration::from_secs(60), || {
        let all = bfd.peers();
        (all.len() == usize::from(sessions) && all.iter().all(|p| p.state == State::Up))
            .then_some(all.len())
    });
    // Past the poll sequences to the fast rate.
    std::thread::sleep(Duration::from_secs(2));
    let me = i32::try_from(std::process::id()).unwrap();
    let bfdd = frr.pid("bfdd").unwrap();
    let (ours0, theirs0, t0) = (cpu_time(me), cpu_time(bfdd), Instant::now());
    let sent0: u64 = bfd.peers().iter().map(|p| p.counters.control_out).sum();
    std::thread::sleep(period);
    let (ours, theirs, took) = (cpu_time(me) - ours0, cpu_time(bfdd) - theirs0, t0.elapsed());
    let sent: u64 = bfd
        .peers()
        .iter()
        .map(|p| p.counters.control_out)
        .sum::<u64>()
        - sent0;
    let still_up = bfd.peers().iter().filter(|p| p.state == State::Up).count();
    let share = |d: Duration| d.as_secs_f64() * 100.0 / took.as_secs_f64();
    assert_eq!(bfd.unmatched().send_dropped, 0, "{:?}", bfd.unmatched());
    println!(
        "BENCH {up} sessions at 50 ms x 3 for {took:.1?}: lb-bfd {:.2} % of a core, FRR bfdd {:.2} % (ratio {:.2}); {sent} packets sent ({:.0}/s); {still_up} still Up",
        share(ours),
        share(theirs),
        share(ours) / share(theirs).max(0.01),
        sent as f64 / took.as_secs_f64(),
    );
    assert_eq!(
        still_up,
        usize::from(sessions),
        "sessions went down while measured"
    );
    drop(bfd);
    drop(rt);
    drop(frr);
}
