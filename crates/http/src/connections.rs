//! The accept loop and connections of [`crate::serve`], with the limits a
//! server open to a network needs ([`ServerLimits`]): at most
//! `max_connections` held at once, a connection closed when it sends a
//! request's headers too slowly or waits too long for its next request, and
//! accept errors (out of file descriptors) met with a back-off instead of a
//! spin.
//!
//! At the limit, a new connection closes the connection idle the longest,
//! so a flood of connections that send nothing cannot lock out `/healthz` or
//! an operator; when every connection is busy with a request, the new one is
//! answered 503 and closed at once rather than left to pile up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::limits::ServerLimits;

/// How long a new connection at the limit waits for the one it displaced to
/// close, before it is turned away itself.
const DISPLACEMENT_WAIT: Duration = Duration::from_millis(500);

/// The first and the longest pause after an accept error such as "too many
/// open files"; accepting again at once would only fail again.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Sent to a connection turned away at the limit, before it is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 131\r\n\r\n{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"The server has too many connections open. Retry later.\"}";

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes; then accepts no more, lets every connection finish the
/// request it is handling, and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max_connections));
    let open = Arc::new(OpenConnections::default());
    let (closing, closing_seen) = watch::channel(false);
    let timeouts = Timeouts {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let mut backoff = ACCEPT_BACKOFF.0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF.0;
                stream
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of descriptors or memory: give one back if a
                // connection is idle, and wait before trying again.
                if backoff == ACCEPT_BACKOFF.0 {
                    tracing::warn!(%error, "cannot accept connections; closing an idle one and retrying");
                }
                open.displace_longest_idle();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match make_room(&permits, &open).await {
                Some(permit) => permit,
                None => {
                    turn_away(stream);
                    continue;
                }
            },
        };
        let connection = open.add();
        tokio::spawn(run_connection(
            stream,
            router.clone(),
            connection,
            open.clone(),
            timeouts,
            closing_seen.clone(),
            permit,
        ));
    }
    drop(listener);
    closing.send_replace(true);
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _all_closed = permits.acquire_many(all).await;
    Ok(())
}

/// Errors that concern one incoming connection (it went away before it was
/// accepted), not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A permit freed by closing the connection idle the longest, if one is
/// idle and closes soon enough.
async fn make_room(
    permits: &Arc<Semaphore>,
    open: &OpenConnections,
) -> Option<OwnedSemaphorePermit> {
    if !open.displace_longest_idle() {
        return None;
    }
    tokio::time::timeout(DISPLACEMENT_WAIT, permits.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Answers 503 if the socket takes it at once, and closes the connection.
fn turn_away(stream: TcpStream) {
    tracing::warn!("too many connections, none idle: a new connection was turned away");
    let _ = stream.try_write(BUSY_RESPONSE);
}

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// From the first byte of a request head to its end.
    header_read: Duration,
    /// From the end of a response (or from the accept) to the next request's first byte.
    idle: Duration,
}

/// Serves one connection until it ends, is displaced, or overruns a timeout.
async fn run_connection(
    stream: TcpStream,
    router: Router,
    connection: Arc<Connection>,
    open: Arc<OpenConnections>,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let io = TokioIo::new(WatchedStream {
        stream,
        connection: connection.clone(),
    });
    let service = {
        let connection = connection.clone();
        tower::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = RequestInFlight::start(connection.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(Body::new)).await?;
                // Counted until the body is sent: an event stream is busy
                // for as long as it streams.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(WatchedBody {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // This loop times heads and idleness itself (hyper's own header timer
    // would also cut the wait between requests short).
    builder.header_read_timeout(None);
    let served = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(served);
    let mut shutting_down = *closing.borrow();
    if shutting_down {
        served.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = connection.deadline(timeouts);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                if connection.overran(timeouts) {
                    tracing::debug!("connection closed: idle, or its request's headers too slow");
                    break;
                }
            }
            () = connection.changed.notified() => {
                if connection.displaced.load(Ordering::Relaxed) && connection.is_idle() {
                    break;
                }
            }
            changed = closing.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_ok() {
                    // Idle connections close now; busy ones after their answer.
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    open.remove(connection.id);
    drop(permit);
}

/// The connections open now, to choose one to close at the limit.
#[derive(Default)]
struct OpenConnections {
    /// By id, in order of acceptance.
    by_id: Mutex<HashMap<u64, Arc<Connection>>>,
    /// The id of the next connection.
    next_id: AtomicU64,
}

impl OpenConnections {
    fn by_id(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // The map is consistent after any panic (one insert or remove).
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(id));
        self.by_id().insert(id, connection.clone());
        connection
    }

    fn remove(&self, id: u64) {
        self.by_id().remove(&id);
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    fn displace_longest_idle(&self) -> bool {
        let open = self.by_id();
        let longest = open
            .values()
            .filter(|connection| !connection.displaced.load(Ordering::Relaxed))
            .filter_map(|connection| connection.idle_since().map(|since| (since, connection)))
            .min_by_key(|(since, connection)| (*since, connection.id));
        match longest {
            Some((_, connection)) => {
                connection.displaced.store(true, Ordering::Relaxed);
                connection.changed.notify_one();
                true
            }
            None => false,
        }
    }
}

/// What one connection is doing, as its timeouts and displacement need it.
struct Connection {
    /// Its key in [`OpenConnections`].
    id: u64,
    /// Requests whose response is not wholly sent, and since when it is idle.
    activity: Mutex<Activity>,
    /// Woken when its deadline moves earlier (a request head began) or it
    /// is displaced.
    changed: Notify,
    /// Asked to close to make room for a new connection.
    displaced: AtomicBool,
}

/// See [`Connection::activity`].
#[derive(Debug, Clone, Copy)]
struct Activity {
    /// Requests read whose response is not wholly sent.
    in_flight: usize,
    /// When the last response was sent (or the connection accepted).
    idle_since: Instant,
    /// When the first byte of the next request arrived, while idle.
    head_started: Option<Instant>,
}

impl Connection {
    fn new(id: u64) -> Connection {
        Connection {
            id,
            activity: Mutex::new(Activity {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
            displaced: AtomicBool::new(false),
        }
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        // Plain counters and instants: consistent after any panic.
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When it went idle, when no request is in flight.
    fn idle_since(&self) -> Option<Instant> {
        let activity = self.activity();
        (activity.in_flight == 0).then_some(activity.idle_since)
    }

    fn is_idle(&self) -> bool {
        self.activity().in_flight == 0
    }

    /// When it overruns a timeout if nothing happens meanwhile (far off
    /// while a request is in flight).
    fn deadline(&self, timeouts: Timeouts) -> Instant {
        let activity = self.activity();
        if activity.in_flight > 0 {
            // Rechecked when the request ends; a day is just "not now".
            return Instant::now() + Duration::from_secs(24 * 3600);
        }
        match activity.head_started {
            Some(started) => started + timeouts.header_read,
            None => activity.idle_since + timeouts.idle,
        }
    }

    /// Whether it is idle or reading a head past its timeout.
    fn overran(&self, timeouts: Timeouts) -> bool {
        let activity = self.activity();
        activity.in_flight == 0 && {
            let now = Instant::now();
            match activity.head_started {
                Some(started) => now >= started + timeouts.header_read,
                None => now >= activity.idle_since + timeouts.idle,
            }
        }
    }

    /// Bytes arrived: while idle, they begin a request head.
    fn bytes_read(&self) {
        let mut activity = self.activity();
        if activity.in_flight == 0 && activity.head_started.is_none() {
            activity.head_started = Some(Instant::now());
            drop(activity);
            self.changed.notify_one();
        }
    }
}

/// One request of a connection, from its head read to its response sent.
struct RequestInFlight(Arc<Connection>);

impl RequestInFlight {
    fn start(connection: Arc<Connection>) -> RequestInFlight {
        {
            let mut activity = connection.activity();
            activity.in_flight += 1;
            activity.head_started = None;
        }
        RequestInFlight(connection)
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        let mut activity = self.0.activity();
        activity.in_flight = activity.in_flight.saturating_sub(1);
        if activity.in_flight == 0 {
            activity.idle_since = Instant::now();
        }
        drop(activity);
        // Its deadline changed from "not now" to the idle timeout.
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its request counted until it is sent or dropped.
struct WatchedBody {
    body: Body,
    _in_flight: RequestInFlight,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket of a connection, telling it when bytes arrive.
struct WatchedStream {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(context, buffer);
        if matches!(polled, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            this.connection.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::BUSY_RESPONSE;

    #[test]
    fn the_busy_answer_declares_its_body_length() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.ends_with(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
    }
}
