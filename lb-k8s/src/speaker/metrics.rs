//! The speaker's metrics, under MetalLB's names. The runtime publishes a [`Snapshot`] after
//! every change and the collector renders it on each scrape, so counters read from the
//! backends are never copied into a second set of counters.
//!
//! In the OpenMetrics text, counters carry the `_total` suffix
//! (`metallb_layer2_requests_received_total`); Prometheus stores them under that name.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::http::Encode;
use lb_core::ServiceKey;
use lb_metallb::announce::NodeAnnouncements;

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

/// BFD figures of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdFigures {
    /// The peer's address, as MetalLB labels BFD peers.
    pub peer: String,
    /// The session is Up.
    pub up: bool,
    /// Control packets received.
    pub control_in: u64,
    /// Control packets sent.
    pub control_out: u64,
    /// Times the session went Up.
    pub up_events: u64,
    /// Times the session left Up.
    pub down_events: u64,
}

/// Everything the speaker exports, as last published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// This node.
    pub node: String,
    /// What it announces: the speaker's decision itself, shared (the labels are written
    /// at scrape time, so thousands of announcements are not kept twice).
    pub announced: Arc<NodeAnnouncements>,
    /// BGP peers.
    pub peers: Vec<PeerFigures>,
    /// BFD sessions.
    pub bfd: Vec<BfdFigures>,
    /// Live speakers this node sees (itself included).
    pub members: u64,
    /// The membership layer's datagram counters (zero without membership).
    pub membership: lb_membership::Counters,
    /// The configuration in use is valid.
    pub config_loaded: bool,
    /// The newest configuration could not be used; the last good one is in use.
    pub config_stale: bool,
}

/// Reads the layer-2 counters at scrape time.
pub type Layer2Source = Box<dyn Fn() -> Vec<L2Counters> + Send + Sync>;

#[derive(Default)]
struct Shared {
    snapshot: Mutex<Snapshot>,
    layer2: Mutex<Option<Layer2Source>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The (service, protocol, IP) triples a decision announces, each once, in order: layer 2
/// first, then BGP with the prefix's address as the IP (two advertisements of one Service
/// with different aggregation lengths can give one address twice, not always in a row).
fn announced(n: &NodeAnnouncements) -> impl Iterator<Item = (&ServiceKey, &'static str, IpAddr)> {
    let l2 = n.l2.iter().map(|e| (&e.service, "layer2", e.ip));
    let bgp = n.bgp.iter().map(|e| (&e.service, "bgp", e.prefix.addr()));
    let mut seen = std::collections::HashSet::new();
    l2.chain(bgp).filter(move |t| seen.insert(*t))
}

/// A metric with one sample per peer: name, help, type, and the figure of a row.
type PerPeer<T> = (&'static str, &'static str, MetricType, fn(&T) -> u64);

/// Encodes each of `metrics` with one sample per row of `rows`, labelled `peer`.
fn encode_per_peer<T>(
    encoder: &mut DescriptorEncoder,
    metrics: &[PerPeer<T>],
    rows: &[T],
    peer: fn(&T) -> &str,
) -> Result<(), std::fmt::Error> {
    for (name, help, kind, figure) in metrics {
        let counter = matches!(kind, MetricType::Counter);
        let mut family = encoder.encode_descriptor(name, help, None, *kind)?;
        for row in rows {
            let labels = [("peer", peer(row))];
            let value = figure(row);
            if counter {
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            } else {
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

impl Collector for Shared {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = lock(&self.snapshot).clone();
        let layer2 = lock(&self.layer2).as_ref().map(|f| f()).unwrap_or_default();
        {
            let mut family = encoder.encode_descriptor(
                "metallb_speaker_announced",
                "Services being announced from this node",
                None,
                MetricType::Gauge,
            )?;
            let (mut ip, mut service) = (String::new(), String::new());
            for (key, protocol, address) in announced(&s.announced) {
                ip.clear();
                service.clear();
                // Writing into a String cannot fail.
                let _ = write!(ip, "{address}");
                let _ = write!(service, "{key}");
                let labels = [
                    ("ip", ip.as_str()),
                    ("node", s.node.as_str()),
                    ("protocol", protocol),
                    ("service", service.as_str()),
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
            for c in &layer2 {
                let ip = c.ip.to_string();
                let labels = [("ip", ip.as_str())];
                ConstCounter::new(pick(c)).encode(family.encode_family(&labels)?)?;
            }
        }
        let bgp: [PerPeer<PeerFigures>; 3] = [
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
        encode_per_peer(&mut encoder, &bgp, &s.peers, |p| p.peer.as_str())?;
        // MetalLB's BFD metrics (its FRR mode's names). There is no echo function: its
        // counters stay at zero.
        let bfd: [PerPeer<BfdFigures>; 7] = [
            (
                "metallb_bfd_session_up",
                "BFD session state (1 is up, 0 is down)",
                MetricType::Gauge,
                |b| u64::from(b.up),
            ),
            (
                "metallb_bfd_control_packet_input",
                "Number of received BFD control packets",
                MetricType::Counter,
                |b| b.control_in,
            ),
            (
                "metallb_bfd_control_packet_output",
                "Number of sent BFD control packets",
                MetricType::Counter,
                |b| b.control_out,
            ),
            (
                "metallb_bfd_echo_packet_input",
                "Number of received BFD echo packets",
                MetricType::Counter,
                |_| 0,
            ),
            (
                "metallb_bfd_echo_packet_output",
                "Number of sent BFD echo packets",
                MetricType::Counter,
                |_| 0,
            ),
            (
                "metallb_bfd_session_up_events",
                "Number of BFD session up events",
                MetricType::Counter,
                |b| b.up_events,
            ),
            (
                "metallb_bfd_session_down_events",
                "Number of BFD session down events",
                MetricType::Counter,
                |b| b.down_events,
            ),
        ];
        encode_per_peer(&mut encoder, &bfd, &s.bfd, |b| b.peer.as_str())?;
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
        let m = &s.membership;
        let counters = [
            (
                "lb_speaker_membership_refused",
                "Membership datagrams refused: wrong key, tampered, malformed or of a version not read",
                m.refused,
            ),
            (
                "lb_speaker_membership_replayed",
                "Authenticated membership datagrams refused as replays (seen before)",
                m.replayed,
            ),
            (
                "lb_speaker_membership_stale",
                "Authenticated membership datagrams refused because their clock is more than 30 s from ours",
                m.stale,
            ),
            (
                "lb_speaker_membership_unverified_notices",
                "Key-mismatch notices ignored because they echo no datagram we sent there",
                m.unverified_notices,
            ),
            (
                "lb_speaker_membership_dropped",
                "Membership datagrams dropped because the socket had no room",
                m.dropped,
            ),
        ];
        for (name, help, value) in counters {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(family)?;
        }
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
        *lock(&self.shared.snapshot) = snapshot;
    }

    /// Where the layer-2 counters are read on each scrape (`None`: no layer-2 counters).
    /// Read live rather than published, so a copy of every IP's counters is not rebuilt
    /// between scrapes.
    pub fn set_layer2_source(&self, source: Option<Layer2Source>) {
        *lock(&self.shared.layer2) = source;
    }

    /// What the metrics show now.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.snapshot).clone()
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use lb_metallb::announce::fixtures::{bgp, l2};

    fn lines<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .collect()
    }

    #[test]
    fn bgp_and_bfd_figures_are_rendered_per_peer_under_metallb_names() {
        let m = SpeakerMetrics::new();
        m.publish(Snapshot {
            peers: vec![PeerFigures {
                peer: "192.0.2.1:179".into(),
                up: true,
                updates: 7,
                announced: 3,
            }],
            bfd: vec![BfdFigures {
                peer: "192.0.2.1".into(),
                up: false,
                control_in: 10,
                control_out: 12,
                up_events: 2,
                down_events: 1,
            }],
            ..Snapshot::default()
        });
        let text = m.encode();
        for (metric, want) in [
            ("metallb_bgp_session_up", r#"{peer="192.0.2.1:179"} 1"#),
            ("metallb_bgp_updates_total", r#"{peer="192.0.2.1:179"} 7"#),
            ("metallb_bfd_session_up", r#"{peer="192.0.2.1"} 0"#),
            (
                "metallb_bfd_control_packet_input_total",
                r#"{peer="192.0.2.1"} 10"#,
            ),
            (
                "metallb_bfd_control_packet_output_total",
                r#"{peer="192.0.2.1"} 12"#,
            ),
            (
                "metallb_bfd_echo_packet_input_total",
                r#"{peer="192.0.2.1"} 0"#,
            ),
            (
                "metallb_bfd_echo_packet_output_total",
                r#"{peer="192.0.2.1"} 0"#,
            ),
            (
                "metallb_bfd_session_up_events_total",
                r#"{peer="192.0.2.1"} 2"#,
            ),
            (
                "metallb_bfd_session_down_events_total",
                r#"{peer="192.0.2.1"} 1"#,
            ),
        ] {
            assert_eq!(lines(&text, metric), [format!("{metric}{want}")], "{text}");
        }
    }

    #[test]
    fn announced_services_are_rendered_from_the_shared_decision_each_once() {
        let m = SpeakerMetrics::new();
        let decision = NodeAnnouncements {
            name: "n1".into(),
            l2: vec![
                l2("default/a", "192.0.2.1", &[]),
                l2("default/b", "2001:db8::2", &[]),
            ],
            // Two advertisements of one prefix (one per peer group) are one announced IP, and
            // so are a /24 and a /32 with the same address, even with another in between.
            bgp: vec![
                bgp("default/c", "198.51.100.0/24", "p1"),
                bgp("default/c", "198.51.100.0/24", "p2"),
                bgp("default/c", "198.51.100.7/32", "p1"),
                bgp("default/c", "198.51.100.0/32", "p1"),
            ],
            not_announced: Vec::new(),
        };
        m.publish(Snapshot {
            node: "n1".into(),
            announced: Arc::new(decision),
            ..Snapshot::default()
        });
        let text = m.encode();
        assert_eq!(
            lines(&text, "metallb_speaker_announced"),
            [
                r#"metallb_speaker_announced{ip="192.0.2.1",node="n1",protocol="layer2",service="default/a"} 1"#,
                r#"metallb_speaker_announced{ip="2001:db8::2",node="n1",protocol="layer2",service="default/b"} 1"#,
                r#"metallb_speaker_announced{ip="198.51.100.0",node="n1",protocol="bgp",service="default/c"} 1"#,
                r#"metallb_speaker_announced{ip="198.51.100.7",node="n1",protocol="bgp",service="default/c"} 1"#,
            ],
            "{text}"
        );
    }

    #[test]
    fn layer2_counters_are_read_from_the_source_at_each_scrape() {
        let m = SpeakerMetrics::new();
        assert!(
            lines(&m.encode(), "metallb_layer2_requests_received_total").is_empty(),
            "no source, no counters"
        );
        let requests = Arc::new(AtomicU64::new(3));
        let seen = Arc::clone(&requests);
        m.set_layer2_source(Some(Box::new(move || {
            vec![L2Counters {
                ip: "192.0.2.1".parse().unwrap(),
                requests: seen.load(Ordering::Relaxed),
                responses: 2,
                gratuitous: 1,
            }]
        })));
        let text = m.encode();
        assert_eq!(
            lines(&text, "metallb_layer2_requests_received_total"),
            [r#"metallb_layer2_requests_received_total{ip="192.0.2.1"} 3"#],
            "{text}"
        );
        assert_eq!(
            lines(&text, "metallb_layer2_gratuitous_sent_total"),
            [r#"metallb_layer2_gratuitous_sent_total{ip="192.0.2.1"} 1"#],
            "{text}"
        );
        // Nothing was published in between: the next scrape reads the counters again.
        requests.store(7, Ordering::Relaxed);
        assert_eq!(
            lines(&m.encode(), "metallb_layer2_requests_received_total"),
            [r#"metallb_layer2_requests_received_total{ip="192.0.2.1"} 7"#]
        );
        m.set_layer2_source(None);
        assert!(lines(&m.encode(), "metallb_layer2_responses_sent_total").is_empty());
    }
}
