//! What a Kubernetes Service asks of the load balancer: whether it is ours (type and
//! `loadBalancerClass`), its families from `clusterIPs`, the `metallb.io/*` annotations (and
//! the deprecated `metallb.universe.tf/*` ones), its ports, labels, selector and traffic
//! policy, and the IPs its status already records. Turned into an
//! [`lb_alloc::AllocationRequest`].

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use lb_alloc::{AllocationRequest, Families, Labels, SharingKey};
use lb_core::{IpFamily, IpFamilyPolicy, Protocol, ServiceKey, ServicePort, TrafficPolicy};

/// `metallb.io/address-pool`: allocate from this pool.
pub const ADDRESS_POOL: &str = "address-pool";
/// `metallb.io/loadBalancerIPs`: these exact IPs, comma-separated.
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// `metallb.io/allow-shared-ip`: the sharing key.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// `metallb.io/ip-allocated-from-pool`: written by the controller.
pub const IP_ALLOCATED_FROM_POOL: &str = "ip-allocated-from-pool";
/// The annotation prefix.
pub const PREFIX: &str = "metallb.io/";
/// The deprecated prefix, still read.
pub const DEPRECATED_PREFIX: &str = "metallb.universe.tf/";

/// Why a Service cannot be turned into an allocation request. Each maps to the Warning event
/// the controller emits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Both the annotation and `spec.loadBalancerIP` request IPs.
    #[error("both metallb.io/loadBalancerIPs and spec.loadBalancerIP are set; use only one")]
    BothRequestedIpForms,
    /// A requested IP does not parse.
    #[error("{field}: {value:?} is not an IP address")]
    UnparsableIp {
        /// Where it was written.
        field: String,
        /// The text.
        value: String,
    },
    /// No cluster IP, so no family.
    #[error("the service has no cluster IP, so its IP family is unknown")]
    NoClusterIp,
    /// The families are inconsistent with the policy.
    #[error("{0}")]
    Families(String),
}

impl ServiceError {
    /// The reason of the Kubernetes event for this error.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Self::BothRequestedIpForms | Self::UnparsableIp { .. } => "LoadBalancerFailed",
            Self::NoClusterIp => "noclusterIPsIPFamily",
            Self::Families(_) => "not enough clusterips",
        }
    }
}

/// A Service as the load balancer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// Labels.
    pub labels: Labels,
    /// `spec.selector`.
    pub selector: Labels,
    /// `spec.ports` as (protocol, port).
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// IPs recorded in `status.loadBalancer.ingress`, in order (unparsable entries dropped).
    pub ingress_ips: Vec<IpAddr>,
    /// The pool annotation.
    pub pool: Option<String>,
    /// The sharing key annotation.
    pub sharing_key: Option<String>,
    /// Deprecated `metallb.universe.tf/*` annotation keys present.
    pub deprecated_annotations: Vec<String>,
}

/// Reads an annotation by its short name: the stable key wins; the deprecated one is used
/// when it is the only one.
fn annotation<'a>(svc: &'a Service, short: &str) -> Option<&'a str> {
    let a = svc.metadata.annotations.as_ref()?;
    a.get(&format!("{PREFIX}{short}"))
        .or_else(|| a.get(&format!("{DEPRECATED_PREFIX}{short}")))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// The Service's key.
pub fn key_of(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or(""),
    )
}

/// True when the controller configured with `--lb-class` (`None`: empty) handles `svc`:
/// no flag means only Services without a class; a flag means only that class.
pub fn handled_by(svc: &Service, lb_class: Option<&str>) -> bool {
    let class = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref());
    class == lb_class.filter(|c| !c.is_empty())
}

/// Reads what the load balancer needs from a Service.
pub fn view(svc: &Service) -> ServiceView {
    let default = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&default);
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            u16::try_from(p.port)
                .ok()
                .map(|port| ServicePort::new(protocol, port))
        })
        .collect();
    let ingress_ips = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let deprecated_annotations = svc
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(DEPRECATED_PREFIX))
        .map(|(k, _)| k.clone())
        .collect();
    ServiceView {
        key: key_of(svc),
        is_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
        load_balancer_class: spec.load_balancer_class.clone(),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        selector: spec.selector.clone().unwrap_or_default(),
        ports,
        traffic_policy: match spec.external_traffic_policy.as_deref() {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        },
        ingress_ips,
        pool: annotation(svc, ADDRESS_POOL).map(String::from),
        sharing_key: annotation(svc, ALLOW_SHARED_IP).map(String::from),
        deprecated_annotations,
    }
}

/// The Service's families, in order: `spec.ipFamilies` when set, else those of
/// `spec.clusterIPs` (or `spec.clusterIP`).
fn families(svc: &Service, key: &ServiceKey) -> Result<Families, ServiceError> {
    let default = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&default);
    let cluster_ips: Vec<&String> = match spec.cluster_ips.as_deref() {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => spec.cluster_ip.iter().collect(),
    };
    let parsed: Vec<IpFamily> = cluster_ips
        .iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| IpFamily::of(&ip))
        .collect();
    let declared: Vec<IpFamily> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpFamily::V4),
            "IPv6" => Some(IpFamily::V6),
            _ => None,
        })
        .collect();
    if parsed.is_empty() && declared.is_empty() {
        return Err(ServiceError::NoClusterIp);
    }
    // ipFamilies orders the families; clusterIPs says which exist when ipFamilies is absent.
    let list = if declared.is_empty() {
        parsed
    } else {
        declared
    };
    let policy = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => IpFamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => IpFamilyPolicy::RequireDualStack,
        _ => IpFamilyPolicy::SingleStack,
    };
    Families::from_service(key, policy, &list).map_err(|e| ServiceError::Families(e.to_string()))
}

/// The IPs the Service requests: `metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`.
fn requested_ips(svc: &Service) -> Result<Vec<IpAddr>, ServiceError> {
    let from_spec = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let from_annotation = annotation(svc, LOAD_BALANCER_IPS);
    let (field, text) = match (from_annotation, from_spec) {
        (Some(_), Some(_)) => return Err(ServiceError::BothRequestedIpForms),
        (Some(a), None) => (
            format!("metadata.annotations[{PREFIX}{LOAD_BALANCER_IPS}]"),
            a,
        ),
        (None, Some(s)) => ("spec.loadBalancerIP".to_string(), s),
        (None, None) => return Ok(Vec::new()),
    };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>().map_err(|_| ServiceError::UnparsableIp {
                field: field.clone(),
                value: s.into(),
            })
        })
        .collect()
}

/// The allocation request for a Service, given its [`view`].
///
/// Fails when the requested IPs are given both ways or do not parse, when the service has no
/// cluster IP, or when its families contradict its `ipFamilyPolicy`.
pub fn allocation_request(
    svc: &Service,
    v: &ServiceView,
) -> Result<AllocationRequest, ServiceError> {
    let families = families(svc, &v.key)?;
    let requested = requested_ips(svc)?;
    let mut request = base_request(v, families).with_requested_ips(requested);
    if let Some(pool) = &v.pool {
        request = request.with_pool(pool);
    }
    Ok(request)
}

/// A request that only holds the IPs a Service records, for a Service whose own request
/// cannot be built ([`allocation_request`] failed): its families are those of the recorded
/// IPs, without requested IPs or pool. Taking the recorded IPs back with it keeps them from
/// being given to another Service while the Service's annotations or spec are wrong.
///
/// `None` when the Service records no IP, or records IPs no request could hold (more than
/// two, or two of one family).
pub fn holding_request(v: &ServiceView) -> Option<AllocationRequest> {
    let families: Vec<IpFamily> = v.ingress_ips.iter().map(IpFamily::of).collect();
    let policy = if families.len() == 2 {
        IpFamilyPolicy::RequireDualStack
    } else {
        IpFamilyPolicy::SingleStack
    };
    let families = Families::from_service(&v.key, policy, &families).ok()?;
    Some(base_request(v, families))
}

/// The request for `v` with `families`: its ports, sharing key and labels; no requested IPs
/// or pool.
fn base_request(v: &ServiceView, families: Families) -> AllocationRequest {
    AllocationRequest::new(v.key.clone(), families.primary())
        .with_families(families)
        .with_ports(v.ports.iter().copied())
        .with_sharing(SharingKey::new(
            v.sharing_key.as_deref(),
            v.traffic_policy,
            &v.selector,
        ))
        .with_labels(v.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}
