//! The accept loop's view of a connection: each accepted TCP stream carries a handle that a
//! scripted fault can pull to drop the connection without an answer, as a reset or a crashed
//! front end would (reference/entra.md §11, "connection drop").
//!
//! A handler sees the handle through [`Conn`] (axum's `ConnectInfo`). Once pulled, every write
//! on the stream fails, so the response the handler returns is never sent and hyper closes the
//! socket: the client reads end-of-stream before any status line.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::serve::{IncomingStream, Listener};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// Pulled when the connection must be dropped without an answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct DropHandle(Arc<AtomicBool>);

impl DropHandle {
    pub fn pull(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn pulled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a handler knows about its connection: the peer and the drop handle.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub drop: DropHandle,
}

impl Conn {
    /// A connection that is not a socket (in-process calls through the router).
    pub fn in_process() -> Self {
        Self { peer: SocketAddr::from(([127, 0, 0, 1], 0)), drop: DropHandle::default() }
    }
}

/// The connection of a request as a handler extracts it; in-process calls through the router
/// (no socket) have none.
pub(crate) type Peer = Option<axum::Extension<axum::extract::ConnectInfo<Conn>>>;

/// The request's connection, or a stand-in for an in-process call.
pub(crate) fn conn_of(peer: Peer) -> Conn {
    peer.map_or_else(Conn::in_process, |p| p.0.0)
}

/// A TCP listener whose streams can be dropped by a fault.
pub(crate) struct DroppableListener(pub TcpListener);

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (DroppableStream { stream, drop: DropHandle::default() }, peer);
                }
                // Out of file descriptors or a connection reset before accept: try again
                // shortly, as axum's own TCP listener does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, DroppableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        Self { peer: *stream.remote_addr(), drop: stream.io().drop.clone() }
    }
}

/// A TCP stream that fails every write (and read) once its [`DropHandle`] is pulled.
pub(crate) struct DroppableStream {
    stream: TcpStream,
    drop: DropHandle,
}

fn dropped() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped by a scripted fault")
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.drop.pulled() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.drop.pulled() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.drop.pulled() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.drop.pulled() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
