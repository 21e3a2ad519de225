//! `BGPPeer` and `BFDProfile` objects: addresses and timers parsed, passwords resolved from
//! Secrets, and the features our native speaker does not implement rejected by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use lb_alloc::LabelSelector;
use serde::Serialize;

use super::selector::{At, convert_list};
use super::{ConfigError, name_of};
use crate::crd::{BFDProfile, v1beta2};
use crate::duration::{DurationError, check_hold_time, parse_whole_seconds};

const KIND: &str = "BGPPeer";
/// Hold time when a peer sets none (MetalLB's native default).
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// BGP's port.
pub const DEFAULT_PORT: u16 = 179;

/// A validated BGP peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    /// Object name.
    pub name: String,
    /// Our ASN.
    pub my_asn: u32,
    /// The peer's ASN.
    pub peer_asn: u32,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// Proposed hold time (0: no keepalives, no hold timer).
    pub hold_time: Duration,
    /// Keepalive interval (a third of the hold time unless set).
    pub keepalive_time: Duration,
    /// Time between connection attempts, when set.
    pub connect_time: Option<Duration>,
    /// Router ID, when set.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that open the session (empty: all).
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password (from `password` or the Secret).
    #[serde(skip)]
    pub password: Option<String>,
    /// eBGP multihop.
    pub ebgp_multi_hop: bool,
    /// Graceful restart.
    pub graceful_restart: bool,
    /// Both address families on one session.
    pub dual_stack_address_family: bool,
    /// Name of the BFD profile.
    pub bfd_profile: Option<String>,
}

impl Peer {
    /// True for iBGP (same ASN both sides): LOCAL_PREF is sent, our ASN is not prepended.
    pub fn is_ibgp(&self) -> bool {
        self.my_asn == self.peer_asn
    }
}

/// A validated BFD profile, FRR's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BfdProfile {
    /// Object name.
    pub name: String,
    /// Receive interval, ms.
    pub receive_interval: u32,
    /// Transmit interval, ms.
    pub transmit_interval: u32,
    /// Detect multiplier.
    pub detect_multiplier: u32,
    /// Echo interval, ms.
    pub echo_interval: u32,
    /// Echo mode.
    pub echo_mode: bool,
    /// Passive mode.
    pub passive_mode: bool,
    /// Minimum TTL, multihop only.
    pub minimum_ttl: Option<u32>,
}

/// Validates the BFD profiles: names unique, values in range.
pub(super) fn bfd_profiles(
    objects: &[BFDProfile],
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, BfdProfile> {
    const KIND: &str = "BFDProfile";
    let mut out = BTreeMap::new();
    for object in objects {
        let name = name_of(&object.metadata);
        let s = &object.spec;
        let mut range = |field: &str, value: Option<u32>, lo: u32, hi: u32, default: u32| {
            let v = value.unwrap_or(default);
            if !(lo..=hi).contains(&v) {
                errors.push(ConfigError::new(
                    KIND,
                    name,
                    format!("spec.{field}"),
                    format!("{v} is outside {lo}..={hi}"),
                ));
            }
            v
        };
        let profile = BfdProfile {
            name: name.to_string(),
            receive_interval: range("receiveInterval", s.receive_interval, 10, 60000, 300),
            transmit_interval: range("transmitInterval", s.transmit_interval, 10, 60000, 300),
            detect_multiplier: range("detectMultiplier", s.detect_multiplier, 2, 255, 3),
            echo_interval: range("echoInterval", s.echo_interval, 10, 60000, 50),
            echo_mode: s.echo_mode.unwrap_or(false),
            passive_mode: s.passive_mode.unwrap_or(false),
            minimum_ttl: s
                .minimum_ttl
                .map(|t| range("minimumTtl", Some(t), 1, 254, 254)),
        };
        if profile.echo_mode {
            errors.push(ConfigError::new(
                KIND,
                name,
                "spec.echoMode",
                "echo mode is not implemented: lb's BFD runs on control packets alone (set it to false; shorter intervals give the same detection time)",
            ));
        }
        if out.contains_key(name) {
            errors.push(ConfigError::new(
                KIND,
                name,
                "metadata.name",
                "another BFDProfile has the same name",
            ));
        } else if !name.is_empty() {
            out.insert(name.to_string(), profile);
        }
    }
    out
}

/// Whole seconds of an optional duration field, or the error.
fn seconds(value: Option<&str>) -> Result<Option<Duration>, DurationError> {
    value.map(parse_whole_seconds).transpose()
}

/// Validates and translates the peers (sorted by name).
pub(super) fn build(
    objects: &[v1beta2::BGPPeer],
    secrets: &[Secret],
    bfd: &BTreeMap<String, BfdProfile>,
    namespace: &str,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Peer> {
    let mut out: Vec<Peer> = Vec::new();
    for object in objects {
        let name = name_of(&object.metadata);
        let s = &object.spec;
        let before = errors.len();
        let err = |field: &str, reason: String| ConfigError::new(KIND, name, field, reason);
        let unsupported = |field: &str| {
            err(
                field,
                format!(
                    "{field} is not supported by lb's BGP speaker (it is an FRR-only feature of MetalLB)"
                ),
            )
        };

        if s.my_asn == 0 {
            errors.push(err("spec.myASN", "myASN must not be 0".into()));
        }
        let peer_asn = match (s.peer_asn, s.dynamic_asn.as_deref()) {
            (Some(asn), None) => asn,
            (None, None) => {
                errors.push(err(
                    "spec.peerASN",
                    "one of peerASN and dynamicASN is required".into(),
                ));
                0
            }
            (Some(_), Some(_)) => {
                errors.push(err(
                    "spec.dynamicASN",
                    "peerASN and dynamicASN are mutually exclusive".into(),
                ));
                0
            }
            (None, Some(mode)) => {
                if mode == "internal" || mode == "external" {
                    errors.push(unsupported("spec.dynamicASN"));
                } else {
                    errors.push(err(
                        "spec.dynamicASN",
                        format!("{mode:?} is neither internal nor external"),
                    ));
                }
                0
            }
        };
        if s.ebgp_multi_hop && s.peer_asn == Some(s.my_asn) {
            errors.push(err(
                "spec.ebgpMultiHop",
                "ebgpMultiHop is for eBGP only, but peerASN equals myASN".into(),
            ));
        }
        if s.local_asn.is_some() {
            errors.push(unsupported("spec.localASN"));
        }
        if s.vrf.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(unsupported("spec.vrf"));
        }
        let address = match (s.peer_address.as_deref(), s.interface.as_deref()) {
            (Some(a), None) => a
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| err("spec.peerAddress", format!("{a:?} is not an IP address"))),
            (None, None) => Err(err(
                "spec.peerAddress",
                "one of peerAddress and interface is required".into(),
            )),
            (Some(_), Some(_)) => Err(err(
                "spec.interface",
                "peerAddress and interface are mutually exclusive".into(),
            )),
            (None, Some(_)) => Err(unsupported("spec.interface")),
        };
        let address = address.map_err(|e| errors.push(e)).ok();
        let source_address = s.source_address.as_deref().and_then(|a| {
            a.trim()
                .parse::<IpAddr>()
                .map_err(|_| {
                    errors.push(err(
                        "spec.sourceAddress",
                        format!("{a:?} is not an IP address"),
                    ));
                })
                .ok()
        });
        let router_id = s.router_id.as_deref().and_then(|a| {
            a.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| {
                    errors.push(err(
                        "spec.routerID",
                        format!("{a:?} is not an IPv4 address"),
                    ));
                })
                .ok()
        });
        let port = s.peer_port.unwrap_or(DEFAULT_PORT);
        if port == 0 || port > 16384 {
            errors.push(err("spec.peerPort", format!("{port} is outside 1..=16384")));
        }

        let hold = seconds(s.hold_time.as_deref())
            .map_err(|r| errors.push(err("spec.holdTime", r.to_string())))
            .ok()
            .flatten();
        let keepalive = seconds(s.keepalive_time.as_deref())
            .map_err(|r| errors.push(err("spec.keepaliveTime", r.to_string())))
            .ok()
            .flatten();
        let (hold_time, keepalive_time) = match (hold, keepalive) {
            (Some(h), Some(k)) => (h, k),
            (Some(h), None) => (h, h / 3),
            (None, Some(k)) => (k * 3, k),
            (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
        };
        if let Err(reason) = check_hold_time(hold_time) {
            errors.push(err("spec.holdTime", reason.to_string()));
        }
        if keepalive_time > hold_time {
            errors.push(err(
                "spec.keepaliveTime",
                format!(
                    "{}s is longer than the hold time {}s",
                    keepalive_time.as_secs(),
                    hold_time.as_secs()
                ),
            ));
        }
        let connect_time = seconds(s.connect_time.as_deref())
            .map_err(|r| errors.push(err("spec.connectTime", r.to_string())))
            .ok()
            .flatten();
        if let Some(ct) = connect_time
            && !(1..=65535).contains(&ct.as_secs())
        {
            errors.push(err(
                "spec.connectTime",
                format!("{}s is outside 1s..=65535s", ct.as_secs()),
            ));
        }
        let node_selectors = convert_list(
            &At {
                kind: KIND,
                name,
                field: "spec.nodeSelectors",
            },
            &s.node_selectors,
            errors,
        );
        let password = password(name, s, secrets, namespace, errors);
        if let Some(profile) = s.bfd_profile.as_deref().filter(|p| !p.is_empty())
            && !bfd.contains_key(profile)
        {
            errors.push(ConfigError::transient(
                KIND,
                name,
                "spec.bfdProfile",
                format!("no BFDProfile named {profile:?}"),
            ));
        }
        if s.disable_mp {
            warnings.push(format!(
                "BGPPeer/{name}: spec.disableMP is deprecated and has no effect"
            ));
        }
        if errors.len() > before {
            continue;
        }
        let Some(address) = address else { continue };
        let peer = Peer {
            name: name.to_string(),
            my_asn: s.my_asn,
            peer_asn,
            address,
            port,
            source_address,
            hold_time,
            keepalive_time,
            connect_time,
            router_id,
            node_selectors,
            password,
            ebgp_multi_hop: s.ebgp_multi_hop,
            graceful_restart: s.enable_graceful_restart,
            dual_stack_address_family: s.dual_stack_address_family,
            bfd_profile: s.bfd_profile.clone().filter(|p| !p.is_empty()),
        };
        if let Some(same) = out.iter().find(|o| {
            o.address == peer.address
                && o.port == peer.port
                && o.node_selectors == peer.node_selectors
        }) {
            errors.push(err(
                "spec.peerAddress",
                format!(
                    "{}:{} is already the peer of BGPPeer/{} on the same nodes",
                    peer.address, peer.port, same.name
                ),
            ));
            continue;
        }
        out.push(peer);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The TCP MD5 password: inline, or from a `kubernetes.io/basic-auth` Secret's `password`.
fn password(
    name: &str,
    s: &v1beta2::BGPPeerSpec,
    secrets: &[Secret],
    namespace: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    let Some(reference) = s.password_secret.as_ref().filter(|r| r.name.is_some()) else {
        // No Secret: the inline password, if any.
        return s.password.clone().filter(|p| !p.is_empty());
    };
    if s.password.is_some() {
        errors.push(ConfigError::new(
            KIND,
            name,
            "spec.passwordSecret",
            "password and passwordSecret are mutually exclusive",
        ));
        return None;
    }
    let secret_name = reference.name.as_deref().unwrap_or("");
    let secret_ns = reference.namespace.as_deref().unwrap_or(namespace);
    let Some(secret) = secrets.iter().find(|x| {
        x.metadata.name.as_deref() == Some(secret_name)
            && x.metadata.namespace.as_deref().unwrap_or(namespace) == secret_ns
    }) else {
        errors.push(ConfigError::transient(
            KIND,
            name,
            "spec.passwordSecret",
            format!("Secret {secret_ns}/{secret_name} does not exist"),
        ));
        return None;
    };
    if secret.type_.as_deref() != Some("kubernetes.io/basic-auth") {
        errors.push(ConfigError::new(
            KIND,
            name,
            "spec.passwordSecret",
            format!(
                "Secret {secret_ns}/{secret_name} has type {:?}, not kubernetes.io/basic-auth",
                secret.type_.as_deref().unwrap_or("")
            ),
        ));
        return None;
    }
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("password"))
        .cloned();
    let found = from_data.or(from_string);
    if found.is_none() {
        errors.push(ConfigError::new(
            KIND,
            name,
            "spec.passwordSecret",
            format!("Secret {secret_ns}/{secret_name} has no `password` key"),
        ));
    }
    found
}
