//! The tokio responder: one `AF_PACKET` socket per eligible interface, links followed through
//! netlink, takeover announcements on a timer, and [`lb_core::Announcer`].
//!
//! # Sockets
//!
//! Each eligible interface gets a raw packet socket bound to it with a classic BPF filter
//! (see `sys::FILTER`) that passes only ARP requests and ICMPv6 Neighbor Solicitations and
//! drops this host's own outgoing frames, so other traffic never wakes the responder. Replies
//! and takeover frames are built by hand and sent on the same socket: no route, address or
//! neighbour entry on the node is needed, which matters for IPv6 (an ICMPv6 socket cannot
//! answer a solicitor it has no route to).
//!
//! For each announced IPv6 address the socket joins the link-layer multicast group of the
//! address's solicited-node group (so the NIC's filter passes the solicitations), and a UDP
//! socket on the interface joins the IPv6 group itself, so that the kernel sends MLD reports
//! and MLD-snooping switches forward the solicitations to this port.
//!
//! # Interfaces
//!
//! Links come from a netlink dump at start, then from link change notifications, and from a
//! full dump again every [`ResponderConfig::rescan`] in case a notification was lost. A link
//! that appears or comes up starts answering (and announces every IP it carries); one that
//! goes down or away stops.

mod links;
mod manager;
mod sys;

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use lb_core::{Announcement, Announcer, ServiceKey};
use tokio::sync::{mpsc, oneshot};

use crate::interfaces::{AnnouncedIps, ExcludePatterns};
use crate::takeover::TakeoverSchedule;
use crate::wire::EthernetAddress;

/// How the responder runs.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// Answer only on these interfaces (by name); empty means every eligible interface.
    /// Interfaces named here are not subject to [`ResponderConfig::exclude`]: naming one is
    /// an explicit choice. Announcements can narrow this further per service.
    pub only_interfaces: Vec<String>,
    /// Interface names never answered on (default: MetalLB's list).
    pub exclude: ExcludePatterns,
    /// When takeover announcements are sent.
    pub takeover: TakeoverSchedule,
    /// Full link re-list interval, a safety net behind netlink notifications.
    pub rescan: Duration,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            only_interfaces: Vec::new(),
            exclude: ExcludePatterns::default(),
            takeover: TakeoverSchedule::default(),
            rescan: Duration::from_secs(10),
        }
    }
}

/// Why the responder could not start or converge.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// A raw socket could not be opened (the process needs `CAP_NET_RAW`).
    #[error("cannot open a raw packet socket (CAP_NET_RAW is needed): {0}")]
    Socket(#[source] io::Error),
    /// Talking to the kernel over netlink failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The configuration cannot work.
    #[error("invalid layer-2 responder configuration: {0}")]
    Config(String),
    /// The responder was shut down.
    #[error("the layer-2 responder has stopped")]
    Stopped,
}

/// Counters for one announced IP (kept while it is announced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpCounters {
    /// ARP requests and Neighbor Solicitations received for it, on any interface.
    pub requests_received: u64,
    /// ARP replies and Neighbor Advertisements sent for it.
    pub responses_sent: u64,
    /// Gratuitous ARP and unsolicited Neighbor Advertisement frames sent for it.
    pub gratuitous_sent: u64,
    /// Gratuitous ARPs from another host claiming it.
    pub conflicts: u64,
}

/// One link as the responder sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStatus {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Ethernet address.
    pub mac: Option<EthernetAddress>,
    /// Whether it answers.
    pub active: bool,
    /// Why it does not answer (ineligible, or the socket error).
    pub reason: Option<String>,
    /// Frames the filter let through to the responder.
    pub frames_received: u64,
    /// Replies sent.
    pub replies_sent: u64,
    /// Takeover frames sent.
    pub gratuitous_sent: u64,
    /// Frames that could not be sent.
    pub send_errors: u64,
    /// Received frames not answered, by [`crate::DropReason::name`].
    pub drops: BTreeMap<&'static str, u64>,
}

/// State shared between the handle, the manager and the per-interface receivers.
#[derive(Debug, Default)]
struct Shared {
    announced: RwLock<AnnouncedIps>,
    counters: Mutex<BTreeMap<IpAddr, IpCounters>>,
    interfaces: Mutex<BTreeMap<u32, InterfaceStatus>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The announced set, for reading (the manager is its only writer).
    fn read_announced(&self) -> std::sync::RwLockReadGuard<'_, AnnouncedIps> {
        self.announced
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_ip(&self, ip: IpAddr, f: impl FnOnce(&mut IpCounters)) {
        if let Some(c) = lock(&self.counters).get_mut(&ip) {
            f(c);
        }
    }

    fn count_iface(&self, index: u32, f: impl FnOnce(&mut InterfaceStatus)) {
        if let Some(s) = lock(&self.interfaces).get_mut(&index) {
            f(s);
        }
    }
}

enum Command {
    Apply {
        service: ServiceKey,
        desired: Option<Announcement>,
        done: oneshot::Sender<()>,
    },
    Resync {
        desired: Vec<Announcement>,
        done: oneshot::Sender<()>,
    },
    Reannounce {
        done: oneshot::Sender<()>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A running responder. Cloning gives another handle to the same one; it stops on
/// [`Responder::shutdown`] or when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Responder {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apply { .. } => "Apply",
            Self::Resync { .. } => "Resync",
            Self::Reannounce { .. } => "Reannounce",
            Self::Shutdown { .. } => "Shutdown",
        })
    }
}

impl Responder {
    /// Lists the links, opens a socket on each eligible one and starts answering (nothing is
    /// announced yet). Must be called inside a tokio runtime; fails when raw sockets cannot
    /// be opened or netlink cannot be read.
    pub async fn start(config: ResponderConfig) -> Result<Self, L2Error> {
        // Fail early and clearly without CAP_NET_RAW rather than per interface later.
        drop(
            socket2::Socket::new(
                socket2::Domain::PACKET,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(0)),
            )
            .map_err(L2Error::Socket)?,
        );
        let shared = Arc::new(Shared::default());
        let (commands, rx) = mpsc::unbounded_channel();
        manager::Manager::start(config, Arc::clone(&shared), rx).await?;
        Ok(Self { commands, shared })
    }

    async fn send(&self, make: impl FnOnce(oneshot::Sender<()>) -> Command) -> Result<(), L2Error> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(make(done))
            .map_err(|_| L2Error::Stopped)?;
        wait.await.map_err(|_| L2Error::Stopped)
    }

    /// Stops answering everywhere and closes every socket; returns when done.
    pub async fn shutdown(&self) {
        let _ = self.send(|done| Command::Shutdown { done }).await;
    }

    /// Starts the takeover announcements again for every announced IP on every interface,
    /// as if each had just been announced. Useful when clients may hold another node's MAC
    /// for our IPs, for example after a network partition healed; returns once the first
    /// round is sent.
    pub async fn reannounce(&self) -> Result<(), L2Error> {
        self.send(|done| Command::Reannounce { done }).await
    }

    /// Counters per announced IP.
    pub fn counters(&self) -> BTreeMap<IpAddr, IpCounters> {
        lock(&self.shared.counters).clone()
    }

    /// Every link the responder knows, active or not, by index.
    pub fn interfaces(&self) -> Vec<InterfaceStatus> {
        lock(&self.shared.interfaces).values().cloned().collect()
    }

    /// The IPs currently announced with where.
    pub fn announced(&self) -> AnnouncedIps {
        self.shared.read_announced().clone()
    }
}

#[async_trait::async_trait]
impl Announcer for Responder {
    type Error = L2Error;

    /// Announces or withdraws one service. Returns once its sockets joined the groups and the
    /// first takeover round is sent. Only the Layer-2 part of the announcement matters: one
    /// without [`lb_core::L2Attributes`] withdraws.
    async fn apply(
        &self,
        service: &ServiceKey,
        desired: Option<&Announcement>,
    ) -> Result<(), L2Error> {
        let service = service.clone();
        let desired = desired.cloned();
        self.send(|done| Command::Apply {
            service,
            desired,
            done,
        })
        .await
    }

    async fn resync(&self, desired: &[Announcement]) -> Result<(), L2Error> {
        let desired = desired.to_vec();
        self.send(|done| Command::Resync { desired, done }).await
    }
}

/// A raw link-layer socket on one interface that sends hand-built Ethernet frames (and
/// receives nothing): for diagnostics and tests that need frames the kernel would not send,
/// such as an ARP reply or a Neighbor Advertisement from a chosen address. Needs
/// `CAP_NET_RAW`.
#[derive(Debug)]
pub struct RawSocket {
    socket: socket2::Socket,
    index: u32,
}

impl RawSocket {
    /// Opens a socket on the interface named `interface` in the calling thread's network
    /// namespace.
    pub fn open(interface: &str) -> io::Result<Self> {
        let index = sys::if_index(interface)?;
        Ok(Self {
            socket: sys::send_socket(index)?,
            index,
        })
    }

    /// The interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        manager::send_frame(&self.socket, self.index, frame)
    }
}
