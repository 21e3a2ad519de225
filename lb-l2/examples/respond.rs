//! Answers ARP and Neighbor Solicitations for the given IPs until SIGINT or SIGTERM.
//!
//! ```text
//! cargo run -p lb-l2 --example respond -- --interface eth0 --ip 203.0.113.20 --ip 2001:db8:ff::20
//! ```
//!
//! Without `--interface` it answers on every eligible interface (up, ARP-capable, not a bond
//! or bridge port, not matching MetalLB's default exclude list); interfaces that appear or
//! come up later are picked up. On start (and whenever an interface starts answering) it
//! sends the takeover announcements: gratuitous ARP / unsolicited NA.
//!
//! Signals: SIGUSR1 withdraws every IP (stops answering) and keeps running; SIGUSR2 announces
//! them again after a SIGUSR1 (with new takeover rounds; IPs still announced get none);
//! SIGINT / SIGTERM stop. Per-IP and per-interface counters are logged after each signal.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lb_core::{Announcement, Announcer, L2Attributes, ServiceKey};
use lb_l2::{Responder, ResponderConfig, TakeoverSchedule};

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(format!(
            "{ip} cannot be announced: it is unspecified, multicast or loopback"
        ));
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Err(format!(
            "{ip} cannot be announced: it is the broadcast address"
        ));
    }
    Ok(ip)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let ms: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if ms == 0 {
        return Err("the takeover interval must be at least 1 ms".into());
    }
    Ok(Duration::from_millis(ms))
}

/// Answer ARP and NDP for service IPs on this host's links.
#[derive(Debug, Parser)]
#[command(name = "respond")]
struct Args {
    /// Interface to answer on (repeatable); all eligible interfaces when left out.
    #[arg(long = "interface", value_name = "IFACE")]
    interfaces: Vec<String>,
    /// IP to answer for (repeatable, at least one).
    #[arg(long = "ip", value_name = "IP", required = true, value_parser = parse_ip)]
    ips: Vec<IpAddr>,
    /// Milliseconds between takeover rounds.
    #[arg(long, value_name = "MS", default_value = "1100", value_parser = parse_interval)]
    takeover_interval: Duration,
    /// Takeover rounds, the immediate one included (0: none).
    #[arg(long, value_name = "N", default_value_t = 5)]
    takeover_rounds: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Also on stderr directly, so the reason shows even with logging turned off.
            eprintln!("respond: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sigusr2 = signal(SignalKind::user_defined2())?;

    let config = ResponderConfig {
        only_interfaces: args.interfaces.clone(),
        takeover: TakeoverSchedule {
            interval: args.takeover_interval,
            rounds: args.takeover_rounds,
        },
        ..ResponderConfig::default()
    };
    let responder = Responder::start(config).await?;
    let known = responder.interfaces();
    for name in &args.interfaces {
        let Some(status) = known.iter().find(|s| s.name == *name) else {
            anyhow::bail!("no interface named {name:?} in this network namespace");
        };
        if !status.active {
            tracing::warn!(
                interface = %name,
                reason = status.reason.as_deref().unwrap_or("unknown"),
                "interface does not answer yet; it will when it becomes eligible"
            );
        }
    }
    let service = ServiceKey::new("example", "respond");
    let announcement = Announcement {
        service: service.clone(),
        ips: args.ips.clone(),
        l2: Some(L2Attributes::default()),
        bgp: None,
    };
    responder.apply(&service, Some(&announcement)).await?;
    tracing::info!(ips = ?args.ips, "announced");
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sigusr1.recv() => {
                responder.apply(&service, None).await?;
                tracing::info!("SIGUSR1: withdrew every IP");
            }
            _ = sigusr2.recv() => {
                responder.apply(&service, Some(&announcement)).await?;
                tracing::info!(ips = ?args.ips, "SIGUSR2: announced again");
            }
        }
        log_counters(&responder);
    }
    log_counters(&responder);
    responder.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn log_counters(responder: &Responder) {
    for (ip, c) in responder.counters() {
        tracing::info!(
            %ip,
            requests = c.requests_received,
            responses = c.responses_sent,
            gratuitous = c.gratuitous_sent,
            conflicts = c.conflicts,
            "counters"
        );
    }
    for s in responder.interfaces().iter().filter(|s| s.active) {
        tracing::info!(
            interface = %s.name,
            frames = s.frames_received,
            replies = s.replies_sent,
            gratuitous = s.gratuitous_sent,
            drops = ?s.drops,
            "interface counters"
        );
    }
}
