//! The threads that serve connections: one per core, each running a single-threaded tokio
//! runtime of its own, as nginx runs one worker process per core.
//!
//! Every serving thread waits on the one listening socket (a duplicate of its descriptor,
//! registered with the thread's own event loop), and whichever is free first accepts the next
//! connection. A connection then stays on that thread to its end: its tasks, the upstream
//! connections it borrows (the pools keep one idle stack per thread), its timers and its
//! access-log batch. Nothing is handed between threads on the way of a request, and no
//! request pays for the work-stealing scheduler's bookkeeping: in a first A/B on the
//! authenticated proxy benchmark, a single-threaded runtime spent about 0.8 µs less user CPU
//! per request than tokio's multi-threaded one (BENCHMARKS.md, seventh session, has the
//! measured whole).
//!
//! The thread that calls [`Server::run`](super::Server::run) is the first serving thread; it
//! also runs the background work (the reloader, the certificate watch, ACME, the metrics
//! listener) and decides when the others stop.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tracing::warn;

use super::Accept;
use crate::accesslog;
use crate::app::AppState;

pub use crate::util::serving_threads as count;

/// The runtime of a serving thread, with this thread marked as one: its access lines wait in
/// a batch that goes to the log writer whenever the runtime has nothing to do, and then it
/// lets go of its hold on the server's state ([`current_state`]).
pub fn runtime() -> io::Result<Runtime> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(|| {
            accesslog::flush_thread();
            let_go_of_state();
        })
        .build()?;
    accesslog::worker_started();
    Ok(runtime)
}

/// A serving thread's own hold on the state: an `Arc` of its own around the state's `Arc`,
/// so that cloning it writes a count only this thread writes (see [`current_state`]).
#[allow(clippy::redundant_allocation)]
type StateHold = Arc<Arc<AppState>>;

thread_local! {
    /// This thread's hold on the current state.
    static CURRENT: RefCell<Option<StateHold>> = const { RefCell::new(None) };
}

/// The current state, for one request to its end (every HTTP/1.1 and HTTP/2 request takes it
/// here). A clone of this thread's own hold on it, not of the state's `Arc`: that count lives
/// in one place, and both cores writing it on every request moved its cache line between
/// them. A reload is seen by the next request (the hold is compared with the swap), and the
/// hold is let go whenever the thread has nothing to do ([`let_go_of_state`]), so an idle
/// thread keeps no replaced state.
pub(super) fn current_state(swap: &ArcSwap<AppState>) -> StateHold {
    let now = swap.load();
    CURRENT.with(|held| {
        let mut held = held.borrow_mut();
        match &*held {
            Some(hold) if Arc::ptr_eq(&**hold, &*now) => return hold.clone(),
            _ => {}
        }
        let fresh = Arc::new(arc_swap::Guard::into_inner(now));
        *held = Some(fresh.clone());
        fresh
    })
}

/// Lets go of this thread's hold on the state (requests under way keep theirs).
fn let_go_of_state() {
    let _ = CURRENT.try_with(|held| held.borrow_mut().take());
}

/// The serving threads other than the first.
pub(super) struct Others {
    /// 1: stop accepting; 2: stop (the connections have drained, or their time is up).
    quit: watch::Sender<u8>,
    threads: Vec<JoinHandle<()>>,
}

impl Others {
    /// Starts `n - 1` threads accepting from `listener` with `accept`. A thread that cannot
    /// start is logged and left out: the others, and the first, serve on.
    pub(super) fn start(listener: &TcpListener, n: usize, accept: &Arc<Accept>) -> Self {
        let (quit, _) = watch::channel(0u8);
        let mut threads = Vec::new();
        for index in 1..n {
            let started = listener
                .as_fd()
                .try_clone_to_owned()
                .map(std::net::TcpListener::from)
                .and_then(|dup| {
                    let (accept, quit) = (accept.clone(), quit.subscribe());
                    std::thread::Builder::new()
                        .name(format!("oauthgate/{index}"))
                        .spawn(move || serve(index, dup, accept, quit))
                });
            match started {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    warn!(error = %e, threads = index, "could not start another serving thread");
                    break;
                }
            }
        }
        Others { quit, threads }
    }

    /// Tells the threads to stop accepting; they go on serving what they have.
    pub(super) fn stop_accepting(&self) {
        self.quit.send_replace(1);
    }

    /// Tells the threads to stop, and waits (at most a second) until they have handed their
    /// last access lines to the writer.
    pub(super) async fn stop(self) {
        self.quit.send_replace(2);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(1), joined).await;
    }
}

/// One serving thread: accepts until told to stop accepting, serves its connections until
/// told to stop, then hands in its last access lines.
fn serve(
    index: usize,
    listener: std::net::TcpListener,
    accept: Arc<Accept>,
    mut quit: watch::Receiver<u8>,
) {
    crate::util::set_serving_thread(index);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            warn!(error = %e, "a serving thread could not start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "a serving thread could not listen");
                return;
            }
        };
        let mut stop_accepting = quit.clone();
        accept
            .serve(&listener, async move {
                let _ = stop_accepting.wait_for(|q| *q >= 1).await;
            })
            .await;
        // The connections' hold on the server is theirs alone now: the drain can end.
        drop(accept);
        drop(listener);
        let _ = quit.wait_for(|q| *q >= 2).await;
    });
    // Dropping the runtime ends the connections still open after the grace period.
    drop(runtime);
    accesslog::flush_thread();
}
