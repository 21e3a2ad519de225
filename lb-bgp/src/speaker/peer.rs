//! The task that runs one peer: the state machine, its connections and its Adj-RIB-Out.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::conn::{ConnEvent, Connection, SocketOptions, connect, set_ttl};
use super::log_limit::LogLimit;
use super::{PeerConfig, PeerEvent, PeerStatus, RouteTable, lock};
use crate::fsm::{Action, Direction, DownReason, Event, Session, SessionConfig, State};
use crate::rib::{AdjRibOut, RouteSet, SessionParams};
use crate::wire::{Codec, Message, Notification};

/// Commands from the speaker to a peer task.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    /// The peer connected to our listener.
    Inbound(TcpStream),
    /// Close the session with this NOTIFICATION and end the task.
    Stop(Notification),
}

type ConnectFuture = std::pin::Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>>;

/// Messages read from a peer's connections and not yet handled, at most: beyond that the
/// readers stop reading and TCP slows the peer down (an UPDATE flood cannot grow memory).
const FRAMES_IN_FLIGHT: usize = 64;

pub(crate) struct PeerTask {
    pub(crate) config: PeerConfig,
    pub(crate) session: SessionConfig,
    pub(crate) status: Arc<Mutex<PeerStatus>>,
    pub(crate) events: broadcast::Sender<PeerEvent>,
    pub(crate) routes: watch::Receiver<Arc<RouteTable>>,
    pub(crate) commands: mpsc::Receiver<PeerCommand>,
    /// Whether the forwarding path to the peer is down (BFD said so): the session is reset
    /// with Cease / BFD Down and stays idle until it is up. A watch, so the latest verdict
    /// always arrives, however busy the task is.
    pub(crate) path: watch::Receiver<bool>,
    pub(crate) path_down: bool,
}

struct Runtime {
    start: Instant,
    session: Session,
    outbound: Option<Connection>,
    inbound: Option<Connection>,
    pending_inbound: Option<TcpStream>,
    next_id: u64,
    connecting: Option<ConnectFuture>,
    rib: Option<(Direction, AdjRibOut)>,
    conn_tx: mpsc::Sender<ConnEvent>,
    /// A connection whose peer does not read: its session is reset after the actions at hand.
    overflowed: Option<Direction>,
    /// The bound on this peer's warnings about what it sent.
    log_limit: LogLimit,
    /// The bound on the lines about its ROUTE-REFRESH requests (a peer may send thousands).
    refresh_log: LogLimit,
}

impl Runtime {
    fn conn(&self, dir: Direction) -> Option<&Connection> {
        match dir {
            Direction::Outbound => self.outbound.as_ref(),
            Direction::Inbound => self.inbound.as_ref(),
        }
    }

    fn conn_mut(&mut self, dir: Direction) -> Option<&mut Connection> {
        match dir {
            Direction::Outbound => self.outbound.as_mut(),
            Direction::Inbound => self.inbound.as_mut(),
        }
    }
}

impl PeerTask {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn desired(&self) -> RouteSet {
        self.routes.borrow().for_peer(&self.config.name)
    }

    pub(crate) async fn run(mut self) {
        let (conn_tx, mut conn_rx) = mpsc::channel(FRAMES_IN_FLIGHT);
        let mut rt = Runtime {
            start: Instant::now(),
            session: Session::new(self.session.clone()),
            outbound: None,
            inbound: None,
            pending_inbound: None,
            next_id: 0,
            connecting: None,
            rib: None,
            conn_tx,
            overflowed: None,
            log_limit: LogLimit::default(),
            refresh_log: LogLimit::default(),
        };
        let now = rt.start.elapsed();
        self.path_down = *self.path.borrow_and_update();
        lock(&self.status).path_down = self.path_down;
        if !self.path_down {
            let actions = rt.session.handle(now, Event::Start);
            self.execute(&mut rt, actions);
        }
        loop {
            let deadline = rt.session.next_deadline().map(|d| rt.start + d);
            let connecting = rt.connecting.as_mut();
            tokio::select! {
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let actions = rt.session.poll(rt.start.elapsed());
                    self.execute(&mut rt, actions);
                }
                result = async {
                    match connecting {
                        Some(fut) => fut.await,
                        None => std::future::pending().await,
                    }
                } => {
                    rt.connecting = None;
                    let event = match result {
                        Ok(stream) => match Connection::spawn(stream, Direction::Outbound, rt.next_id, rt.conn_tx.clone()) {
                            Ok(conn) => {
                                rt.next_id += 1;
                                rt.outbound = Some(conn);
                                Event::Connected
                            }
                            Err(err) => {
                                self.note_error(format!("connection to {}: {err}", self.config.address));
                                Event::ConnectFailed
                            }
                        },
                        Err(err) => {
                            self.note_error(format!("connect to {}: {err}", self.config.address));
                            Event::ConnectFailed
                        }
                    };
                    let actions = rt.session.handle(rt.start.elapsed(), event);
                    self.execute(&mut rt, actions);
                }
                Some(ev) = conn_rx.recv() => {
                    self.on_conn_event(&mut rt, ev);
                }
                cmd = self.commands.recv() => match cmd {
                    Some(PeerCommand::Inbound(stream)) if rt.inbound.is_some() => {
                        // One inbound connection at a time: a second is refused outright.
                        reject(stream);
                    }
                    Some(PeerCommand::Inbound(stream)) => {
                        rt.pending_inbound = Some(stream);
                        let actions = rt.session.handle(rt.start.elapsed(), Event::Accepted);
                        self.execute(&mut rt, actions);
                        // Not taken by the state machine: it was rejected.
                        rt.pending_inbound = None;
                    }
                    Some(PeerCommand::Stop(notification)) => {
                        let actions = rt.session.handle(rt.start.elapsed(), Event::Stop(notification));
                        self.execute(&mut rt, actions);
                        break;
                    }
                    None => {
                        let actions = rt.session.handle(
                            rt.start.elapsed(),
                            Event::Stop(Notification::shutdown("speaker stopped")),
                        );
                        self.execute(&mut rt, actions);
                        break;
                    }
                },
                Ok(()) = self.path.changed() => {
                    let down = *self.path.borrow_and_update();
                    if down != self.path_down {
                        self.path_down = down;
                        lock(&self.status).path_down = down;
                        let event = if down {
                            tracing::warn!(peer = %self.name(), "forwarding path down (BFD): session reset, held until it is up");
                            Event::Stop(Notification::new(
                                crate::wire::ErrorCode::Cease,
                                crate::wire::cease::BFD_DOWN,
                                vec![],
                            ))
                        } else {
                            tracing::info!(peer = %self.name(), "forwarding path up (BFD): connecting");
                            Event::Start
                        };
                        let actions = rt.session.handle(rt.start.elapsed(), event);
                        self.execute(&mut rt, actions);
                    }
                }
                Ok(()) = self.routes.changed() => {
                    let desired = self.desired();
                    if let Some((dir, rib)) = rt.rib.as_mut() {
                        let updates = rib.sync(&desired);
                        let dir = *dir;
                        self.send_updates(&mut rt, dir, updates.into_iter().map(Message::Update));
                    }
                }
            }
        }
        if let Some(conn) = rt.outbound.take() {
            conn.close();
        }
        if let Some(conn) = rt.inbound.take() {
            conn.close();
        }
    }

    fn note_error(&self, message: String) {
        tracing::debug!(peer = %self.name(), "{message}");
        lock(&self.status).last_error = Some(message);
    }

    fn on_conn_event(&self, rt: &mut Runtime, ev: ConnEvent) {
        let (dir, id) = match &ev {
            ConnEvent::Frame(d, id, _)
            | ConnEvent::Malformed(d, id, _)
            | ConnEvent::Closed(d, id) => (*d, *id),
        };
        let Some(codec) = rt.conn(dir).filter(|c| c.id == id).map(|c| c.codec) else {
            return;
        };
        let event = match ev {
            ConnEvent::Frame(_, _, bytes) => match Message::decode(&bytes, codec) {
                Ok(message) => {
                    let mut status = lock(&self.status);
                    status.messages_received += 1;
                    if let Message::Notification(n) = &message {
                        status.notifications_received += 1;
                        status.last_error = Some(format!("received NOTIFICATION {n}"));
                    }
                    if let Message::Update(u) = &message {
                        for issue in &u.issues {
                            if let Some(suppressed) = rt.log_limit.allow(Instant::now().into_std())
                            {
                                tracing::warn!(peer = %self.name(), attribute = issue.type_code, suppressed,
                                    "UPDATE error handled as {:?}: {}", issue.treatment, issue.reason);
                            }
                        }
                    }
                    Event::Message(dir, message)
                }
                Err(err) => {
                    tracing::warn!(peer = %self.name(), "malformed message: {err}");
                    Event::DecodeError(dir, err)
                }
            },
            ConnEvent::Malformed(_, _, err) => {
                tracing::warn!(peer = %self.name(), "malformed message: {err}");
                Event::DecodeError(dir, err)
            }
            ConnEvent::Closed(_, _) => Event::Closed(dir),
        };
        let actions = rt.session.handle(rt.start.elapsed(), event);
        self.execute(rt, actions);
    }

    fn send_updates(
        &self,
        rt: &mut Runtime,
        dir: Direction,
        messages: impl Iterator<Item = Message>,
    ) {
        let Some(conn) = rt.conn(dir) else { return };
        let codec = conn.codec;
        let mut batch = Vec::new();
        let mut count = 0u64;
        for m in messages {
            match m.encode(codec, &mut batch) {
                Ok(()) => count += 1,
                Err(err) => {
                    tracing::error!(peer = %self.name(), "cannot encode {}: {err}", m.name());
                }
            }
        }
        if !batch.is_empty() && conn.send(batch).is_err() {
            rt.overflowed = Some(dir);
            return;
        }
        let mut status = lock(&self.status);
        status.updates_sent += count;
        status.messages_sent += count;
        if let Some((_, rib)) = &rt.rib {
            status.prefixes_announced = rib.advertised().len();
        }
    }

    fn execute(&self, rt: &mut Runtime, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect => {
                    let peer = SocketAddr::new(self.config.address, self.config.port);
                    let options = SocketOptions {
                        source: self.config.source,
                        ttl: self.config.ttl(),
                        password: self.config.password.clone(),
                    };
                    let timeout = self.config.connect_timeout;
                    lock(&self.status).connect_attempts += 1;
                    rt.connecting =
                        Some(Box::pin(
                            async move { connect(peer, &options, timeout).await },
                        ));
                }
                Action::Send(dir, message) => {
                    if dir == Direction::Inbound && rt.inbound.is_none() {
                        // The state machine answered an accepted connection: adopt it.
                        self.adopt_inbound(rt);
                    }
                    let Some(conn) = rt.conn(dir) else { continue };
                    match message.to_bytes(conn.codec) {
                        Ok(bytes) => {
                            if matches!(message, Message::Notification(_)) {
                                conn.send_last(bytes);
                            } else if conn.send(bytes).is_err() {
                                rt.overflowed = Some(dir);
                                continue;
                            }
                            let mut status = lock(&self.status);
                            status.messages_sent += 1;
                            if matches!(message, Message::Notification(_)) {
                                status.notifications_sent += 1;
                            }
                        }
                        Err(err) => {
                            tracing::error!(peer = %self.name(), "cannot encode {}: {err}", message.name());
                        }
                    }
                }
                Action::Close(dir) => {
                    let conn = match dir {
                        Direction::Outbound => rt.outbound.take(),
                        Direction::Inbound => rt.inbound.take(),
                    };
                    if let Some(conn) = conn {
                        conn.close();
                    }
                    if rt.rib.as_ref().is_some_and(|(d, _)| *d == dir) {
                        rt.rib = None;
                    }
                }
                Action::Established(negotiated) => {
                    let dir = negotiated.direction;
                    let codec = negotiated.codec();
                    let local = rt.conn_mut(dir).map(|c| {
                        c.codec = codec;
                        c.local.ip()
                    });
                    let params = SessionParams {
                        local_asn: self.config.local_asn,
                        peer_asn: self.config.peer_asn,
                        codec,
                        families: negotiated.families.clone(),
                        next_hop_v4: self.config.next_hop_v4.or(match local {
                            Some(IpAddr::V4(a)) => Some(a),
                            _ => None,
                        }),
                        next_hop_v6: self
                            .config
                            .next_hop_v6
                            .or(match local {
                                Some(IpAddr::V6(a)) => Some(a),
                                _ => None,
                            })
                            .map(|a| (a, None)),
                    };
                    let mut rib = AdjRibOut::new(params);
                    let desired = self.desired();
                    // One line per reason, however many prefixes it keeps back.
                    let mut skipped: BTreeMap<&str, (usize, IpNet)> = BTreeMap::new();
                    for (prefix, reason) in rib.routable(&desired).1 {
                        skipped.entry(reason).or_insert((0, prefix)).0 += 1;
                    }
                    for (reason, (count, first)) in skipped {
                        tracing::warn!(peer = %self.name(), count, %first, "prefixes not advertised on this session: {reason}");
                    }
                    let updates = rib.full_table(&desired);
                    rt.rib = Some((dir, rib));
                    {
                        let mut status = lock(&self.status);
                        status.hold_time = Some(negotiated.hold_time);
                        status.established_count += 1;
                        status.peer_router_id = Some(negotiated.peer_open.router_id);
                        status.last_error = None;
                    }
                    // Before our first UPDATE, the codec of this direction is what was
                    // negotiated: the state machine asked for the KEEPALIVE already.
                    self.send_updates(rt, dir, updates.into_iter().map(Message::Update));
                }
                Action::Down(reason) => {
                    rt.rib = None;
                    let text = reason.to_string();
                    tracing::warn!(peer = %self.name(), "session down: {text}");
                    let mut status = lock(&self.status);
                    status.prefixes_announced = 0;
                    status.last_error = Some(text);
                }
                Action::RouteRefresh(family) => {
                    if let Some(suppressed) = rt.refresh_log.allow(Instant::now().into_std()) {
                        tracing::info!(peer = %self.name(), %family, suppressed, "route refresh requested");
                    }
                    let desired = self.desired();
                    if let Some((dir, rib)) = rt.rib.as_mut() {
                        // The whole table again, with withdrawals of anything the peer still
                        // holds that is no longer desired, then End-of-RIB.
                        let dir = *dir;
                        let updates = rib.full_table(&desired);
                        self.send_updates(rt, dir, updates.into_iter().map(Message::Update));
                    }
                }
                Action::ConnectionFailed(dir, reason) => {
                    tracing::debug!(peer = %self.name(), ?dir, "connection failed: {reason}");
                    if !matches!(reason, DownReason::ConnectionClosed) {
                        lock(&self.status).last_error = Some(reason.to_string());
                    }
                }
                Action::StateChanged { from, to } => {
                    tracing::info!(peer = %self.name(), address = %self.config.address, "{from} -> {to}");
                    {
                        let mut status = lock(&self.status);
                        status.state = to;
                        status.established_at =
                            (to == State::Established).then(std::time::SystemTime::now);
                    }
                    let _ = self.events.send(PeerEvent {
                        peer: self.config.name.clone(),
                        address: self.config.address,
                        from,
                        to,
                    });
                }
            }
        }
        if let Some(dir) = rt.overflowed.take() {
            tracing::warn!(peer = %self.name(), ?dir, "the peer does not read: resetting the session (Cease, out of resources)");
            let actions = rt
                .session
                .handle(rt.start.elapsed(), Event::SendQueueFull(dir));
            self.execute(rt, actions);
        }
    }

    fn adopt_inbound(&self, rt: &mut Runtime) {
        let Some(stream) = rt.pending_inbound.take() else {
            return;
        };
        if let Some(ttl) = self.config.ttl()
            && let Err(err) = set_ttl(&socket2::SockRef::from(&stream), self.config.address, ttl)
        {
            self.note_error(format!("inbound connection TTL: {err}"));
        }
        match Connection::spawn(stream, Direction::Inbound, rt.next_id, rt.conn_tx.clone()) {
            Ok(conn) => {
                rt.next_id += 1;
                rt.inbound = Some(conn);
            }
            Err(err) => self.note_error(format!("inbound connection: {err}")),
        }
    }
}

/// Refuses a connection with Cease / Connection Rejected (RFC 4486).
pub(crate) fn reject(stream: TcpStream) {
    let notification = Notification::new(
        crate::wire::ErrorCode::Cease,
        crate::wire::cease::CONNECTION_REJECTED,
        vec![],
    );
    let bytes = Message::Notification(notification)
        .to_bytes(Codec::default())
        .unwrap_or_default();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&bytes)).await;
    });
}
