//! End-to-end tests of the speakers' SWIM membership ([`lb_membership`]) over real UDP
//! sockets on loopback: three agents find each other through their seeds, a killed agent
//! (dropped without leaving) is declared down by the others in under a second and may come
//! back on the same address, a leaving agent is dropped at once, an agent with another key
//! can neither join nor disturb the others, and an agent that started alone joins once its
//! seed comes up.
//!
//! Every wait polls the views every 10 ms up to a fixed deadline; all traffic stays on
//! 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use lb_membership::{Membership, MembershipConfig, MembershipError, Sealer, Timers, View};

mod support;

use support::{KEY, OTHER_KEY, names};

const POLL: Duration = Duration::from_millis(10);

/// `n` distinct loopback addresses whose ports nobody uses right now (bound, read, released).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    // Hold every socket until all are chosen, so no port is handed out twice.
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    drop(sockets);
    assert_eq!(addrs.iter().collect::<BTreeSet<_>>().len(), n);
    addrs
}

/// Starts an agent; retries a bind that fails because the previous agent on that address
/// (aborted a moment ago) has not released its socket yet.
async fn start(node: &str, addr: SocketAddr, seeds: &[SocketAddr], key: &[u8]) -> Membership {
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..200 {
        let config = MembershipConfig {
            node: node.to_string(),
            bind: addr,
            advertise: addr,
            seeds: seeds.to_vec(),
            timers: Timers::default(),
            wire: lb_membership::WireFormat::Stamped,
        };
        match Membership::start(config, Sealer::from_secret(key).unwrap()).await {
            Ok(m) => return m,
            Err(MembershipError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("{node}: {e}"),
        }
    }
    panic!("{node}: could not bind {addr}");
}

fn view(m: &Membership) -> View {
    m.view().borrow().clone()
}

/// Polls until every agent's view satisfies `pred`; the time it took, or `None` at the
/// deadline.
async fn wait_all(
    agents: &[&Membership],
    within: Duration,
    pred: impl Fn(&View) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let rounds = within.as_millis() / POLL.as_millis() + 1;
    for _ in 0..rounds {
        if agents.iter().all(|m| pred(&view(m))) {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// Polls until each agent's view satisfies `pred` and returns, per agent, the time from
/// `since` at which it first did; panics with the views at the deadline.
async fn times_until(
    agents: &[(&str, &Membership)],
    since: Instant,
    within: Duration,
    pred: impl Fn(&View) -> bool,
) -> Vec<Duration> {
    let mut when: Vec<Option<Duration>> = vec![None; agents.len()];
    let rounds = within.as_millis() / POLL.as_millis() + 1;
    for _ in 0..rounds {
        for (i, (_, m)) in agents.iter().enumerate() {
            if when[i].is_none() && pred(&view(m)) {
                when[i] = Some(since.elapsed());
            }
        }
        if when.iter().all(Option::is_some) || since.elapsed() > within {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    agents
        .iter()
        .zip(when)
        .map(|((name, m), t)| {
            t.unwrap_or_else(|| {
                panic!(
                    "{name}: condition not met within {within:?}; view {:?}",
                    view(m)
                )
            })
        })
        .collect()
}

/// Three agents on three loopback ports, every one seeded with all three addresses, all
/// seeing each other.
async fn three() -> (Vec<SocketAddr>, Membership, Membership, Membership) {
    let addrs = free_addrs(3);
    let a = start("node-a", addrs[0], &addrs, KEY).await;
    let b = start("node-b", addrs[1], &addrs, KEY).await;
    let c = start("node-c", addrs[2], &addrs, KEY).await;
    let all = names(&["node-a", "node-b", "node-c"]);
    let took = wait_all(&[&a, &b, &c], Duration::from_secs(3), |v| v.alive == all).await;
    assert!(
        took.is_some(),
        "no agreement within 3 s: a {:?}, b {:?}, c {:?}",
        view(&a),
        view(&b),
        view(&c)
    );
    (addrs, a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_with_the_same_key_see_each_other_and_settle() {
    let addrs = free_addrs(3);
    let a = start("node-a", addrs[0], &addrs, KEY).await;
    // Before anyone answered, an agent knows only itself and is not settled (join_wait is
    // 2 s and it has seeds).
    let first = view(&a);
    assert_eq!(first.alive, names(&["node-a"]));
    assert!(!first.settled, "settled before hearing anyone: {first:?}");

    let b = start("node-b", addrs[1], &addrs, KEY).await;
    let c = start("node-c", addrs[2], &addrs, KEY).await;
    let all = names(&["node-a", "node-b", "node-c"]);
    let took = wait_all(&[&a, &b, &c], Duration::from_secs(3), |v| {
        v.alive == all && v.settled
    })
    .await;
    eprintln!("three agents agreed and settled after {took:?}");
    assert!(
        took.is_some(),
        "no agreement within 3 s: a {:?}, b {:?}, c {:?}",
        view(&a),
        view(&b),
        view(&c)
    );
    for m in [&a, &b, &c] {
        let counters = m.counters();
        assert!(counters.sent > 0 && counters.received > 0, "{counters:?}");
        assert_eq!(counters.refused, 0, "{counters:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_declared_down_in_under_a_second_and_may_come_back() {
    let (addrs, a, b, mut c) = three().await;
    let all = names(&["node-a", "node-b", "node-c"]);
    let mut worst = Duration::ZERO;
    for round in 1..=3 {
        // kill -9: the task is aborted, nothing is sent.
        drop(c);
        let killed = Instant::now();
        let times = times_until(
            &[("node-a", &a), ("node-b", &b)],
            killed,
            Duration::from_secs(3),
            |v| !v.alive.contains("node-c"),
        )
        .await;
        eprintln!(
            "round {round}: node-c declared down by node-a after {:?}, by node-b after {:?}",
            times[0], times[1]
        );
        let both = times[0].max(times[1]);
        worst = worst.max(both);
        assert_eq!(view(&a).alive, names(&["node-a", "node-b"]));
        assert_eq!(view(&b).alive, names(&["node-a", "node-b"]));

        // Restart on the same address: the new generation replaces the dead one.
        c = start("node-c", addrs[2], &addrs, KEY).await;
        let took = wait_all(&[&a, &b, &c], Duration::from_secs(3), |v| v.alive == all).await;
        assert!(
            took.is_some(),
            "round {round}: restarted node-c not accepted within 3 s: a {:?}, b {:?}, c {:?}",
            view(&a),
            view(&b),
            view(&c)
        );
        eprintln!("round {round}: restarted node-c seen by all after {took:?}");
    }
    eprintln!("worst crash detection: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "crash detection took {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_agent_is_dropped_at_once() {
    let (_addrs, a, b, c) = three().await;
    let leaving = Instant::now();
    c.leave().await;
    let times = times_until(
        &[("node-a", &a), ("node-b", &b)],
        leaving,
        Duration::from_secs(2),
        |v| !v.alive.contains("node-c"),
    )
    .await;
    eprintln!(
        "node-c left: dropped by node-a after {:?}, by node-b after {:?}",
        times[0], times[1]
    );
    for t in times {
        assert!(t < Duration::from_millis(300), "leave noticed after {t:?}");
    }
    assert_eq!(view(&a).alive, names(&["node-a", "node-b"]));
    assert_eq!(view(&b).alive, names(&["node-a", "node-b"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_another_key_neither_joins_nor_disturbs() {
    let addrs = free_addrs(3);
    let (a_addr, b_addr, x_addr) = (addrs[0], addrs[1], addrs[2]);
    let a = start("node-a", a_addr, &[a_addr, b_addr], KEY).await;
    let b = start("node-b", b_addr, &[a_addr, b_addr], KEY).await;
    let pair = names(&["node-a", "node-b"]);
    let took = wait_all(&[&a, &b], Duration::from_secs(3), |v| {
        v.alive == pair && v.settled
    })
    .await;
    assert!(took.is_some(), "a {:?}, b {:?}", view(&a), view(&b));
    assert_eq!(a.counters().refused + b.counters().refused, 0);

    let x = start("node-x", x_addr, &[a_addr, b_addr, x_addr], OTHER_KEY).await;
    let started = Instant::now();
    let only_x = names(&["node-x"]);
    let mut mismatch_at: Option<Duration> = None;
    let mut samples = 0u32;
    // Sample through the whole join_wait (2 s) and beyond: node-x must stay out, the pair
    // must stay exactly the pair, and node-x, told its key is wrong, must not settle even
    // once join_wait has passed (it would otherwise claim every layer-2 IP alone).
    let rounds = Duration::from_millis(2600).as_millis() / POLL.as_millis();
    for _ in 0..rounds {
        let (va, vb, vx) = (view(&a), view(&b), view(&x));
        samples += 1;
        assert_eq!(va.alive, pair, "node-a's view disturbed: {va:?}");
        assert_eq!(vb.alive, pair, "node-b's view disturbed: {vb:?}");
        assert!(va.settled && vb.settled, "a {va:?}, b {vb:?}");
        assert_eq!(vx.alive, only_x, "node-x joined with the wrong key: {vx:?}");
        assert!(
            !vx.settled,
            "node-x settled after {:?} with a key nobody shares: {vx:?}",
            started.elapsed()
        );
        if vx.key_mismatch {
            mismatch_at.get_or_insert(started.elapsed());
        }
        if started.elapsed() >= Duration::from_millis(2500) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let (ca, cb, cx) = (a.counters(), b.counters(), x.counters());
    eprintln!(
        "node-x told of the key mismatch after {mismatch_at:?} ({samples} samples); \
         counters: a {ca:?}, b {cb:?}, x {cx:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "sampled only {:?}",
        started.elapsed()
    );
    assert!(
        mismatch_at.is_some_and(|t| t < Duration::from_secs(2)),
        "node-x not told of the key mismatch within 2 s: {mismatch_at:?}"
    );
    let vx = view(&x);
    assert!(vx.key_mismatch && !vx.settled, "{vx:?}");
    assert!(cx.sent > 0, "node-x never sent anything: {cx:?}");
    assert!(cx.mismatch_notices > 0, "{cx:?}");
    assert_eq!(cx.received, 0, "node-x opened a datagram: {cx:?}");
    assert!(
        ca.refused + cb.refused > 0,
        "nobody refused node-x's datagrams: a {ca:?}, b {cb:?}"
    );
    assert_eq!(
        ca.mismatch_notices + cb.mismatch_notices,
        0,
        "a {ca:?}, b {cb:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_seeds_are_silent_settles_after_join_wait() {
    // The seed's port is free: nothing answers, nobody objects.
    let addrs = free_addrs(2);
    let a = start("node-a", addrs[0], &addrs, KEY).await;
    let started = Instant::now();
    let mut settled_at: Option<Duration> = None;
    let rounds = Duration::from_secs(3).as_millis() / POLL.as_millis();
    for _ in 0..rounds {
        let v = view(&a);
        assert_eq!(v.alive, names(&["node-a"]));
        assert!(!v.key_mismatch, "{v:?}");
        if v.settled {
            settled_at = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    eprintln!("alone with a silent seed: settled after {settled_at:?}");
    let settled_at = settled_at.expect("never settled although join_wait (2 s) passed");
    assert!(
        settled_at >= Duration::from_millis(1900),
        "settled after {settled_at:?}, before join_wait, though nobody answered"
    );
    assert!(settled_at < Duration::from_millis(2800), "{settled_at:?}");
    assert!(a.counters().sent > 0, "{:?}", a.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_started_alone_joins_when_its_seed_comes_up() {
    let addrs = free_addrs(2);
    let a = start("node-a", addrs[0], &addrs, KEY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alone = view(&a);
    assert_eq!(alone.alive, names(&["node-a"]));
    assert!(!alone.settled, "{alone:?}");

    let b = start("node-b", addrs[1], &addrs, KEY).await;
    let pair = names(&["node-a", "node-b"]);
    let took = wait_all(&[&a, &b], Duration::from_secs(3), |v| {
        v.alive == pair && v.settled
    })
    .await;
    eprintln!("late seed joined after {took:?}");
    assert!(took.is_some(), "a {:?}, b {:?}", view(&a), view(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rejoin_timer_alone_brings_in_a_seed_that_came_up_later() {
    // node-b has no seeds, so only node-a's periodic announcements to its missing seed can
    // join the two.
    let addrs = free_addrs(2);
    let a = start("node-a", addrs[0], &addrs, KEY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(view(&a).alive, names(&["node-a"]));

    let b = start("node-b", addrs[1], &[], KEY).await;
    let pair = names(&["node-a", "node-b"]);
    let took = wait_all(&[&a, &b], Duration::from_secs(3), |v| v.alive == pair).await;
    eprintln!("seedless late speaker joined after {took:?}");
    assert!(took.is_some(), "a {:?}, b {:?}", view(&a), view(&b));
}
