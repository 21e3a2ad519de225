//! Takeover announcements: when an IP is (re)announced, tell the segment at once instead of
//! waiting for clients to ask (their caches still hold the previous owner's address).
//!
//! For IPv4, a gratuitous ARP request **and** reply, both broadcast, sender = target = the
//! IP (hosts differ in which of the two updates their cache). For IPv6, an unsolicited
//! Neighbor Advertisement to all-nodes (ff02::1) with Override set and Solicited clear
//! (RFC 4861 §7.2.6). Sent immediately and repeated on a schedule because any one frame may
//! be lost; MetalLB's is every 1.1 s for five rounds (t ≈ 0, 1.1, 2.2, 3.3, 4.4 s).
//!
//! The schedule is pure: callers pass the current time as a [`Duration`] since any fixed
//! origin and ask what is due.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::responder::ALL_NODES;
use crate::wire::{
    ArpOperation, ArpRepr, EthernetAddress, NdpRepr, NeighborFlags, arp_frame, ndp_frame,
};

/// How often takeover announcements are repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakeoverSchedule {
    /// Time between rounds.
    pub interval: Duration,
    /// Rounds in all, the immediate one included; 0 sends nothing.
    pub rounds: u32,
}

impl Default for TakeoverSchedule {
    /// MetalLB's: five rounds, 1.1 s apart.
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(1100),
            rounds: 5,
        }
    }
}

impl TakeoverSchedule {
    /// The offsets from the announcement at which rounds are sent.
    pub fn offsets(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.rounds).map(|i| self.interval.saturating_mul(i))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    next: Duration,
    remaining: u32,
}

/// Which announcements are due when, keyed by whatever identifies one (the runtime uses
/// interface and IP).
#[derive(Debug, Clone)]
pub struct Takeover<K: Ord + Clone> {
    schedule: TakeoverSchedule,
    pending: BTreeMap<K, Pending>,
}

impl<K: Ord + Clone> Takeover<K> {
    /// An empty schedule.
    pub fn new(schedule: TakeoverSchedule) -> Self {
        Self {
            schedule,
            pending: BTreeMap::new(),
        }
    }

    /// The schedule in use.
    pub fn schedule(&self) -> TakeoverSchedule {
        self.schedule
    }

    /// `key` was (re)announced at `now`: its first round is due at once and the full count of
    /// rounds starts again (a repeat while still announcing restarts the count, so the last
    /// announcement always gets every round).
    pub fn announce(&mut self, key: K, now: Duration) {
        if self.schedule.rounds == 0 {
            return;
        }
        self.pending.insert(
            key,
            Pending {
                next: now,
                remaining: self.schedule.rounds,
            },
        );
    }

    /// `key` is no longer announced: nothing more is sent for it.
    pub fn withdraw(&mut self, key: &K) {
        self.pending.remove(key);
    }

    /// Forgets every key `keep` rejects (for example every IP of a link that went away).
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.pending.retain(|k, _| keep(k));
    }

    /// The keys due at `now`, each once, in key order; their next round is scheduled one
    /// interval after `now` (a late poll delays later rounds rather than bunching them).
    pub fn poll(&mut self, now: Duration) -> Vec<K> {
        let mut due = Vec::new();
        let interval = self.schedule.interval;
        self.pending.retain(|key, p| {
            if p.next > now {
                return true;
            }
            due.push(key.clone());
            p.remaining = p.remaining.saturating_sub(1);
            p.next = now.saturating_add(interval);
            p.remaining > 0
        });
        due
    }

    /// When the next round is due, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.values().map(|p| p.next).min()
    }

    /// True when `key` still has rounds to send.
    pub fn is_pending(&self, key: &K) -> bool {
        self.pending.contains_key(key)
    }

    /// Number of keys with rounds to send.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The frames of one takeover round for `ip` from an interface with address `mac`: for IPv4
/// a gratuitous ARP request and reply (broadcast), for IPv6 an unsolicited Neighbor
/// Advertisement to ff02::1 with Override.
pub fn gratuitous_frames(ip: IpAddr, mac: EthernetAddress) -> Vec<Vec<u8>> {
    match ip {
        IpAddr::V4(v4) => {
            let arp = |operation, target_hardware_addr| ArpRepr {
                operation,
                source_hardware_addr: mac,
                source_protocol_addr: v4,
                target_hardware_addr,
                target_protocol_addr: v4,
            };
            vec![
                arp_frame(
                    mac,
                    EthernetAddress::BROADCAST,
                    arp(ArpOperation::Request, EthernetAddress::ZERO),
                ),
                arp_frame(
                    mac,
                    EthernetAddress::BROADCAST,
                    arp(ArpOperation::Reply, EthernetAddress::BROADCAST),
                ),
            ]
        }
        IpAddr::V6(v6) => vec![ndp_frame(
            (mac, EthernetAddress::ipv6_multicast(ALL_NODES)),
            (v6, ALL_NODES),
            NdpRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: false,
                    solicited: false,
                    override_: true,
                },
                target_addr: v6,
                target_lladdr: Some(mac),
            },
        )],
    }
}
