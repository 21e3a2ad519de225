//! The tokio driver: one UDP socket, one task. It only waits for a datagram, the core's
//! deadline or a command, hands it to the [`Core`] with the current time, sends what the core
//! returns (never waiting for room in the socket: a datagram that does not fit is dropped and
//! counted) and publishes its view.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::core::{Core, Transmit};
use crate::{Counters, MembershipConfig, MembershipError, Sealer, View};

enum Command {
    Seeds(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership agent.
#[derive(Debug)]
pub struct Membership {
    view: watch::Receiver<View>,
    counters: watch::Receiver<Counters>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Membership {
    /// Binds the socket and starts the agent; it announces itself to the seeds at once.
    ///
    /// Fails when the timers are not usable, the socket cannot be bound or the system has no
    /// randomness.
    pub async fn start(config: MembershipConfig, sealer: Sealer) -> Result<Self, MembershipError> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| MembershipError::NoRandomness)?;
        let bind = config.bind;
        let core = Core::new(
            config,
            sealer,
            now_millis(),
            seed,
            std::time::Instant::now(),
        )?;
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|source| MembershipError::Bind { addr: bind, source })?;
        let (view_tx, view) = watch::channel(core.view().clone());
        let (counters_tx, counters) = watch::channel(Counters::default());
        let (commands, rx) = mpsc::channel(8);
        let task = tokio::spawn(run(core, socket, rx, view_tx, counters_tx));
        Ok(Self {
            view,
            counters,
            commands,
            task,
        })
    }

    /// The current view; `changed()` on the receiver wakes on every change.
    pub fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Datagram counters.
    pub fn counters(&self) -> Counters {
        *self.counters.borrow()
    }

    /// Replaces the seeds (for example when the speaker pods change).
    pub async fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        let _ = self.commands.send(Command::Seeds(seeds)).await;
    }

    /// Tells the others we are leaving (they drop us at once) and stops the agent.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
        self.task.abort();
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut core: Core,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    view_tx: watch::Sender<View>,
    counters_tx: watch::Sender<Counters>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        flush(&mut core, &socket, &view_tx, &counters_tx);
        let deadline = core.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    let now = std::time::Instant::now();
                    core.handle_datagram(buf.get(..n).unwrap_or_default(), from, now);
                }
            }
            () = sleep_until(deadline) => core.handle_timeout(std::time::Instant::now()),
            command = commands.recv() => match command {
                Some(Command::Seeds(seeds)) => core.set_seeds(seeds, std::time::Instant::now()),
                Some(Command::Leave(done)) => {
                    core.leave(std::time::Instant::now());
                    flush(&mut core, &socket, &view_tx, &counters_tx);
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
        }
    }
}

/// Sends everything the core has to send and publishes its view and counters when they
/// changed.
fn flush(
    core: &mut Core,
    socket: &UdpSocket,
    view_tx: &watch::Sender<View>,
    counters_tx: &watch::Sender<Counters>,
) {
    while let Some(t) = core.poll_transmit() {
        match t {
            // Never wait for room: a full buffer (say, datagrams queued for addresses that do
            // not answer ARP) must not stall the loop; SWIM copes with a lost datagram.
            Transmit::Sealed { to, datagram } => match socket.try_send_to(&datagram, to) {
                Ok(_) => core.count_sent(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => core.count_dropped(),
                Err(_) => {}
            },
            Transmit::Notice { to, nonce } => {
                if let Err(e) = socket.try_send_to(&crate::mismatch_notice(&nonce), to)
                    && e.kind() == std::io::ErrorKind::WouldBlock
                {
                    core.count_dropped();
                }
            }
        }
    }
    view_tx.send_if_modified(|v| {
        if v == core.view() {
            false
        } else {
            v.clone_from(core.view());
            true
        }
    });
    let counters = core.counters();
    counters_tx.send_if_modified(|c| {
        if *c == counters {
            false
        } else {
            *c = counters;
            true
        }
    });
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
