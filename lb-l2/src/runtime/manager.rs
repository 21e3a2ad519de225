//! The task that owns the sockets: applies announcements, follows links, sends takeover
//! rounds; and the per-interface receive task.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use futures_util::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
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
use crate::wire::{EthernetAddress, solicited_node};

type NetlinkEvents = futures_util::stream::BoxStream<
    'static,
    (
        NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    ),
>;

/// An interface that answers.
struct Active {
    name: String,
    mac: EthernetAddress,
    socket: Arc<AsyncFd<Socket>>,
    receiver: JoinHandle<()>,
    /// A UDP socket whose IPv6 group joins make the kernel send MLD reports.
    mld: Option<Socket>,
    ips: BTreeSet<IpAddr>,
    groups: BTreeSet<Ipv6Addr>,
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
            let deadline = self.takeover.next_deadline().map(|d| self.origin + d);
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
                    Some((message, _)) => self.on_netlink(message),
                    None => {
                        tracing::warn!("netlink link notifications stopped; relying on the periodic rescan");
                        events_open = false;
                    }
                },
                _ = rescan.tick() => match links::dump(&self.handle).await {
                    Ok(links) => {
                        self.links = links.into_iter().map(|l| (l.index, l)).collect();
                        self.reconcile_links();
                    }
                    Err(e) => tracing::warn!(error = %e, "link rescan failed"),
                },
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

    fn on_netlink(&mut self, message: NetlinkMessage<RouteNetlinkMessage>) {
        match message.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                let info = link_info(&link);
                self.links.insert(info.index, info);
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                self.links.remove(&link.header.index);
            }
            _ => return,
        }
        self.reconcile_links();
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
        let gone: Vec<u32> = self
            .active
            .keys()
            .filter(|i| !self.links.contains_key(i))
            .copied()
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
        let mld = Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).ok();
        self.active.insert(
            link.index,
            Active {
                name: link.name.clone(),
                mac,
                socket,
                receiver,
                mld,
                ips: BTreeSet::new(),
                groups: BTreeSet::new(),
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
        for status in lock(&self.shared.interfaces).values_mut() {
            status.active = false;
            status.reason = Some("responder stopped".to_owned());
        }
    }

    /// Brings every active interface's announced IPs, multicast groups and takeover rounds in
    /// line with the announced set, and the counters with the announced IPs.
    fn sync_ips(&mut self) {
        let now = self.origin.elapsed();
        let announced = self
            .shared
            .announced
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for (index, active) in &mut self.active {
            let wanted: BTreeSet<IpAddr> = announced.on_interface(&active.name).collect();
            for ip in wanted.difference(&active.ips) {
                tracing::info!(interface = %active.name, %ip, "announcing");
                self.takeover.announce((*index, *ip), now);
            }
            for ip in active.ips.difference(&wanted) {
                tracing::info!(interface = %active.name, %ip, "withdrawn");
                self.takeover.withdraw(&(*index, *ip));
            }
            let groups: BTreeSet<Ipv6Addr> = wanted
                .iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(solicited_node(*v6)),
                    IpAddr::V4(_) => None,
                })
                .collect();
            for group in groups.difference(&active.groups) {
                join(active, *index, *group, true);
            }
            for group in active.groups.difference(&groups) {
                join(active, *index, *group, false);
            }
            active.groups = groups;
            active.ips = wanted;
        }
        let ips: BTreeSet<IpAddr> = announced.iter().map(|(ip, _)| ip).collect();
        let mut counters = lock(&self.shared.counters);
        counters.retain(|ip, _| ips.contains(ip));
        for ip in ips {
            counters.entry(ip).or_default();
        }
    }

    fn run_takeover(&mut self) {
        let now = self.origin.elapsed();
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
                        tracing::warn!(interface = %active.name, %ip, error = %e, "takeover frame not sent");
                        self.shared.count_iface(index, |s| s.send_errors += 1);
                    }
                }
            }
        }
    }
}

fn join(active: &Active, index: u32, group: Ipv6Addr, add: bool) {
    let mac = EthernetAddress::ipv6_multicast(group);
    if let Err(e) = sys::packet_membership(active.socket.get_ref(), index, mac, add) {
        tracing::warn!(interface = %active.name, %group, error = %e, "link-layer multicast membership failed");
    }
    if let Some(mld) = &active.mld {
        let result = if add {
            mld.join_multicast_v6(&group, index)
        } else {
            mld.leave_multicast_v6(&group, index)
        };
        if let Err(e) = result {
            // IPv6 may be disabled on the link; the link-layer membership still receives.
            tracing::debug!(interface = %active.name, %group, error = %e, "IPv6 group membership (MLD) failed");
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
    let dst: [u8; 6] = frame
        .get(..6)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0xff; 6]);
    let ethertype = frame.get(12..14).map_or(0, |b| {
        u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ])
    });
    let addr = sys::link_addr(index, ethertype, Some(EthernetAddress(dst)));
    socket.send_to(frame, &addr).map(|_| ())
}

/// Reads every frame the filter passes on one interface and answers it.
async fn receive(
    socket: Arc<AsyncFd<Socket>>,
    index: u32,
    name: String,
    mac: EthernetAddress,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let mut guard = match socket.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(interface = %name, error = %e, "packet socket failed");
                return;
            }
        };
        loop {
            match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                Ok(Ok(n)) => {
                    let frame = buf.get(..n).unwrap_or(&[]);
                    handle_frame(
                        frame,
                        socket.get_ref(),
                        index,
                        Interface { name: &name, mac },
                        &shared,
                    );
                }
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
    }
}

fn handle_frame(
    frame: &[u8],
    socket: &Socket,
    index: u32,
    interface: Interface<'_>,
    shared: &Shared,
) {
    shared.count_iface(index, |s| s.frames_received += 1);
    let result = {
        let announced = shared
            .announced
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        respond(frame, interface, &announced)
    };
    match result {
        Ok(reply) => {
            shared.count_ip(reply.ip, |c| c.requests_received += 1);
            match send_frame(socket, index, &reply.frame) {
                Ok(()) => {
                    shared.count_ip(reply.ip, |c| c.responses_sent += 1);
                    shared.count_iface(index, |s| s.replies_sent += 1);
                }
                Err(e) => {
                    tracing::warn!(interface = %interface.name, ip = %reply.ip, error = %e, "reply not sent");
                    shared.count_iface(index, |s| s.send_errors += 1);
                }
            }
        }
        Err(reason) => {
            shared.count_iface(index, |s| *s.drops.entry(reason.name()).or_default() += 1);
            match &reason {
                DropReason::WrongInterface(ip) => {
                    shared.count_ip(*ip, |c| c.requests_received += 1);
                }
                DropReason::Conflict { ip, mac } => {
                    tracing::warn!(interface = %interface.name, %ip, %mac, "another host claims an IP we announce");
                    shared.count_ip(*ip, |c| c.conflicts += 1);
                }
                _ => tracing::trace!(interface = %interface.name, %reason, "frame not answered"),
            }
        }
    }
}
