//! Sockets: accepting connections and moving Kafka frames (a 4-byte big-endian size, then the
//! request) between them and the core. A connection has one request in the core at a time, as in
//! Kafka, so responses go out in request order.

use crate::shards::{Endpoints, ShardMsg};
use crate::{log_line, ConnEvent, ConnNews, Shell};
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use spate_core::broker::check_frame_size;
use spate_core::io::{ConnId, Level};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// One shard's connections, and its way to the core and to the other shards.
pub(crate) struct Net {
    shard: usize,
    shards: usize,
    /// The connections this shard serves, each waiting for what the core says of its request.
    conns: RefCell<BTreeMap<ConnId, LocalSender<ConnEvent>>>,
    next_conn: Cell<u64>,
    /// This shard's broker and router.
    shell: OnceCell<Rc<Shell>>,
    /// Outboxes to the other shards, indexed by shard (`None` for this one).
    outbox: Vec<Option<LocalSender<ShardMsg>>>,
}

impl Net {
    /// This shard's connection side, with its channels to the other shards started.
    pub(crate) fn start(shard: usize, shards: usize, mut endpoints: Endpoints) -> Rc<Net> {
        let net = Rc::new(Net {
            shard,
            shards,
            conns: RefCell::new(BTreeMap::new()),
            next_conn: Cell::new(1),
            shell: OnceCell::new(),
            outbox: endpoints.start_senders(),
        });
        endpoints.start_receivers(&net);
        net
    }

    /// Connects this shard's connections to its broker and router.
    pub(crate) fn attach(&self, shell: Rc<Shell>) {
        let _ = self.shell.set(shell);
    }

    /// A new connection id, unique across shards: its remainder by the shard count is the
    /// shard that serves it (`spate_core::node::home_shard`).
    fn new_conn(&self) -> ConnId {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        n * self.shards as u64 + self.shard as u64
    }

    pub(crate) fn send_to(&self, shard: usize, message: ShardMsg) {
        if let Some(Some(outbox)) = self.outbox.get(shard) {
            // Fails only once the outbox's task ended, when the process is stopping.
            let _ = outbox.try_send(message);
        }
    }

    /// Tells one of this shard's connections what the answer to its request is.
    pub(crate) fn deliver(&self, conn: ConnId, event: ConnEvent) {
        if let Some(sender) = self.conns.borrow().get(&conn) {
            // The receiver is gone only when the connection closed; nothing to tell it then.
            let _ = sender.try_send(event);
        }
    }

    /// Where the idle connection should move, if its requests belong to another shard.
    fn migration(&self, conn: ConnId) -> Option<usize> {
        self.shell.get()?.migration(conn)
    }

    /// Hands a connection's news to this shard's router and broker.
    fn tell(&self, news: ConnNews) {
        if let Some(shell) = self.shell.get() {
            shell.on_connection(news);
        }
    }

    /// Something another shard sent this one.
    pub(crate) fn receive(self: &Rc<Self>, from: usize, message: ShardMsg) {
        match message {
            ShardMsg::Connection(accepted) => self.serve(accepted.bind_to_executor()),
            ShardMsg::Moved(socket) => {
                use std::os::fd::{FromRawFd, IntoRawFd};
                // SAFETY: a connected TCP socket's descriptor, handed over whole.
                self.serve(unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) });
            }
            ShardMsg::Peer(message) => {
                if let Some(shell) = self.shell.get() {
                    shell.on_peer_message(from, message);
                }
            }
        }
    }

    fn serve(self: &Rc<Self>, stream: TcpStream) {
        let conn = self.new_conn();
        glommio::spawn_local(serve_connection(self.clone(), conn, stream)).detach();
    }
}

/// How long a port in use is tried again before giving up: a broker killed a moment ago leaves
/// its listening socket behind for a few milliseconds (its io_uring is torn down
/// asynchronously), and a restart at once must not fail on it.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Binds the listener. Not with glommio's `bind`, which sets SO_REUSEPORT and so lets a second
/// broker start on a port already in use and silently share its connections: std's bind fails
/// with "address in use" as Kafka does (after [`BIND_RETRY`]).
pub(crate) fn bind(address: std::net::SocketAddr) -> Result<std::net::TcpListener, String> {
    let started = std::time::Instant::now();
    let listener = loop {
        match std::net::TcpListener::bind(address) {
            Ok(listener) => break listener,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse && started.elapsed() < BIND_RETRY =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                return Err(format!(
                    "cannot listen on {address}: {e} (is another broker running? use --listen HOST:PORT)"
                ))
            }
        }
    };
    Ok(listener)
}

/// The bound listener on this executor.
pub(crate) fn listener(listener: std::net::TcpListener) -> TcpListener {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is a bound, listening TCP socket that we own and hand over whole.
    unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

/// Accepts connections on shard 0 and hands them to the shards in turn.
pub(crate) async fn accept_loop(net: Rc<Net>, listener: TcpListener) {
    let mut accepted = 0usize;
    loop {
        match listener.shared_accept().await {
            Ok(stream) => {
                let shard = accepted % net.shards;
                accepted = accepted.wrapping_add(1);
                if shard == net.shard {
                    net.serve(stream.bind_to_executor());
                } else {
                    net.send_to(shard, ShardMsg::Connection(stream));
                }
            }
            Err(error) => {
                // Out of file descriptors and the like: log, back off, keep serving.
                log_line(Level::Error, &format!("accept failed: {error}"));
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(net: Rc<Net>, conn: ConnId, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let (sender, receiver) = local_channel::new_unbounded();
    net.conns.borrow_mut().insert(conn, sender);
    net.tell(ConnNews::Open {
        conn,
        peer: peer.clone(),
    });
    let mut move_to = None;
    let reason = loop {
        let mut size = [0u8; 4];
        if let Err(error) = stream.read_exact(&mut size).await {
            break closed_reason(error);
        }
        let size = match check_frame_size(i32::from_be_bytes(size)) {
            Ok(size) => size,
            Err(problem) => {
                log_line(
                    Level::Warn,
                    &format!("conn {conn} from {peer}: closing: {problem}"),
                );
                break None;
            }
        };
        let mut frame = BytesMut::zeroed(size);
        if let Err(error) = stream.read_exact(&mut frame).await {
            break Some(format!(
                "connection ended inside a {size}-byte frame: {error}"
            ));
        }
        net.tell(ConnNews::Request {
            conn,
            frame: frame.freeze(),
        });
        match receiver.recv().await {
            Some(ConnEvent::Respond(frame)) => {
                if let Err(error) = stream.write_all(&frame).await {
                    break Some(format!("write failed: {error}"));
                }
            }
            Some(ConnEvent::NoResponse) => {}
            Some(ConnEvent::Close) | None => break None,
        }
        // Between requests: a connection whose requests all go to one other shard moves there.
        move_to = net.migration(conn);
        if move_to.is_some() {
            break None;
        }
    };
    if let Some(reason) = reason {
        log_line(Level::Info, &format!("conn {conn} from {peer}: {reason}"));
    }
    net.conns.borrow_mut().remove(&conn);
    net.tell(ConnNews::Closed { conn });
    if let Some(shard) = move_to {
        // The socket goes on as a duplicate descriptor; this one is dropped, not closed, since
        // closing would shut the socket down for the duplicate too. Bytes the client already
        // sent wait in the kernel's buffer for the new shard to read.
        use std::os::fd::{AsRawFd, BorrowedFd};
        // SAFETY: the descriptor is the stream's own, open while `stream` lives.
        let socket = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        match socket.try_clone_to_owned() {
            Ok(socket) => return net.send_to(shard, ShardMsg::Moved(socket)),
            Err(error) => log_line(
                Level::Warn,
                &format!("conn {conn} from {peer}: cannot move it to shard {shard}: {error}"),
            ),
        }
    }
    let _ = stream.close().await;
}

/// A clean close between frames is normal and not logged.
fn closed_reason(error: std::io::Error) -> Option<String> {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => None,
        _ => Some(format!("read failed: {error}")),
    }
}
