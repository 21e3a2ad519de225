//! The offline plan: allocate the way the controller will and compute what every node
//! announces, from objects alone. Behind `lb-k8s plan`; the JSON form is a stable schema
//! (`docs/cli.md`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use lb_alloc::{AllocationRequest, Allocator};
use serde::Serialize;

use crate::announce::{self, Cluster, NodeAnnouncements, NodeState, ServiceState};
use crate::config::{Config, ConfigErrors};
use crate::controller::{converge, take_back};
use crate::events;
pub use crate::events::Event;
use crate::input::{DEFAULT_NAMESPACE, Objects};
use crate::service::{self, ServiceView};

/// Options of a plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Only this node in `nodes` (all when `None`).
    pub node: Option<String>,
    /// Nodes whose speaker is dead.
    pub down: BTreeSet<String>,
    /// Namespace of MetalLB's objects.
    pub namespace: String,
    /// `--lb-class`: handle only Services of this class (`None`: only Services without one).
    pub lb_class: Option<String>,
    /// Announce from nodes labelled to be excluded anyway.
    pub ignore_exclude_lb: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            node: None,
            down: BTreeSet::new(),
            namespace: DEFAULT_NAMESPACE.into(),
            lb_class: None,
            ignore_exclude_lb: false,
        }
    }
}

/// The outcome for one Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePlan {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// IPs it holds after the plan (what `status.loadBalancer.ingress` would say).
    pub ips: Vec<IpAddr>,
    /// The pool they come from (the `metallb.io/ip-allocated-from-pool` annotation).
    pub pool: Option<String>,
    /// Why it has no (new) IPs, when it failed.
    pub error: Option<String>,
    /// Events the controller would emit.
    pub events: Vec<Event>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every LoadBalancer Service this controller handles, in input order.
    pub services: Vec<ServicePlan>,
    /// Every node (or the one asked for), in name order.
    pub nodes: Vec<NodeAnnouncements>,
    /// Things worth knowing that are not errors.
    pub warnings: Vec<String>,
}

/// Validates the configuration, allocates and computes the announcements.
///
/// Services that already carry ingress IPs are restored first (most IPs first, then input
/// order), so a pending Service never takes an IP another one records; then every Service is
/// converged in input order. Fails only when the configuration is invalid.
pub fn plan(objects: &Objects, options: &PlanOptions) -> Result<Plan, ConfigErrors> {
    let Prepared {
        config,
        plans,
        services,
        nodes,
        mut warnings,
    } = prepare(objects, options)?;
    for down in &options.down {
        if !nodes.iter().any(|n| &n.name == down) {
            warnings.push(format!("--down {down}: no such Node"));
        }
    }
    let live: BTreeSet<String> = nodes
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| !options.down.contains(n))
        .collect();
    let cluster = Cluster {
        config: &config,
        services: &services,
        nodes: &nodes,
        live_speakers: &live,
        ignore_exclude_lb: options.ignore_exclude_lb,
    };
    let names: Vec<String> = match &options.node {
        Some(n) => {
            if !nodes.iter().any(|x| &x.name == n) {
                warnings.push(format!(
                    "--node {n}: no such Node; shown as a node without labels"
                ));
            }
            vec![n.clone()]
        }
        None => nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let nodes = names
        .iter()
        .map(|n| announce::for_node(cluster, n))
        .collect();
    Ok(Plan {
        services: plans,
        nodes,
        warnings,
    })
}

/// The allocation part of a plan: the configuration, every handled Service with the IPs it
/// holds afterwards, and the nodes. The speaker's file source uses it, so that a speaker fed
/// a file announces exactly what `plan` shows.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The validated configuration.
    pub config: Config,
    /// One outcome per handled Service, in input order.
    pub plans: Vec<ServicePlan>,
    /// The same Services as the announcement rules see them, holding their planned IPs.
    pub services: Vec<ServiceState>,
    /// Every Node, in name order.
    pub nodes: Vec<NodeState>,
    /// Things worth knowing that are not errors.
    pub warnings: Vec<String>,
}

/// Validates the configuration and allocates like [`plan`], without computing announcements.
///
/// Fails only when the configuration is invalid.
pub fn prepare(objects: &Objects, options: &PlanOptions) -> Result<Prepared, ConfigErrors> {
    let config = Config::from_objects_in(objects, &options.namespace)?;
    let mut warnings = objects.warnings.clone();
    warnings.extend(config.warnings.iter().cloned());

    // Each Service read once: LoadBalancers of our class, in input order.
    let mut handled: Vec<(&Service, ServiceView)> = Vec::new();
    for svc in &objects.services {
        let view = service::view(svc);
        if !view.is_load_balancer {
            continue;
        }
        if !service::handled_by(svc, options.lb_class.as_deref()) {
            warnings.push(format!(
                "Service/{}: loadBalancerClass {:?} is not handled by this controller",
                view.key,
                view.load_balancer_class.as_deref().unwrap_or("")
            ));
            continue;
        }
        handled.push((svc, view));
    }

    let mut allocator = Allocator::new(config.pools.clone());
    let mut plans: Vec<ServicePlan> = Vec::new();
    let mut requests: Vec<Option<AllocationRequest>> = Vec::new();
    let mut views: Vec<ServiceView> = Vec::new();
    for (svc, view) in handled {
        let mut sp = ServicePlan {
            namespace: view.key.namespace.to_string(),
            name: view.key.name.to_string(),
            ips: Vec::new(),
            pool: None,
            error: None,
            events: view
                .deprecated_annotations
                .iter()
                .map(|a| events::deprecated_annotation(a))
                .collect(),
        };
        match service::allocation_request(svc, &view) {
            Ok(r) => requests.push(Some(r)),
            Err(e) => {
                sp.events.push(events::invalid_service(&e));
                sp.error = Some(e.to_string());
                requests.push(None);
            }
        }
        plans.push(sp);
        views.push(view);
    }

    // Restore what the Services record, most IPs first, input order among equals.
    let mut recorded: Vec<usize> = (0..views.len())
        .filter(|i| views.get(*i).is_some_and(|v| !v.ingress_ips.is_empty()))
        .collect();
    recorded.sort_by_key(|i| std::cmp::Reverse(views.get(*i).map_or(0, |v| v.ingress_ips.len())));
    for i in recorded {
        let (Some(Some(request)), Some(view), Some(sp)) =
            (requests.get(i), views.get(i), plans.get_mut(i))
        else {
            continue;
        };
        if let Some(event) = take_back(&mut allocator, request, &view.ingress_ips) {
            sp.events.push(event);
        }
    }

    // Converge every Service in input order.
    for (i, request) in requests.iter().enumerate() {
        let (Some(request), Some(sp)) = (request, plans.get_mut(i)) else {
            continue;
        };
        let c = converge(&mut allocator, request);
        sp.events.extend(c.events);
        sp.ips = c.ips;
        sp.pool = c.pool;
        sp.error = c.error;
    }

    let endpoints = announce::endpoint_index(&objects.endpoint_slices);
    let mut services: Vec<ServiceState> = views
        .into_iter()
        .zip(&plans)
        .map(|(mut view, p)| {
            view.ingress_ips = p.ips.clone();
            ServiceState {
                endpoints: endpoints.get(&view.key).cloned().unwrap_or_default(),
                view: view.into(),
            }
        })
        .collect();
    let mut nodes: Vec<NodeState> = objects.nodes.iter().map(NodeState::from_node).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    announce::compact_services(&mut services);
    Ok(Prepared {
        config,
        plans,
        services,
        nodes,
        warnings,
    })
}

fn joined<T: std::fmt::Display>(values: &[T]) -> String {
    let parts: Vec<String> = values.iter().map(ToString::to_string).collect();
    parts.join(",")
}

impl Plan {
    /// The plan as a human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::from("SERVICES\n");
        let width = self
            .services
            .iter()
            .map(|s| s.namespace.len() + s.name.len() + 1)
            .max()
            .unwrap_or(7)
            .max(7);
        out.push_str(&format!(
            "{:<width$}  {:<32}  {:<16}  EVENT\n",
            "SERVICE", "IPS", "POOL"
        ));
        for s in &self.services {
            let ips: Vec<String> = s.ips.iter().map(ToString::to_string).collect();
            let event = s
                .events
                .last()
                .map(|e| format!("{} {}: {}", e.kind, e.reason, e.message))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<width$}  {:<32}  {:<16}  {}\n",
                format!("{}/{}", s.namespace, s.name),
                if ips.is_empty() {
                    "<pending>".to_string()
                } else {
                    ips.join(",")
                },
                s.pool.as_deref().unwrap_or("-"),
                event
            ));
        }
        for n in &self.nodes {
            out.push_str(&format!("\nNODE {}\n", n.name));
            for e in &n.l2 {
                let ifaces = if e.interfaces.is_empty() {
                    "all interfaces".to_string()
                } else {
                    e.interfaces.join(",")
                };
                out.push_str(&format!("  layer2  {}  {}  ({ifaces})\n", e.service, e.ip));
            }
            for e in &n.bgp {
                let mut attrs = vec![format!("peers={}", e.peers.join(","))];
                if !e.communities.is_empty() {
                    attrs.push(format!("communities={}", joined(&e.communities)));
                }
                if !e.large_communities.is_empty() {
                    attrs.push(format!("large={}", joined(&e.large_communities)));
                }
                if let Some(lp) = e.local_pref {
                    attrs.push(format!("localPref={lp}"));
                }
                out.push_str(&format!(
                    "  bgp     {}  {}  {}\n",
                    e.service,
                    e.prefix,
                    attrs.join(" ")
                ));
            }
            for e in &n.not_announced {
                let protocol = match e.protocol {
                    announce::AnnounceProtocol::Layer2 => "layer2",
                    announce::AnnounceProtocol::Bgp => "bgp",
                };
                out.push_str(&format!(
                    "  -       {}  not announced over {protocol}: {}\n",
                    e.service, e.reason
                ));
            }
        }
        for w in &self.warnings {
            out.push_str(&format!("\nwarning: {w}"));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        out
    }
}
