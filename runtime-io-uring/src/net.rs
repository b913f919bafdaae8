//! Sockets: accepting connections and moving Kafka frames (a 4-byte big-endian size, then the
//! request) between them and the core. A connection has one request in the core at a time, as in
//! Kafka, so responses go out in request order.

use crate::{log_line, now_ms, ConnEvent, Shell};
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use spate_core::broker::check_frame_size;
use spate_core::io::{ConnId, Level};
use std::rc::Rc;

/// How long a port in use is tried again before giving up: a broker killed a moment ago leaves
/// its listening socket behind for a few milliseconds (its io_uring is torn down
/// asynchronously), and a restart at once must not fail on it.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Binds the listener. Not with glommio's `bind`, which sets SO_REUSEPORT and so lets a second
/// broker start on a port already in use and silently share its connections: std's bind fails
/// with "address in use" as Kafka does (after [`BIND_RETRY`]).
pub(crate) fn listen(address: std::net::SocketAddr) -> Result<TcpListener, String> {
    use std::os::fd::{FromRawFd, IntoRawFd};
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
    // SAFETY: the descriptor is a bound, listening TCP socket that we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

pub(crate) async fn accept_loop(shell: Rc<Shell>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let conn = shell.next_conn.get();
                shell.next_conn.set(conn + 1);
                let shell = shell.clone();
                glommio::spawn_local(async move { serve_connection(shell, conn, stream).await })
                    .detach();
            }
            Err(error) => {
                // Out of file descriptors and the like: log, back off, keep serving.
                log_line(Level::Error, &format!("accept failed: {error}"));
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(shell: Rc<Shell>, conn: ConnId, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let (sender, receiver) = glommio::channels::local_channel::new_unbounded();
    shell.conns.borrow_mut().insert(conn, sender);
    shell.broker.borrow_mut().handle_connect(conn, &peer);
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
        shell
            .broker
            .borrow_mut()
            .handle_request(now_ms(), conn, frame.freeze());
        shell.drain();
        match receiver.recv().await {
            Some(ConnEvent::Respond(frame)) => {
                if let Err(error) = stream.write_all(&frame).await {
                    break Some(format!("write failed: {error}"));
                }
            }
            Some(ConnEvent::NoResponse) => {}
            Some(ConnEvent::Close) | None => break None,
        }
    };
    if let Some(reason) = reason {
        log_line(Level::Info, &format!("conn {conn} from {peer}: {reason}"));
    }
    shell.conns.borrow_mut().remove(&conn);
    shell.broker.borrow_mut().handle_disconnect(conn);
    shell.drain();
    let _ = stream.close().await;
}

/// A clean close between frames is normal and not logged.
fn closed_reason(error: std::io::Error) -> Option<String> {
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => None,
        _ => Some(format!("read failed: {error}")),
    }
}
