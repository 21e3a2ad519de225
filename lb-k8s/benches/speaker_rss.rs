//! Speaker memory and restart time with many announced Services (file source).
//!
//! Runs `lb-k8s speaker --from-file` in a network namespace it creates, on a file with N
//! IPv6 layer-2 Services (2001:db8::/64 pool, one endpoint each on the only node), waits
//! until the speaker's metrics show all N announced, reads its resident set size from
//! `/proc/PID/status`, then kills it and times a restart until all N are announced again.
//!
//! `cargo bench -p lb-k8s --bench speaker_rss` (as root): N = 10,000.
//! `cargo bench -p lb-k8s --bench speaker_rss -- --test`: N = 200, a quick check that the
//! measurement works. Without root it says so and does nothing (a failure under `CI=true`).
//!
//! It measures the `lb-k8s` binary cargo builds for the bench (the `bench` profile, glibc);
//! `LB_K8S_BIN=PATH` measures another build instead, such as the release image's (the `dist`
//! profile, musl): see docs/benchmarks.md, "Memory and restart with 10,000 Services".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lb_testlab::{Daemon, Netns, lab_available, wait_for};

fn objects(n: usize) -> String {
    let mut out = String::from(
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: v6, namespace: metallb-system}
spec: {addresses: [2001:db8::/64]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 192.0.2.11}]}
",
    );
    for i in 0..n {
        let _ = write!(
            out,
            "---
apiVersion: v1
kind: Service
metadata: {{name: s{i}, namespace: default}}
spec: {{type: LoadBalancer, ipFamilies: [IPv6], clusterIPs: ['2001:db8:1::{i:x}'], ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: s{i}-1, namespace: default, labels: {{kubernetes.io/service-name: s{i}}}}}
addressType: IPv6
endpoints: [{{addresses: ['2001:db8:2::{i:x}'], nodeName: node-a}}]
"
        );
    }
    out
}

fn announced(ns: &Netns) -> usize {
    let out = ns
        .command("curl")
        .args(["-s", "--max-time", "5", "http://127.0.0.1:7473/metrics"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("metallb_speaker_announced{"))
        .count()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `RssAnon`, `RssFile`).
fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The binary under test: `LB_K8S_BIN`, or the one cargo built.
fn binary() -> std::path::PathBuf {
    let Some(path) = std::env::var_os("LB_K8S_BIN") else {
        return env!("CARGO_BIN_EXE_lb-k8s").into();
    };
    let path = std::path::PathBuf::from(path);
    assert!(
        path.is_absolute() && path.is_file(),
        "LB_K8S_BIN={}: give the absolute path of a file (cargo runs benches in the package \
         directory)",
        path.display()
    );
    path
}

fn start(ns: &Netns, dir: &std::path::Path) -> Daemon {
    let log = std::fs::File::create(dir.join("speaker.log")).unwrap();
    let child = ns
        .command(binary())
        .args(["speaker", "--node-name", "node-a", "--from-file"])
        .arg(dir.join("objects.yaml"))
        .arg("--ml-secret-key-path")
        .arg(dir.join("secretkey"))
        .args(["--listen", "127.0.0.1:7473", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon {
        name: "lb-k8s speaker",
        child,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    if !lab_available("speaker_rss", &["/usr/bin/curl"]) {
        return;
    }
    let n = if quick { 200 } else { 10_000 };
    let bin = binary();
    let ns = Netns::new("lbrss");
    let peer = Netns::new("lbrsp");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
    ]);
    ns.ip(&["addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "2001:db8::11/64", "dev", "eth0", "nodad"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    peer.ip(&["link", "set", "eth0", "up"]);
    let dir = std::env::temp_dir().join(lb_testlab::unique("lbrss"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("objects.yaml"), objects(n)).unwrap();
    std::fs::write(dir.join("secretkey"), "bench-key").unwrap();

    let t0 = Instant::now();
    let mut speaker = start(&ns, &dir);
    let limit = Duration::from_secs(if quick { 60 } else { 300 });
    wait_for("all services announced", limit, || {
        (announced(&ns) == n).then_some(())
    });
    let first = t0.elapsed();
    // Let the takeover rounds finish (4.4 s) before reading memory.
    std::thread::sleep(Duration::from_secs(5));
    let rss = status_kib(speaker.pid(), "VmRSS");
    let anon = status_kib(speaker.pid(), "RssAnon");
    let file = status_kib(speaker.pid(), "RssFile");

    assert!(speaker.running(), "the speaker stopped");
    speaker.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = speaker.child.wait();
    let t1 = Instant::now();
    let _restarted = start(&ns, &dir);
    wait_for("all services announced again", limit, || {
        (announced(&ns) == n).then_some(())
    });
    let restart = t1.elapsed();
    println!("binary: {}", bin.display());
    println!(
        "speaker, {n} layer-2 services from a file: RSS {:.1} MiB (anonymous {:.1} MiB, \
         file-backed {:.1} MiB); first start {:.2} s; restart after kill -9 until all \
         announced {:.2} s",
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        first.as_secs_f64(),
        restart.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
