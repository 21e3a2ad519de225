//! Service identity and the service-level settings every layer needs: ports and protocols,
//! address families and the family policy, and the external traffic policy.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A text value that is not one of the accepted spellings of a vocabulary type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected one of {expected}")]
pub struct ParseError {
    /// What was being parsed (`protocol`, `IP family`, ...).
    pub what: &'static str,
    /// The text that was rejected.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

/// Identity of a Kubernetes Service: namespace and name.
///
/// Ordered by namespace, then name; its text form is `namespace/name`, like `kubectl` prints it.
/// Cloning is cheap (shared strings): keys are copied into many indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Namespace of the Service.
    pub namespace: Arc<str>,
    /// Name of the Service.
    pub name: Arc<str>,
}

impl ServiceKey {
    /// A key from a namespace and a name.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceKey {
    type Err = ParseError;

    /// Parses `namespace/name`; fails when either part is empty or the slash is missing.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::new(ns, name))
            }
            _ => Err(ParseError {
                what: "service key",
                value: s.into(),
                expected: "namespace/name",
            }),
        }
    }
}

/// Transport protocol of a Service port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        })
    }
}

impl FromStr for Protocol {
    type Err = ParseError;

    /// Parses `TCP`, `UDP` or `SCTP`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Self::Tcp),
            "UDP" => Ok(Self::Udp),
            "SCTP" => Ok(Self::Sctp),
            _ => Err(ParseError {
                what: "protocol",
                value: s.into(),
                expected: "TCP, UDP, SCTP",
            }),
        }
    }
}

/// One exposed port of a Service: protocol and port number.
///
/// Two services can share an IP only if they have no `ServicePort` in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    /// Transport protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl ServicePort {
    /// A port of the given protocol.
    pub fn new(protocol: Protocol, port: u16) -> Self {
        Self { protocol, port }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    /// IPv4.
    #[serde(rename = "IPv4")]
    V4,
    /// IPv6.
    #[serde(rename = "IPv6")]
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            Self::V4 => Self::V6,
            Self::V6 => Self::V4,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

impl FromStr for IpFamily {
    type Err = ParseError;

    /// Parses Kubernetes' spelling, `IPv4` or `IPv6` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" => Ok(Self::V4),
            "ipv6" => Ok(Self::V6),
            _ => Err(ParseError {
                what: "IP family",
                value: s.into(),
                expected: "IPv4, IPv6",
            }),
        }
    }
}

/// `spec.ipFamilyPolicy` of a Service. Unset means `SingleStack`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum IpFamilyPolicy {
    /// One address, of the service's (first) family.
    #[default]
    SingleStack,
    /// Both families if a pool can give both, else one.
    PreferDualStack,
    /// Both families or nothing.
    RequireDualStack,
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SingleStack => "SingleStack",
            Self::PreferDualStack => "PreferDualStack",
            Self::RequireDualStack => "RequireDualStack",
        })
    }
}

impl FromStr for IpFamilyPolicy {
    type Err = ParseError;

    /// Parses the Kubernetes spelling (`SingleStack`, `PreferDualStack`, `RequireDualStack`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SingleStack" => Ok(Self::SingleStack),
            "PreferDualStack" => Ok(Self::PreferDualStack),
            "RequireDualStack" => Ok(Self::RequireDualStack),
            _ => Err(ParseError {
                what: "IP family policy",
                value: s.into(),
                expected: "SingleStack, PreferDualStack, RequireDualStack",
            }),
        }
    }
}

/// `spec.externalTrafficPolicy` of a Service. Unset means `Cluster`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum TrafficPolicy {
    /// Any node may receive traffic and forward it to any endpoint.
    #[default]
    Cluster,
    /// Only nodes with a ready local endpoint should receive traffic.
    Local,
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cluster => "Cluster",
            Self::Local => "Local",
        })
    }
}

impl FromStr for TrafficPolicy {
    type Err = ParseError;

    /// Parses `Cluster` or `Local`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Cluster" => Ok(Self::Cluster),
            "Local" => Ok(Self::Local),
            _ => Err(ParseError {
                what: "traffic policy",
                value: s.into(),
                expected: "Cluster, Local",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_round_trips_through_text() {
        let key: ServiceKey = "default/web".parse().unwrap();
        assert_eq!(key, ServiceKey::new("default", "web"));
        assert_eq!(key.to_string(), "default/web");
        assert!("default".parse::<ServiceKey>().is_err());
        assert!("/web".parse::<ServiceKey>().is_err());
        assert!("a/b/c".parse::<ServiceKey>().is_err());
    }

    #[test]
    fn service_keys_order_by_namespace_then_name() {
        let mut keys = [
            ServiceKey::new("b", "a"),
            ServiceKey::new("a", "z"),
            ServiceKey::new("a", "b"),
        ];
        keys.sort();
        assert_eq!(keys.map(|k| k.to_string()), ["a/b", "a/z", "b/a"]);
    }

    #[test]
    fn protocol_parses_any_case_and_rejects_unknown() {
        assert_eq!("udp".parse::<Protocol>().unwrap(), Protocol::Udp);
        assert_eq!("SCTP".parse::<Protocol>().unwrap(), Protocol::Sctp);
        let err = "ICMP".parse::<Protocol>().unwrap_err();
        assert!(err.to_string().contains("ICMP"), "{err}");
    }

    #[test]
    fn ports_differ_by_protocol() {
        assert_ne!(
            ServicePort::new(Protocol::Tcp, 53),
            ServicePort::new(Protocol::Udp, 53)
        );
        assert_eq!(ServicePort::new(Protocol::Udp, 53).to_string(), "UDP/53");
    }

    #[test]
    fn family_of_address_and_other() {
        assert_eq!(IpFamily::of(&"192.0.2.1".parse().unwrap()), IpFamily::V4);
        assert_eq!(IpFamily::of(&"2001:db8::1".parse().unwrap()), IpFamily::V6);
        assert_eq!(IpFamily::V4.other(), IpFamily::V6);
        assert_eq!("IPv6".parse::<IpFamily>().unwrap(), IpFamily::V6);
    }

    #[test]
    fn policies_default_like_kubernetes() {
        assert_eq!(IpFamilyPolicy::default(), IpFamilyPolicy::SingleStack);
        assert_eq!(TrafficPolicy::default(), TrafficPolicy::Cluster);
        assert_eq!(
            "RequireDualStack".parse::<IpFamilyPolicy>().unwrap(),
            IpFamilyPolicy::RequireDualStack
        );
        assert!("Dual".parse::<IpFamilyPolicy>().is_err());
        assert_eq!(
            "Local".parse::<TrafficPolicy>().unwrap(),
            TrafficPolicy::Local
        );
    }
}
