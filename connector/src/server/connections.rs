//! The accept loop and what bounds each connection: the header timeout, the idle timeout
//! (bytes moving, requests in flight), the connection cap, and the graceful drain.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    time::Instant,
};
use tower::ServiceExt as _;

use crate::audit::peer::ConnectedPeer;

/// How the accept loop bounds connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_streams: u32,
}

/// The accept loop. `axum::serve` sets no hyper timer, so it cannot bound how long a client
/// takes to send its request head; this loop does (`header_timeout`, HTTP/1), which stops
/// slow-header (slowloris) connections from pinning sockets. Both protocols (HTTP/1 and h2c,
/// which has no header timer) are also bounded by an idle timeout (no request in flight and
/// no byte moving) and by a cap on open connections (further ones wait in the kernel's listen
/// backlog, costing nothing here). On shutdown it stops accepting, asks every connection to
/// finish its in-flight requests for up to `grace`, then drops what remains.
pub(super) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::conn::auto::Builder,
        service::TowerToHyperService,
    };

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.idle_timeout / 2);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let draining = tokio_util::sync::CancellationToken::new();
    let open = tokio_util::task::TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "Accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Without it, the tail segment of a response larger than one write waits for
                // the client's delayed ACK (Nagle), up to 40 ms on Linux.
                let _ = stream.set_nodelay(true);
                let activity = Arc::new(Activity::new());
                // Every request learns its TCP peer (audit records, per-peer refusal budgets)
                // and counts as activity while in flight.
                let service = TowerToHyperService::new(
                    router
                        .clone()
                        .map_request(with_peer(peer))
                        .map_future(track_request(activity.clone())),
                );
                let io = TokioIo::new(Tracked::new(stream, activity.clone()));
                let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
                let draining = draining.clone();
                let idle_timeout = limits.idle_timeout;
                open.spawn(async move {
                    let _slot = slot;
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        // A client that hangs up or times out is not an error worth logging.
                        _ = connection.as_mut() => return,
                        () = activity.idle_for(idle_timeout) => {}
                        () = draining.cancelled() => {}
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("Shutting down: draining in-flight calls");
    draining.cancel();
    open.close();
    tokio::select! {
        () = open.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("Drain deadline reached; dropping remaining calls");
        }
    }
}

/// Per-connection activity: bytes moving and requests in flight, for the idle timeout.
pub struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last byte read or written.
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once the connection has had no request in flight and no byte moving for
    /// `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let last =
                self.started + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                if self.in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                // A long request is not idleness: look again a little later.
                tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Marks a request in flight until its response future completes.
pub fn track_request<F>(
    activity: Arc<Activity>,
) -> impl Fn(F) -> Pin<Box<dyn Future<Output = F::Output> + Send>> + Clone
where
    F: Future + Send + 'static,
{
    move |response| {
        let activity = activity.clone();
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            let out = response.await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            out
        })
    }
}

/// A socket that records when bytes move.
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        activity.touch();
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Tags a request with the TCP peer of its connection.
fn with_peer<B>(peer: SocketAddr) -> impl Fn(http::Request<B>) -> http::Request<B> + Clone {
    move |mut req| {
        req.extensions_mut().insert(ConnectedPeer(peer));
        req
    }
}
