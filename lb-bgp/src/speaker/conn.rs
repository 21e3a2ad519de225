//! One TCP connection to a peer: a reader task that frames messages and a writer task that
//! drains a queue, so a peer that stops reading never blocks the session's timers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sys;
use crate::fsm::Direction;
use crate::wire::{Codec, DecodeError, MAX_MESSAGE_LEN, frame_len};

/// What a connection's reader reports to its peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// One whole message (header included), not yet decoded: the peer task knows the codec.
    Frame(Direction, u64, Vec<u8>),
    /// The byte stream is not BGP.
    Malformed(Direction, u64, DecodeError),
    /// EOF or a read error.
    Closed(Direction, u64),
}

/// Socket options for a BGP connection.
#[derive(Debug, Clone)]
pub(crate) struct SocketOptions {
    pub(crate) source: Option<IpAddr>,
    pub(crate) ttl: Option<u32>,
    pub(crate) password: Option<String>,
}

/// Applies TTL / hop limit for `peer`'s family.
pub(crate) fn set_ttl(socket: &Socket, peer: IpAddr, ttl: u32) -> io::Result<()> {
    match peer {
        IpAddr::V4(_) => socket.set_ttl_v4(ttl),
        IpAddr::V6(_) => socket.set_unicast_hops_v6(ttl),
    }
}

/// Opens a TCP connection to `peer` with the session's socket options, within `timeout`.
pub(crate) async fn connect(
    peer: SocketAddr,
    options: &SocketOptions,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let domain = if peer.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(password) = &options.password {
        sys::set_tcp_md5(&socket, peer.ip(), password.as_bytes())?;
    }
    if let Some(ttl) = options.ttl {
        set_ttl(&socket, peer.ip(), ttl)?;
    }
    if let Some(source) = options.source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

enum WriterCmd {
    Data(Vec<u8>),
    Close,
}

/// A live connection owned by a peer task.
pub(crate) struct Connection {
    /// Generation: events of older connections in the same direction are ignored.
    pub(crate) id: u64,
    pub(crate) local: SocketAddr,
    /// How this connection's UPDATEs are written: the default until the session is
    /// Established, then what was negotiated.
    pub(crate) codec: Codec,
    writer: mpsc::UnboundedSender<WriterCmd>,
    reader: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

/// How long a closing connection may take to flush its last NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

impl Connection {
    /// Splits `stream` into a reader and a writer task; frames go to `events`.
    pub(crate) fn spawn(
        stream: TcpStream,
        direction: Direction,
        id: u64,
        events: mpsc::UnboundedSender<ConnEvent>,
    ) -> io::Result<Self> {
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let reader = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(2 * MAX_MESSAGE_LEN);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match frame_len(&buf) {
                    Err(err) => {
                        let _ = events.send(ConnEvent::Malformed(direction, id, err));
                        return;
                    }
                    Ok(Some(len)) if buf.len() >= len => {
                        let frame: Vec<u8> = buf.drain(..len).collect();
                        if events.send(ConnEvent::Frame(direction, id, frame)).is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(_) => {}
                }
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        let _ = events.send(ConnEvent::Closed(direction, id));
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
        });
        let (writer, mut queue) = mpsc::unbounded_channel::<WriterCmd>();
        let writer_task = tokio::spawn(async move {
            while let Some(cmd) = queue.recv().await {
                match cmd {
                    WriterCmd::Data(bytes) => {
                        if wr.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    WriterCmd::Close => {
                        let _ = tokio::time::timeout(CLOSE_GRACE, wr.shutdown()).await;
                        return;
                    }
                }
            }
        });
        Ok(Self {
            id,
            local,
            codec: Codec::default(),
            writer,
            reader,
            writer_task,
        })
    }

    /// Queues bytes for the peer.
    pub(crate) fn send(&self, bytes: Vec<u8>) {
        let _ = self.writer.send(WriterCmd::Data(bytes));
    }

    /// Stops reading, flushes what is queued (bounded by a grace period) and closes.
    pub(crate) fn close(self) {
        self.reader.abort();
        let _ = self.writer.send(WriterCmd::Close);
        let writer = self.writer_task;
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            writer.abort();
        });
    }
}
