//! The speaker's metrics, under MetalLB's names. The runtime publishes a [`Snapshot`] after
//! every change and the collector renders it on each scrape, so counters read from the
//! backends are never copied into a second set of counters.
//!
//! In the OpenMetrics text, counters carry the `_total` suffix
//! (`metallb_layer2_requests_received_total`); Prometheus stores them under that name.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::runtime::http::Encode;

/// One announced (service, protocol, IP) on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// `namespace/name`.
    pub service: String,
    /// `layer2` or `bgp`.
    pub protocol: &'static str,
    /// The IP (for BGP, the prefix's address).
    pub ip: String,
}

/// Layer-2 counters of one IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Counters {
    /// The IP.
    pub ip: IpAddr,
    /// ARP requests / Neighbor Solicitations received for it.
    pub requests: u64,
    /// Replies sent.
    pub responses: u64,
    /// Gratuitous ARPs / unsolicited NAs sent.
    pub gratuitous: u64,
}

/// BGP figures of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFigures {
    /// `address:port`, as MetalLB labels peers.
    pub peer: String,
    /// The session is Established.
    pub up: bool,
    /// UPDATE messages sent.
    pub updates: u64,
    /// Prefixes advertised.
    pub announced: u64,
}

/// Everything the speaker exports, as last published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// This node.
    pub node: String,
    /// What it announces (shared with the speaker's loop: rebuilt only when it changes).
    pub announced: Arc<[Announced]>,
    /// Layer-2 counters per IP.
    pub layer2: Vec<L2Counters>,
    /// BGP peers.
    pub peers: Vec<PeerFigures>,
    /// Live speakers this node sees (itself included).
    pub members: u64,
    /// Membership datagrams refused (wrong key, tampered, malformed).
    pub membership_refused: u64,
    /// The configuration in use is valid.
    pub config_loaded: bool,
    /// The newest configuration could not be used; the last good one is in use.
    pub config_stale: bool,
}

#[derive(Debug, Default)]
struct Shared(Mutex<Snapshot>);

impl Collector for Shared {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        {
            let mut family = encoder.encode_descriptor(
                "metallb_speaker_announced",
                "Services being announced from this node",
                None,
                MetricType::Gauge,
            )?;
            for a in s.announced.iter() {
                let labels = [
                    ("ip", a.ip.as_str()),
                    ("node", s.node.as_str()),
                    ("protocol", a.protocol),
                    ("service", a.service.as_str()),
                ];
                ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
            }
        }
        type Pick = fn(&L2Counters) -> u64;
        let l2: [(&str, &str, Pick); 3] = [
            (
                "metallb_layer2_requests_received",
                "Number of layer2 requests received for owned IPs",
                |c| c.requests,
            ),
            (
                "metallb_layer2_responses_sent",
                "Number of layer2 responses sent for owned IPs",
                |c| c.responses,
            ),
            (
                "metallb_layer2_gratuitous_sent",
                "Number of gratuitous layer2 packets sent for owned IPs",
                |c| c.gratuitous,
            ),
        ];
        for (name, help, pick) in l2 {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for c in &s.layer2 {
                let ip = c.ip.to_string();
                let labels = [("ip", ip.as_str())];
                ConstCounter::new(pick(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        type Figure = fn(&PeerFigures) -> u64;
        let bgp: [(&str, &str, MetricType, Figure); 3] = [
            (
                "metallb_bgp_session_up",
                "BGP session state (1 is up, 0 is down)",
                MetricType::Gauge,
                |p| u64::from(p.up),
            ),
            (
                "metallb_bgp_updates",
                "Number of BGP UPDATE messages sent",
                MetricType::Counter,
                |p| p.updates,
            ),
            (
                "metallb_bgp_announced_prefixes_total",
                "Number of prefixes currently being advertised on the BGP session",
                MetricType::Gauge,
                |p| p.announced,
            ),
        ];
        for (name, help, kind, figure) in bgp {
            let counter = matches!(kind, MetricType::Counter);
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for p in &s.peers {
                let labels = [("peer", p.peer.as_str())];
                let value = figure(p);
                if counter {
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                } else {
                    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let gauges: [(&str, &str, i64); 3] = [
            (
                "lb_speaker_members",
                "Live speakers this node sees, itself included",
                i64::try_from(s.members).unwrap_or(i64::MAX),
            ),
            (
                "metallb_k8s_client_config_loaded_bool",
                "1 if the configuration in use is valid",
                i64::from(s.config_loaded),
            ),
            (
                "metallb_k8s_client_config_stale_bool",
                "1 if the newest configuration could not be used and an older one is in use",
                i64::from(s.config_stale),
            ),
        ];
        for (name, help, value) in gauges {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(family)?;
        }
        let family = encoder.encode_descriptor(
            "lb_speaker_membership_refused",
            "Membership datagrams refused: wrong key, tampered or malformed",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.membership_refused).encode(family)?;
        Ok(())
    }
}

/// The speaker's metrics registry.
#[derive(Debug)]
pub struct SpeakerMetrics {
    registry: Registry,
    shared: Arc<Shared>,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SpeakerMetrics {
    /// An empty registry (nothing announced yet).
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(&shared)));
        Self { registry, shared }
    }

    /// Replaces what the metrics show.
    pub fn publish(&self, snapshot: Snapshot) {
        *self
            .shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
    }

    /// What the metrics show now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Encode for SpeakerMetrics {
    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
