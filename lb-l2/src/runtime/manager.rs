//! The task that owns the sockets: applies announcements, follows links, sends takeover
//! rounds; and the per-interface receive task.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use futures_util::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::links::{self, link_info};
use super::{Command, InterfaceStatus, L2Error, ResponderConfig, Shared, lock, sys};
use crate::interfaces::{AnnouncedIps, LinkInfo};
use crate::responder::{DropReason, Interface, respond};
use crate::takeover::{Takeover, gratuitous_frames};
use crate::wire::{EthernetAddress, EthernetFrame, solicited_node};

type NetlinkEvents = futures_util::stream::BoxStream<
    'static,
    (
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    ),
>;

/// IPv6 group joins per MLD socket: each join takes socket option memory, limited per socket
/// by `net.core.optmem_max` (20 KiB on older kernels, enough for a few hundred groups).
const GROUPS_PER_MLD_SOCKET: usize = 128;

/// Frames handled per wake-up before the receive task yields, so a flood on one interface
/// cannot starve the manager, the signals or the other interfaces.
const FRAMES_PER_WAKEUP: usize = 64;

/// An interface that answers.
struct Active {
    name: String,
    mac: EthernetAddress,
    carrier: bool,
    socket: Arc<AsyncFd<Socket>>,
    receiver: JoinHandle<()>,
    ips: BTreeSet<IpAddr>,
    /// Solicited-node groups whose link-layer address the packet socket is a member of.
    link_groups: BTreeSet<Ipv6Addr>,
    /// UDP sockets whose IPv6 group joins make the kernel send MLD reports, and the groups
    /// joined on each (by index into `mld`).
    mld: Vec<(Socket, usize)>,
    mld_groups: BTreeMap<Ipv6Addr, usize>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

pub(super) struct Manager {
    config: ResponderConfig,
    shared: Arc<Shared>,
    handle: rtnetlink::Handle,
    links: BTreeMap<u32, LinkInfo>,
    active: BTreeMap<u32, Active>,
    takeover: Takeover<(u32, IpAddr)>,
    origin: Instant,
}

impl Manager {
    /// Lists the links, opens the sockets, and spawns the manager task.
    pub(super) async fn start(
        config: ResponderConfig,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), L2Error> {
        if config.rescan.is_zero() {
            return Err(L2Error::Config("rescan interval must not be zero".into()));
        }
        if config.takeover.rounds > 1 && config.takeover.interval.is_zero() {
            return Err(L2Error::Config(
                "takeover interval must not be zero when more than one round is sent".into(),
            ));
        }
        let netlink = |e: std::io::Error| L2Error::Netlink(e.to_string());
        let (conn, handle, _) = rtnetlink::new_connection().map_err(netlink)?;
        tokio::spawn(conn);
        let (events_conn, _, events) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .map_err(netlink)?;
        tokio::spawn(events_conn);
        let links = links::dump(&handle).await?;
        let mut manager = Self {
            takeover: Takeover::new(config.takeover),
            config,
            shared,
            handle,
            links: links.into_iter().map(|l| (l.index, l)).collect(),
            active: BTreeMap::new(),
            origin: Instant::now(),
        };
        manager.reconcile_links();
        tokio::spawn(manager.run(commands, events.boxed()));
        Ok(())
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: NetlinkEvents,
    ) {
        let mut rescan = tokio::time::interval(self.config.rescan);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        let mut events_open = true;
        loop {
            let deadline = self
                .takeover
                .next_deadline()
                .and_then(|d| self.origin.checked_add(d));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Apply { service, desired, done }) => {
                        let changed = self.write_announced(|a| a.apply(&service, desired.as_ref()));
                        if changed {
                            self.sync_ips();
                        }
                        self.run_takeover();
                        let _ = done.send(());
                    }
                    Some(Command::Resync { desired, done }) => {
                        if self.write_announced(|a| a.resync(&desired)) {
                            self.sync_ips();
                        }
                        self.run_takeover();
                        let _ = done.send(());
                    }
                    Some(Command::Reannounce { done }) => {
                        let now = self.origin.elapsed();
                        for (index, active) in &self.active {
                            for ip in &active.ips {
                                self.takeover.announce((*index, *ip), now);
                            }
                        }
                        self.run_takeover();
                        let _ = done.send(());
                    }
                    Some(Command::Shutdown { done }) => {
                        self.stop();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop();
                        return;
                    }
                },
                event = events.next(), if events_open => match event {
                    Some((message, _)) => {
                        if self.on_netlink(message) {
                            // Notifications were lost: list everything now.
                            tracing::warn!("netlink notifications overran; listing links again");
                            self.rescan().await;
                            rescan.reset();
                        }
                    }
                    None => {
                        tracing::warn!("netlink link notifications stopped; relying on the periodic rescan");
                        events_open = false;
                    }
                },
                _ = rescan.tick() => self.rescan().await,
                () = sleep_until(deadline) => {}
            }
            self.run_takeover();
        }
    }

    fn write_announced(&self, f: impl FnOnce(&mut AnnouncedIps) -> bool) -> bool {
        let mut announced = self
            .shared
            .announced
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut announced)
    }

    /// Lists the links again, and retries what failed (sockets, group memberships).
    async fn rescan(&mut self) {
        match links::dump(&self.handle).await {
            Ok(links) => {
                self.links = links.into_iter().map(|l| (l.index, l)).collect();
                self.reconcile_links();
            }
            Err(e) => tracing::warn!(error = %e, "link rescan failed"),
        }
        self.sync_ips();
    }

    /// Applies one link notification; true when notifications were lost (overrun).
    fn on_netlink(&mut self, message: NetlinkMessage<RouteNetlinkMessage>) -> bool {
        let (link, deleted) = match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => (link, false),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => (link, true),
            NetlinkPayload::Overrun(_) => return true,
            _ => return false,
        };
        // Bridge port and VLAN notifications (AF_BRIDGE) describe a link's bridge state, with
        // the bridge as "master" even for the bridge itself: not the link.
        if link.header.interface_family != AddressFamily::Unspec {
            return false;
        }
        if deleted {
            self.links.remove(&link.header.index);
        } else {
            let info = link_info(&link);
            self.links.insert(info.index, info);
        }
        self.reconcile_links();
        false
    }

    /// Which links should answer, given the current link list.
    fn wanted(&self, link: &LinkInfo) -> Result<EthernetAddress, String> {
        let named = self.config.only_interfaces.contains(&link.name);
        if !self.config.only_interfaces.is_empty() && !named {
            return Err("not in the configured interface list".to_owned());
        }
        let none = crate::interfaces::ExcludePatterns::none();
        let exclude = if named { &none } else { &self.config.exclude };
        link.eligibility(exclude).map_err(|e| e.to_string())
    }

    fn reconcile_links(&mut self) {
        // A receive task ends only when its socket failed: close it, and open a new one
        // below if the link still qualifies.
        let gone: Vec<u32> = self
            .active
            .iter()
            .filter(|(i, a)| !self.links.contains_key(i) || a.receiver.is_finished())
            .map(|(i, _)| *i)
            .collect();
        for index in gone {
            self.deactivate(index);
        }
        let links: Vec<LinkInfo> = self.links.values().cloned().collect();
        for link in &links {
            let wanted = self.wanted(link);
            let current = self
                .active
                .get(&link.index)
                .map(|a| (a.mac, a.name.clone()));
            match (wanted, current) {
                (Ok(mac), Some((old_mac, old_name))) if mac == old_mac && link.name == old_name => {
                    self.carrier_changed(link);
                }
                (Ok(mac), current) => {
                    if current.is_some() {
                        self.deactivate(link.index);
                    }
                    self.activate(link, mac);
                }
                (Err(reason), current) => {
                    if current.is_some() {
                        tracing::info!(interface = %link.name, %reason, "interface stops answering");
                        self.deactivate(link.index);
                    }
                    self.set_status(link, false, Some(reason));
                }
            }
        }
        let mut statuses = lock(&self.shared.interfaces);
        statuses.retain(|index, _| self.links.contains_key(index));
    }

    /// A link whose carrier came back announces its IPs again: it may now be plugged into
    /// another switch, or the switch may have restarted and forgotten every MAC.
    fn carrier_changed(&mut self, link: &LinkInfo) {
        let now = self.origin.elapsed();
        let Some(active) = self.active.get_mut(&link.index) else {
            return;
        };
        let returned = link.carrier && !active.carrier;
        active.carrier = link.carrier;
        if returned {
            tracing::info!(interface = %link.name, ips = active.ips.len(), "carrier is back; announcing again");
            for ip in &active.ips {
                self.takeover.announce((link.index, *ip), now);
            }
        }
    }

    fn set_status(&self, link: &LinkInfo, active: bool, reason: Option<String>) {
        let mut statuses = lock(&self.shared.interfaces);
        let status = statuses
            .entry(link.index)
            .or_insert_with(|| InterfaceStatus {
                index: link.index,
                ..InterfaceStatus::default()
            });
        status.name.clone_from(&link.name);
        status.mac = link.mac;
        status.active = active;
        status.reason = reason;
    }

    fn activate(&mut self, link: &LinkInfo, mac: EthernetAddress) {
        let socket = match sys::async_packet_socket(link.index) {
            Ok(socket) => Arc::new(socket),
            Err(e) => {
                tracing::warn!(interface = %link.name, error = %e, "cannot open a packet socket; retrying at the next rescan");
                self.set_status(link, false, Some(format!("socket: {e}")));
                return;
            }
        };
        self.set_status(link, true, None);
        tracing::info!(interface = %link.name, index = link.index, %mac, "interface answers");
        let receiver = tokio::spawn(receive(
            Arc::clone(&socket),
            link.index,
            link.name.clone(),
            mac,
            Arc::clone(&self.shared),
        ));
        self.active.insert(
            link.index,
            Active {
                name: link.name.clone(),
                mac,
                carrier: link.carrier,
                socket,
                receiver,
                ips: BTreeSet::new(),
                link_groups: BTreeSet::new(),
                mld: Vec::new(),
                mld_groups: BTreeMap::new(),
            },
        );
        self.sync_ips();
    }

    fn deactivate(&mut self, index: u32) {
        self.takeover.retain(|(i, _)| *i != index);
        // Dropping the socket closes it, which leaves its groups.
        self.active.remove(&index);
    }

    fn stop(&mut self) {
        self.takeover.retain(|_| false);
        self.active.clear();
        self.write_announced(|a| a.resync(&[]));
        lock(&self.shared.counters).clear();
        for status in lock(&self.shared.interfaces).values_mut() {
            status.active = false;
            status.reason = Some("responder stopped".to_owned());
        }
    }

    /// Brings every active interface's announced IPs, multicast groups and takeover rounds in
    /// line with the announced set, and the counters with the announced IPs.
    fn sync_ips(&mut self) {
        let now = self.origin.elapsed();
        // Read in place (no copy of the set): receivers only read it, and this task is the
        // only writer, so holding the read guard here blocks nobody.
        let shared = Arc::clone(&self.shared);
        let announced = shared.read_announced();
        for (index, active) in &mut self.active {
            let wanted: BTreeSet<IpAddr> = announced.on_interface(&active.name).collect();
            let added: Vec<IpAddr> = wanted.difference(&active.ips).copied().collect();
            let removed: Vec<IpAddr> = active.ips.difference(&wanted).copied().collect();
            for ip in &added {
                tracing::debug!(interface = %active.name, %ip, "announcing");
                self.takeover.announce((*index, *ip), now);
            }
            for ip in &removed {
                tracing::debug!(interface = %active.name, %ip, "withdrawn");
                self.takeover.withdraw(&(*index, *ip));
            }
            if !added.is_empty() || !removed.is_empty() {
                tracing::info!(
                    interface = %active.name,
                    added = added.len(),
                    removed = removed.len(),
                    announced = wanted.len(),
                    "announced IPs changed"
                );
            }
            let groups: BTreeSet<Ipv6Addr> = wanted
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(solicited_node(*v6)),
                    IpAddr::V4(_) => None,
                })
                .collect();
            active.sync_groups(*index, &groups);
            active.ips = wanted;
        }
        // Rebuilt from the (sorted) announced IPs in one pass, keeping each IP's counts: a
        // map built in order is packed, one filled entry by entry is about half empty.
        let mut counters = lock(&shared.counters);
        if counters
            .keys()
            .copied()
            .eq(announced.iter().map(|(ip, _)| ip))
        {
            return;
        }
        let mut before = std::mem::take(&mut *counters);
        *counters = announced
            .iter()
            .map(|(ip, _)| (ip, before.remove(&ip).unwrap_or_default()))
            .collect();
    }

    fn run_takeover(&mut self) {
        let now = self.origin.elapsed();
        let mut failed = 0u64;
        let mut last_error = None;
        for (index, ip) in self.takeover.poll(now) {
            let Some(active) = self.active.get(&index) else {
                continue;
            };
            for frame in gratuitous_frames(ip, active.mac) {
                match send_frame(active.socket.get_ref(), index, &frame) {
                    Ok(()) => {
                        self.shared.count_ip(ip, |c| c.gratuitous_sent += 1);
                        self.shared.count_iface(index, |s| s.gratuitous_sent += 1);
                    }
                    Err(e) => {
                        failed += 1;
                        last_error = Some(e);
                        self.shared.count_iface(index, |s| s.send_errors += 1);
                    }
                }
            }
        }
        if let Some(e) = last_error {
            // One line per round, not per frame: a large failover can fill the queue.
            tracing::warn!(frames = failed, error = %e, "takeover frames not sent (later rounds repeat them)");
        }
    }
}

impl Active {
    /// Brings the link-layer and IPv6 (MLD) memberships in line with `groups`. A membership
    /// that fails is not recorded, so the next call (at the latest the next rescan) retries it.
    fn sync_groups(&mut self, index: u32, groups: &BTreeSet<Ipv6Addr>) {
        let before = (self.link_groups.len(), self.mld_groups.len());
        let stale: Vec<Ipv6Addr> = self.link_groups.difference(groups).copied().collect();
        let mut changed = !stale.is_empty();
        for group in stale {
            let mac = EthernetAddress::ipv6_multicast(group);
            let _ = sys::packet_membership(self.socket.get_ref(), index, mac, false);
            self.link_groups.remove(&group);
        }
        let stale: Vec<(Ipv6Addr, usize)> = self
            .mld_groups
            .iter()
            .filter(|(g, _)| !groups.contains(g))
            .map(|(g, i)| (*g, *i))
            .collect();
        changed |= !stale.is_empty();
        for (group, at) in stale {
            if let Some((socket, count)) = self.mld.get_mut(at) {
                let _ = socket.leave_multicast_v6(&group, index);
                *count = count.saturating_sub(1);
            }
            self.mld_groups.remove(&group);
        }
        for group in groups {
            if !self.link_groups.contains(group) {
                let mac = EthernetAddress::ipv6_multicast(*group);
                match sys::packet_membership(self.socket.get_ref(), index, mac, true) {
                    Ok(()) => {
                        self.link_groups.insert(*group);
                    }
                    Err(e) => tracing::warn!(
                        interface = %self.name, %group, error = %e,
                        "link-layer multicast membership failed; solicitations may not arrive; retrying at the next rescan"
                    ),
                }
            }
            if !self.mld_groups.contains_key(group) {
                self.join_mld(index, *group);
            }
        }
        // Changed one entry at a time, the sets end up about half empty; rebuilt in one pass
        // they are packed (thousands of IPv6 addresses mean thousands of groups).
        if changed || before != (self.link_groups.len(), self.mld_groups.len()) {
            self.link_groups = std::mem::take(&mut self.link_groups).into_iter().collect();
            self.mld_groups = std::mem::take(&mut self.mld_groups).into_iter().collect();
        }
    }

    fn join_mld(&mut self, index: u32, group: Ipv6Addr) {
        let at = match self
            .mld
            .iter()
            .position(|(_, count)| *count < GROUPS_PER_MLD_SOCKET)
        {
            Some(at) => at,
            None => match Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None) {
                Ok(socket) => {
                    self.mld.push((socket, 0));
                    self.mld.len() - 1
                }
                Err(e) => {
                    tracing::debug!(interface = %self.name, error = %e, "no IPv6 socket for MLD joins");
                    return;
                }
            },
        };
        let Some((socket, count)) = self.mld.get_mut(at) else {
            return;
        };
        match socket.join_multicast_v6(&group, index) {
            Ok(()) => {
                *count += 1;
                self.mld_groups.insert(group, at);
            }
            // IPv6 disabled on the link: the link-layer membership still receives.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {
                tracing::debug!(interface = %self.name, %group, error = %e, "no IPv6 on the link; no MLD report");
            }
            Err(e) => tracing::warn!(
                interface = %self.name, %group, error = %e,
                "IPv6 group membership (MLD) failed; snooping switches may not forward solicitations; retrying at the next rescan"
            ),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends one hand-built frame out of `index`, addressed by its own destination and EtherType.
pub(super) fn send_frame(socket: &Socket, index: u32, frame: &[u8]) -> std::io::Result<()> {
    let view = EthernetFrame::new_unchecked(frame);
    let addr = sys::link_addr(index, view.ethertype().0, Some(view.dst_addr()));
    socket.send_to(frame, &addr).map(|_| ())
}

/// Logs a warning at most once per interval, counting what it held back.
struct Throttle {
    next: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

    const fn new() -> Self {
        Self {
            next: None,
            held_back: 0,
        }
    }

    /// `Some(number held back since the last line)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            self.held_back += 1;
            return None;
        }
        self.next = Some(now + Self::INTERVAL);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Per-receiver state that is not shared.
struct Receiver<'a> {
    socket: &'a Socket,
    index: u32,
    interface: Interface<'a>,
    shared: &'a Shared,
    conflict_log: Throttle,
    send_log: Throttle,
}

/// Reads every frame the filter passes on one interface and answers it.
async fn receive(
    socket: Arc<AsyncFd<Socket>>,
    index: u32,
    name: String,
    mac: EthernetAddress,
    shared: Arc<Shared>,
) {
    let mut receiver = Receiver {
        socket: socket.get_ref(),
        index,
        interface: Interface { name: &name, mac },
        shared: &shared,
        conflict_log: Throttle::new(),
        send_log: Throttle::new(),
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let mut guard = match socket.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(interface = %name, error = %e, "packet socket failed; reopening at the next rescan");
                shared.count_iface(index, |s| {
                    s.active = false;
                    s.reason = Some(format!("socket failed: {e}"));
                });
                return;
            }
        };
        for _ in 0..FRAMES_PER_WAKEUP {
            match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                Ok(Ok(n)) => receiver.handle(buf.get(..n).unwrap_or(&[])),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    // ENETDOWN and friends while a link goes away; the manager closes us.
                    tracing::debug!(interface = %name, error = %e, "receive error");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    break;
                }
                Err(_would_block) => break,
            }
        }
        // Readiness is kept when the budget ran out, so the next `readable` returns at once,
        // after every other task had its turn.
        tokio::task::yield_now().await;
    }
}

impl Receiver<'_> {
    fn handle(&mut self, frame: &[u8]) {
        let (index, interface, shared) = (self.index, self.interface, self.shared);
        // The announced set stays read-locked until the reply is sent, so once a withdrawal
        // returns no reply for a withdrawn IP can still be on its way out.
        let announced = shared.read_announced();
        let outcome = match respond(frame, interface, &announced) {
            Ok(reply) => {
                let sent = send_frame(self.socket, index, &reply.frame);
                shared.count_ip(reply.ip, |c| {
                    c.requests_received += 1;
                    c.responses_sent += u64::from(sent.is_ok());
                });
                if let Err(e) = &sent
                    && let Some(held_back) = self.send_log.allow()
                {
                    tracing::warn!(interface = %interface.name, ip = %reply.ip, error = %e, held_back, "reply not sent");
                }
                Ok(sent.is_ok())
            }
            Err(reason) => {
                match &reason {
                    DropReason::WrongInterface(ip) => {
                        shared.count_ip(*ip, |c| c.requests_received += 1);
                    }
                    DropReason::Conflict { ip, mac } => {
                        shared.count_ip(*ip, |c| c.conflicts += 1);
                        if let Some(held_back) = self.conflict_log.allow() {
                            tracing::warn!(interface = %interface.name, %ip, %mac, held_back, "another host claims an IP we announce");
                        }
                    }
                    _ => {
                        tracing::trace!(interface = %interface.name, %reason, "frame not answered");
                    }
                }
                Err(reason.name())
            }
        };
        drop(announced);
        // One lock of the interface table per frame.
        shared.count_iface(index, |s| {
            s.frames_received += 1;
            match outcome {
                Ok(true) => s.replies_sent += 1,
                Ok(false) => s.send_errors += 1,
                Err(reason) => *s.drops.entry(reason).or_default() += 1,
            }
        });
    }
}
