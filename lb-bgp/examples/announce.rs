//! Announces prefixes to BGP peers until SIGINT or SIGTERM.
//!
//! ```text
//! cargo run -p lb-bgp --example announce -- --local-asn 64512 --router-id 198.51.100.11 \
//!     --peer 64500@198.51.100.1 --prefix 203.0.113.10/32 --prefix 2001:db8:ff::10/128
//! ```
//!
//! Every session state change is logged on stderr. The speaker also accepts connections
//! from the peers on port 179 when it can bind it (collisions are resolved per RFC 4271).

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use lb_bgp::rib::RouteAttributes;
use lb_bgp::{PeerConfig, Route, Speaker, SpeakerConfig};
use lb_core::{Community, LargeCommunity};

/// A peer given as `ASN@ADDR`, `ASN@ADDR:PORT` or `ASN@[V6ADDR]:PORT`.
#[derive(Debug, Clone)]
struct PeerArg {
    asn: u32,
    address: IpAddr,
    port: u16,
}

fn parse_peer(s: &str) -> Result<PeerArg, String> {
    let (asn, addr) = s
        .split_once('@')
        .ok_or("expected ASN@ADDR, for example 64500@198.51.100.1")?;
    let asn: u32 = asn
        .parse()
        .map_err(|_| format!("ASN {asn:?} is not a number in 1..=4294967295"))?;
    if asn == 0 {
        return Err("ASN 0 is reserved".into());
    }
    if let Ok(address) = addr.parse::<IpAddr>() {
        return Ok(PeerArg {
            asn,
            address,
            port: 179,
        });
    }
    let sock: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address (or ADDR:PORT)"))?;
    Ok(PeerArg {
        asn,
        address: sock.ip(),
        port: sock.port(),
    })
}

fn parse_hold_time(s: &str) -> Result<u16, String> {
    let v: u16 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v == 1 || v == 2 {
        return Err("hold time must be 0 or at least 3 seconds".into());
    }
    Ok(v)
}

fn parse_restart_time(s: &str) -> Result<u16, String> {
    let v: u16 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v > 4095 {
        return Err("graceful restart time is at most 4095 seconds".into());
    }
    Ok(v)
}

fn parse_password(s: &str) -> Result<String, String> {
    if s.len() > lb_bgp::speaker::MD5_MAX_KEY_LEN {
        return Err("TCP MD5 password is at most 80 bytes".into());
    }
    Ok(s.to_owned())
}

fn parse_ttl(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("{s:?} is not a TTL in 1..=255")),
    }
}

/// Announce prefixes to BGP peers.
#[derive(Debug, Parser)]
#[command(name = "announce")]
struct Args {
    /// Our AS number.
    #[arg(long)]
    local_asn: u32,
    /// Our BGP identifier.
    #[arg(long)]
    router_id: Ipv4Addr,
    /// A peer, as ASN@ADDR (repeat for more peers).
    #[arg(long = "peer", value_parser = parse_peer, required = true)]
    peers: Vec<PeerArg>,
    /// Local address to connect from.
    #[arg(long)]
    source: Option<IpAddr>,
    /// Hold time in seconds (0, or at least 3).
    #[arg(long, value_parser = parse_hold_time, default_value = "90")]
    hold_time: u16,
    /// TCP MD5 password for every peer.
    #[arg(long, value_parser = parse_password)]
    password: Option<String>,
    /// TTL for eBGP sessions to peers more than one hop away.
    #[arg(long, value_parser = parse_ttl)]
    ebgp_multihop: Option<u8>,
    /// Enable graceful restart with this restart time (seconds).
    #[arg(long, value_parser = parse_restart_time)]
    graceful_restart: Option<u16>,
    /// A prefix to announce (repeat for more).
    #[arg(long = "prefix", required = true)]
    prefixes: Vec<IpNet>,
    /// A community to attach, as A:B (repeat for more).
    #[arg(long = "community")]
    communities: Vec<Community>,
    /// A large community to attach, as A:B:C (repeat for more).
    #[arg(long = "large-community")]
    large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF for iBGP peers.
    #[arg(long)]
    local_pref: Option<u32>,
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
        Err(err) => {
            eprintln!("announce: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    let config = SpeakerConfig {
        router_id: Some(args.router_id),
        listen_port: Some(179),
    };
    let speaker = match Speaker::start(config) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!("{err}; only dialling out");
            Speaker::start(SpeakerConfig {
                router_id: Some(args.router_id),
                listen_port: None,
            })?
        }
    };
    let mut peers = Vec::new();
    for p in &args.peers {
        let mut peer = PeerConfig::new(p.address.to_string(), p.address, args.local_asn, p.asn);
        peer.port = p.port;
        peer.source = args.source.filter(|s| s.is_ipv4() == p.address.is_ipv4());
        peer.hold_time = args.hold_time;
        peer.password = args.password.clone();
        peer.ebgp_multihop = args.ebgp_multihop;
        peer.graceful_restart = args.graceful_restart;
        peers.push(peer);
    }
    speaker.set_peers(peers)?;
    let attributes = RouteAttributes {
        local_pref: args.local_pref,
        communities: args.communities.clone(),
        large_communities: args.large_communities.clone(),
        ..RouteAttributes::default()
    };
    speaker.set_routes(
        args.prefixes
            .iter()
            .map(|p| Route {
                prefix: p.trunc(),
                attributes: attributes.clone(),
                peers: vec![],
            })
            .collect(),
    );
    tracing::info!(
        peers = args.peers.len(),
        prefixes = args.prefixes.len(),
        "announcing; SIGINT or SIGTERM to stop"
    );
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    tracing::info!("stopping: Cease / Administrative Shutdown to every peer");
    speaker
        .shutdown("lb-bgp announce stopped", Duration::from_secs(3))
        .await;
    Ok(())
}
