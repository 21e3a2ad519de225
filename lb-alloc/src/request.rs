//! What the allocator needs to know about a Service: its identity and labels, its address
//! families, its ports, its sharing key and backend key, and what the user asked for (a pool,
//! exact IPs).

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_core::{IpFamily, IpFamilyPolicy, ServiceKey, ServicePort, TrafficPolicy};
use serde::{Deserialize, Serialize};

use crate::error::AllocError;
use crate::selector::{Labels, render_labels};

/// The address families a service needs, from `spec.ipFamilies` / `spec.clusterIPs` and
/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Families {
    /// One address of this family (single-stack service).
    Single(IpFamily),
    /// Both families; `primary` is tried first when only one can be had.
    Dual {
        /// `spec.ipFamilies[0]`.
        primary: IpFamily,
        /// `RequireDualStack`: both or nothing. Otherwise `PreferDualStack`.
        required: bool,
    },
}

impl Families {
    /// Derives the families from the Service's policy and its families in order (from
    /// `spec.ipFamilies`, or the families of `spec.clusterIPs`).
    ///
    /// Fails, naming `service`, when no family is given, a family is repeated, more than two
    /// are given, `RequireDualStack` has only one, or `SingleStack` has two.
    pub fn from_service(
        service: &ServiceKey,
        policy: IpFamilyPolicy,
        families: &[IpFamily],
    ) -> Result<Self, AllocError> {
        let err = |reason: &str| AllocError::InvalidFamilies {
            service: service.clone(),
            reason: reason.into(),
        };
        match (families, policy) {
            ([], _) => Err(err("no IP family (the service has no cluster IP)")),
            ([_, _, _, ..], _) => Err(err("more than two IP families")),
            ([a, b], _) if a == b => Err(err("the same IP family is listed twice")),
            ([_], IpFamilyPolicy::RequireDualStack) => Err(err(
                "RequireDualStack but the service has a single cluster IP family",
            )),
            ([_, _], IpFamilyPolicy::SingleStack) => Err(err(
                "SingleStack but the service has two cluster IP families",
            )),
            ([f], _) => Ok(Self::Single(*f)),
            ([primary, _], p) => Ok(Self::Dual {
                primary: *primary,
                required: p == IpFamilyPolicy::RequireDualStack,
            }),
        }
    }

    /// The family tried first.
    pub fn primary(self) -> IpFamily {
        match self {
            Self::Single(f) | Self::Dual { primary: f, .. } => f,
        }
    }

    /// True when `PreferDualStack` with two families: one family is acceptable.
    pub fn prefers_dual(self) -> bool {
        matches!(
            self,
            Self::Dual {
                required: false,
                ..
            }
        )
    }

    /// True when a set of IPs of these families matches the service exactly
    /// (one of its family for single-stack, one of each for dual-stack).
    pub(crate) fn matches_exactly(self, ips: &[IpAddr]) -> bool {
        match (self, ips) {
            (Self::Single(f), [ip]) => IpFamily::of(ip) == f,
            (Self::Dual { .. }, [a, b]) => IpFamily::of(a) != IpFamily::of(b),
            _ => false,
        }
    }

    /// True when a current allocation may be kept for these families (MetalLB's
    /// `serviceFamilyChanged` negated): an exact match, or one IP of either family for a
    /// `PreferDualStack` service.
    pub fn accepts(self, ips: &[IpAddr]) -> bool {
        self.matches_exactly(ips) || (self.prefers_dual() && ips.len() == 1)
    }
}

impl Default for Families {
    fn default() -> Self {
        Self::Single(IpFamily::V4)
    }
}

/// The sharing identity of a service: IP sharing needs equal non-empty sharing keys and equal
/// backend keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SharingKey {
    /// The `allow-shared-ip` annotation; `None` (or empty) means the service shares nothing.
    pub sharing: Option<String>,
    /// `""` for `externalTrafficPolicy: Cluster`; for `Local`, the rendered `spec.selector`.
    pub backend: String,
}

impl SharingKey {
    /// The key of a service: its `allow-shared-ip` value, traffic policy and selector.
    pub fn new(sharing: Option<&str>, policy: TrafficPolicy, selector: &Labels) -> Self {
        Self {
            sharing: sharing.filter(|s| !s.is_empty()).map(String::from),
            backend: match policy {
                TrafficPolicy::Cluster => String::new(),
                TrafficPolicy::Local => render_labels(selector),
            },
        }
    }

    /// Why `self` (held by the services already on an IP) refuses to share with `new`, or
    /// `None` when sharing is allowed (MetalLB's `sharingOK`).
    pub(crate) fn refusal(&self, new: &Self) -> Option<String> {
        match (&self.sharing, &new.sharing) {
            (None, _) => Some("the existing service does not allow sharing".into()),
            (_, None) => Some("this service does not allow sharing".into()),
            (Some(a), Some(b)) if a != b => Some(format!(
                "sharing key {b:?} differs from the existing key {a:?}"
            )),
            _ if self.backend != new.backend => Some(format!(
                "backend key {:?} differs from the existing backend key {:?} (traffic policy or selector)",
                new.backend, self.backend
            )),
            _ => None,
        }
    }
}

/// Everything the allocator needs to place one Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRequest {
    /// The service.
    pub service: ServiceKey,
    /// Service labels, for pools with `serviceSelectors`.
    #[serde(default)]
    pub labels: Labels,
    /// Address families.
    #[serde(default)]
    pub families: Families,
    /// `spec.ports` as (protocol, port).
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Sharing and backend key.
    #[serde(default)]
    pub sharing: SharingKey,
    /// The `address-pool` annotation.
    #[serde(default)]
    pub pool: Option<String>,
    /// The `loadBalancerIPs` annotation or `spec.loadBalancerIP`.
    #[serde(default)]
    pub requested_ips: Vec<IpAddr>,
}

impl AllocationRequest {
    /// A request for a single-stack service of `family` with no ports, labels or wishes.
    pub fn new(service: ServiceKey, family: IpFamily) -> Self {
        Self {
            service,
            labels: BTreeMap::new(),
            families: Families::Single(family),
            ports: Vec::new(),
            sharing: SharingKey::default(),
            pool: None,
            requested_ips: Vec::new(),
        }
    }

    /// Sets the families.
    pub fn with_families(mut self, families: Families) -> Self {
        self.families = families;
        self
    }

    /// Sets the ports.
    pub fn with_ports(mut self, ports: impl IntoIterator<Item = ServicePort>) -> Self {
        self.ports = ports.into_iter().collect();
        self
    }

    /// Sets the sharing key (backend key for `Cluster` traffic policy).
    pub fn with_sharing_key(mut self, key: &str) -> Self {
        self.sharing.sharing = Some(key.to_string()).filter(|k| !k.is_empty());
        self
    }

    /// Sets the sharing key and backend key.
    pub fn with_sharing(mut self, sharing: SharingKey) -> Self {
        self.sharing = sharing;
        self
    }

    /// Asks for a pool (the `address-pool` annotation).
    pub fn with_pool(mut self, pool: &str) -> Self {
        self.pool = Some(pool.to_string());
        self
    }

    /// Asks for exact IPs.
    pub fn with_requested_ips(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.requested_ips = ips.into_iter().collect();
        self
    }

    /// Sets the service labels.
    pub fn with_labels<'a>(mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.labels = labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Checks the requested IPs against the families (MetalLB: the family of the list must
    /// equal the service family).
    pub(crate) fn check_requested_ips(&self) -> Result<(), AllocError> {
        let ips = &self.requested_ips;
        if ips.is_empty() || self.families.matches_exactly(ips) {
            return Ok(());
        }
        let reason = match ips.as_slice() {
            [_, _, _, ..] => "at most two IPs, one per family".to_string(),
            [a, b] if IpFamily::of(a) == IpFamily::of(b) => "two IPs of the same family".into(),
            _ => format!("do not match the service's IP families {:?}", self.families),
        };
        Err(AllocError::InvalidRequestedIps {
            service: self.service.clone(),
            ips: ips.clone(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServiceKey {
        ServiceKey::new("default", "web")
    }

    #[test]
    fn families_follow_the_policy() {
        use IpFamily::*;
        use IpFamilyPolicy::*;
        assert_eq!(
            Families::from_service(&key(), SingleStack, &[V6]).unwrap(),
            Families::Single(V6)
        );
        assert_eq!(
            Families::from_service(&key(), PreferDualStack, &[V4]).unwrap(),
            Families::Single(V4)
        );
        assert_eq!(
            Families::from_service(&key(), PreferDualStack, &[V6, V4]).unwrap(),
            Families::Dual {
                primary: V6,
                required: false
            }
        );
        assert!(Families::from_service(&key(), RequireDualStack, &[V4]).is_err());
        assert!(Families::from_service(&key(), RequireDualStack, &[V4, V4]).is_err());
        assert!(Families::from_service(&key(), SingleStack, &[]).is_err());
    }

    #[test]
    fn backend_key_is_empty_for_cluster_and_the_selector_for_local() {
        let sel: Labels = [("app".to_string(), "dns".to_string())].into();
        assert_eq!(
            SharingKey::new(Some("k"), TrafficPolicy::Cluster, &sel).backend,
            ""
        );
        assert_eq!(
            SharingKey::new(Some("k"), TrafficPolicy::Local, &sel).backend,
            "app=dns"
        );
        assert_eq!(
            SharingKey::new(Some(""), TrafficPolicy::Local, &sel).sharing,
            None
        );
    }

    #[test]
    fn sharing_needs_equal_non_empty_keys_and_equal_backends() {
        let k = |s: Option<&str>, b: &str| SharingKey {
            sharing: s.map(String::from),
            backend: b.into(),
        };
        assert!(k(Some("a"), "").refusal(&k(Some("a"), "")).is_none());
        assert!(k(None, "").refusal(&k(Some("a"), "")).is_some());
        assert!(k(Some("a"), "").refusal(&k(None, "")).is_some());
        assert!(k(Some("a"), "").refusal(&k(Some("b"), "")).is_some());
        assert!(k(Some("a"), "app=x").refusal(&k(Some("a"), "")).is_some());
    }

    #[test]
    fn requested_ips_must_match_the_service_families() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let single = AllocationRequest::new(key(), IpFamily::V4);
        assert!(
            single
                .clone()
                .with_requested_ips([v4])
                .check_requested_ips()
                .is_ok()
        );
        assert!(
            single
                .clone()
                .with_requested_ips([v6])
                .check_requested_ips()
                .is_err()
        );
        assert!(
            single
                .with_requested_ips([v4, v6])
                .check_requested_ips()
                .is_err()
        );
        let dual = AllocationRequest::new(key(), IpFamily::V4).with_families(Families::Dual {
            primary: IpFamily::V4,
            required: false,
        });
        assert!(
            dual.clone()
                .with_requested_ips([v6, v4])
                .check_requested_ips()
                .is_ok()
        );
        assert!(dual.with_requested_ips([v4]).check_requested_ips().is_err());
    }
}
