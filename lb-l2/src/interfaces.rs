//! Which links answer, and which IPs are announced on each.
//!
//! A link answers ARP and Neighbor Solicitations when it is administratively up, does ARP
//! (no `IFF_NOARP`), is not a loopback, has an Ethernet address, is not enslaved to a bond or
//! bridge (the master answers for it), and its name matches none of the exclude patterns
//! (MetalLB's defaults: container, CNI and virtual-bridge interfaces).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use lb_core::{Announcement, ServiceKey};
use regex::Regex;

use crate::wire::EthernetAddress;

/// MetalLB's default list of interface-name patterns never announced on
/// (`config/native/exclude-l2-config.yaml`).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// An exclude pattern that is not a valid regular expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interface exclude pattern {pattern:?} is not a valid regular expression: {reason}")]
pub struct PatternError {
    /// The offending pattern.
    pub pattern: String,
    /// What the regex parser said.
    pub reason: String,
}

/// Interface-name patterns (regular expressions, matched anywhere in the name unless
/// anchored) that are never announced on.
#[derive(Debug, Clone)]
pub struct ExcludePatterns(Vec<Regex>);

impl ExcludePatterns {
    /// Compiles `patterns`, naming the first invalid one.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p.as_ref()).map_err(|e| PatternError {
                    pattern: p.as_ref().to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// No exclusions.
    pub const fn none() -> Self {
        Self(Vec::new())
    }

    /// The first pattern `name` matches.
    pub fn matching(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|r| r.is_match(name)).map(Regex::as_str)
    }
}

impl Default for ExcludePatterns {
    /// MetalLB's defaults, [`DEFAULT_EXCLUDE`].
    fn default() -> Self {
        Self(
            DEFAULT_EXCLUDE
                .iter()
                .filter_map(|p| Regex::new(p).ok())
                .collect(),
        )
    }
}

/// What the runtime knows about a link (from netlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Ethernet address, when the link has a 6-byte one.
    pub mac: Option<EthernetAddress>,
    /// `IFF_UP`.
    pub up: bool,
    /// `IFF_LOWER_UP`: the link has carrier. Not needed to answer; a link whose carrier
    /// returns announces its IPs again (the segment may have changed).
    pub carrier: bool,
    /// `IFF_NOARP`.
    pub noarp: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// Index of the bond, bridge or other master this link is enslaved to.
    pub master: Option<u32>,
}

/// Why a link does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    /// Administratively down.
    Down,
    /// `IFF_NOARP` set.
    NoArp,
    /// A loopback device.
    Loopback,
    /// No Ethernet address.
    NoEthernetAddress,
    /// Enslaved to another link (bond or bridge port).
    Enslaved {
        /// The master's index.
        master: u32,
    },
    /// The name matches an exclude pattern.
    Excluded {
        /// The pattern.
        pattern: String,
    },
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Down => f.write_str("link is down"),
            Self::NoArp => f.write_str("link has NOARP set"),
            Self::Loopback => f.write_str("loopback"),
            Self::NoEthernetAddress => f.write_str("no Ethernet address"),
            Self::Enslaved { master } => write!(f, "enslaved to link {master}"),
            Self::Excluded { pattern } => write!(f, "name matches exclude pattern {pattern:?}"),
        }
    }
}

impl LinkInfo {
    /// Whether the link answers, and its Ethernet address when it does.
    pub fn eligibility(&self, exclude: &ExcludePatterns) -> Result<EthernetAddress, Ineligible> {
        if let Some(pattern) = exclude.matching(&self.name) {
            return Err(Ineligible::Excluded {
                pattern: pattern.to_owned(),
            });
        }
        if self.loopback {
            return Err(Ineligible::Loopback);
        }
        if !self.up {
            return Err(Ineligible::Down);
        }
        if self.noarp {
            return Err(Ineligible::NoArp);
        }
        if let Some(master) = self.master {
            return Err(Ineligible::Enslaved { master });
        }
        match self.mac {
            Some(mac) if mac.is_unicast() => Ok(mac),
            _ => Err(Ineligible::NoEthernetAddress),
        }
    }
}

/// Where an IP is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// On every eligible interface.
    All,
    /// Only on these interfaces.
    Only(BTreeSet<String>),
}

impl Scope {
    /// True when the IP is announced on `interface`.
    pub fn includes(&self, interface: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(interface),
        }
    }

    fn merge(&mut self, other: &Self) {
        match (&mut *self, other) {
            (Self::All, _) => {}
            (_, Self::All) => *self = Self::All,
            (Self::Only(a), Self::Only(b)) => a.extend(b.iter().cloned()),
        }
    }
}

/// What the responder knows about one IP on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Nobody asked to announce this IP.
    NotAnnounced,
    /// Announced, but not on this interface.
    OtherInterface,
    /// Announced here.
    Here,
}

/// The IPs each service announces over Layer 2 and on which interfaces, merged per IP (two
/// services sharing an IP answer on the union of their interfaces).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncedIps {
    services: BTreeMap<ServiceKey, (Vec<IpAddr>, Scope)>,
    by_ip: BTreeMap<IpAddr, Scope>,
}

impl AnnouncedIps {
    /// Nothing announced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `service` announces; `None`, no IPs, or no Layer-2 attributes withdraw it.
    /// Returns whether anything changed.
    pub fn apply(&mut self, service: &ServiceKey, desired: Option<&Announcement>) -> bool {
        let changed = match desired.and_then(entry_of) {
            Some(entry) => self.services.insert(service.clone(), entry.clone()) != Some(entry),
            None => self.services.remove(service).is_some(),
        };
        if changed {
            self.rebuild();
        }
        changed
    }

    /// Replaces everything with `desired`. Returns whether anything changed.
    pub fn resync(&mut self, desired: &[Announcement]) -> bool {
        let before = std::mem::take(&mut self.by_ip);
        self.services = desired
            .iter()
            .filter_map(|a| Some((a.service.clone(), entry_of(a)?)))
            .collect();
        self.rebuild();
        before != self.by_ip
    }

    fn rebuild(&mut self) {
        // Sorted and merged first, then built in one pass: a map built in order is packed,
        // one filled entry by entry in service order is about a third empty.
        let mut all: Vec<(IpAddr, &Scope)> = self
            .services
            .values()
            .flat_map(|(ips, scope)| ips.iter().map(move |ip| (*ip, scope)))
            .collect();
        all.sort_by_key(|(ip, _)| *ip);
        let mut merged: Vec<(IpAddr, Scope)> = Vec::with_capacity(all.len());
        for (ip, scope) in all {
            match merged.last_mut() {
                Some((last, s)) if *last == ip => s.merge(scope),
                _ => merged.push((ip, scope.clone())),
            }
        }
        self.by_ip = merged.into_iter().collect();
    }

    /// Whether `ip` is announced on `interface`.
    pub fn lookup(&self, ip: IpAddr, interface: &str) -> Lookup {
        match self.by_ip.get(&ip) {
            None => Lookup::NotAnnounced,
            Some(scope) if scope.includes(interface) => Lookup::Here,
            Some(_) => Lookup::OtherInterface,
        }
    }

    /// The IPs announced on `interface`.
    pub fn on_interface<'a>(&'a self, interface: &'a str) -> impl Iterator<Item = IpAddr> + 'a {
        self.by_ip
            .iter()
            .filter(move |(_, s)| s.includes(interface))
            .map(|(ip, _)| *ip)
    }

    /// Every announced IP with where it is announced.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &Scope)> {
        self.by_ip.iter().map(|(ip, s)| (*ip, s))
    }

    /// True when nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

/// The IPs and scope of a Layer-2 announcement, `None` when it announces nothing over Layer 2.
fn entry_of(a: &Announcement) -> Option<(Vec<IpAddr>, Scope)> {
    let l2 = a.l2.as_ref()?;
    if a.ips.is_empty() {
        return None;
    }
    let scope = if l2.interfaces.is_empty() {
        Scope::All
    } else {
        Scope::Only(l2.interfaces.iter().cloned().collect())
    };
    Some((a.ips.clone(), scope))
}
