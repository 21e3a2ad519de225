//! One TCP connection to a peer: a reader task that frames messages and a writer task that
//! drains a queue, so a peer that stops reading never blocks the session's timers. The queue
//! is bounded in bytes ([`MAX_QUEUED_BYTES`]): a peer that does not read (while asking for
//! the whole table again and again, say) gets its session reset rather than our memory.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Bytes queued for the writer and not yet written.
    queued: Arc<AtomicUsize>,
    /// The most that was ever queued at once.
    peak: AtomicUsize,
    reader: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

/// Bytes that may wait to be written to one peer: a full table of thousands of routes is
/// well under it, and a peer that lets this much pile up is not reading.
pub(crate) const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// A connection that once had more than this queued hands the freed memory back to the
/// system when it closes.
const RELEASE_AFTER_BYTES: usize = 1024 * 1024;

/// The peer does not read: a send would pass [`MAX_QUEUED_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// How long a closing connection may take to flush its last NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

impl Connection {
    /// Splits `stream` into a reader and a writer task; frames go to `events`.
    pub(crate) fn spawn(
        stream: TcpStream,
        direction: Direction,
        id: u64,
        events: mpsc::Sender<ConnEvent>,
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
                        let _ = events.send(ConnEvent::Malformed(direction, id, err)).await;
                        return;
                    }
                    Ok(Some(len)) if buf.len() >= len => {
                        let frame: Vec<u8> = buf.drain(..len).collect();
                        // Waits while the session is behind: a peer sending faster than its
                        // messages are handled is slowed down by TCP, not buffered here.
                        if events
                            .send(ConnEvent::Frame(direction, id, frame))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Ok(_) => {}
                }
                match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        let _ = events.send(ConnEvent::Closed(direction, id)).await;
                        return;
                    }
                    Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
        });
        let (writer, mut queue) = mpsc::unbounded_channel::<WriterCmd>();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&queued);
        let writer_task = tokio::spawn(async move {
            while let Some(cmd) = queue.recv().await {
                match cmd {
                    WriterCmd::Data(bytes) => {
                        let result = wr.write_all(&bytes).await;
                        written.fetch_sub(bytes.len(), Ordering::Relaxed);
                        if result.is_err() {
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
            queued,
            peak: AtomicUsize::new(0),
            reader,
            writer_task,
        })
    }

    /// Queues bytes for the peer.
    ///
    /// Fails, queueing nothing, when the bytes waiting would pass [`MAX_QUEUED_BYTES`].
    pub(crate) fn send(&self, bytes: Vec<u8>) -> Result<(), QueueFull> {
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        self.peak
            .fetch_max(before.saturating_add(len), Ordering::Relaxed);
        if before.saturating_add(len) > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(QueueFull);
        }
        let _ = self.writer.send(WriterCmd::Data(bytes));
        Ok(())
    }

    /// Queues bytes for the peer whatever is waiting already: the last NOTIFICATION before
    /// a close.
    pub(crate) fn send_last(&self, bytes: Vec<u8>) {
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        let _ = self.writer.send(WriterCmd::Data(bytes));
    }

    /// Stops reading, flushes what is queued (bounded by a grace period) and closes.
    ///
    /// When much was ever queued (a peer that did not read), the memory it took is handed back
    /// to the system once the writer is gone.
    pub(crate) fn close(self) {
        self.reader.abort();
        let large = self.peak.load(Ordering::Relaxed) > RELEASE_AFTER_BYTES;
        let _ = self.writer.send(WriterCmd::Close);
        let mut writer = self.writer_task;
        drop(self.writer);
        tokio::spawn(async move {
            if tokio::time::timeout(CLOSE_GRACE, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
                // Done once the aborted task, and with it the queue, is dropped.
                let _ = writer.await;
            }
            if large {
                sys::release_free_memory();
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Sends 1 MiB chunks until one is refused; returns how many went.
    fn fill(conn: &Connection) -> usize {
        (0..64)
            .take_while(|_| conn.send(vec![0u8; 1 << 20]).is_ok())
            .count()
    }

    #[tokio::test]
    async fn the_queue_of_a_peer_that_does_not_read_is_bounded_and_drains_when_it_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let conn = Connection::spawn(stream, Direction::Outbound, 0, tx).unwrap();
        // Fill, let the writer push what the kernel takes, fill again: once the peer's
        // receive buffer and our send buffer are full, nothing more fits, ever.
        let mut total = 0usize;
        let mut rounds = 0;
        loop {
            let sent = fill(&conn);
            total += sent;
            rounds += 1;
            if sent == 0 || rounds == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(rounds < 100, "the queue never filled ({total} MiB)");
        // The queue plus what the two kernel buffers hold: bounded, whatever the peer asks.
        assert!(total <= 48, "{total} MiB accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(conn.send(vec![0u8; 1 << 20]), Err(QueueFull));
        // It reads everything: the queue drains and takes more again.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0usize;
            while let Ok(n) = peer.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while conn.send(vec![0u8; 1 << 20]).is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue never drained"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        conn.close();
        drop(reader);
    }
}
