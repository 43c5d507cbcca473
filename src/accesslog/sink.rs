//! The writer thread: it takes batches of complete lines from a bounded queue and writes each
//! with one `write_all`, then gives the emptied buffer back for reuse.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::LogFormat;

/// Batches waiting for the writer before a sender has to wait (at 32 KiB each, 2 MiB).
const QUEUE: usize = 64;
/// Emptied buffers kept for reuse.
const SPARE: usize = 16;
/// How often the writer looks at the queue while lines keep coming: a line waits at most
/// this long, and a busy server's writer wakes 500 times a second, not once per batch.
const POLL: Duration = Duration::from_millis(2);
/// How long the writer keeps polling after the last line before it sleeps until the next.
const LINGER: Duration = Duration::from_millis(100);

enum Msg {
    Batch(Vec<u8>),
    /// Write what is queued, then end.
    Stop,
}

/// The sending side, shared by every thread.
pub struct Sink {
    format: LogFormat,
    tx: SyncSender<Msg>,
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Set once the writer is ending: lines are then written by their own thread.
    stopped: Arc<AtomicBool>,
}

impl Sink {
    /// Starts the writer thread on `out`.
    pub fn start<W: Write + Send + 'static>(format: LogFormat, out: W) -> (Sink, Guard) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let spare = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let back = spare.clone();
        let thread = std::thread::Builder::new()
            .name("oauthgate-log".into())
            .spawn(move || write_all(rx, out, &back))
            .ok();
        if thread.is_none() {
            // No thread, no queue reader: every line is written by the thread that logs it.
            stopped.store(true, Ordering::Release);
        }
        let guard = Guard {
            tx: tx.clone(),
            thread,
            stopped: stopped.clone(),
        };
        let sink = Sink {
            format,
            tx,
            spare,
            stopped,
        };
        (sink, guard)
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Queues a batch of complete lines; waits while the queue is full (never drops).
    pub fn send(&self, batch: Vec<u8>) {
        if self.stopped.load(Ordering::Acquire) {
            let _ = std::io::stderr().lock().write_all(&batch);
            return;
        }
        if let Err(mpsc::SendError(Msg::Batch(batch))) = self.tx.send(Msg::Batch(batch)) {
            let _ = std::io::stderr().lock().write_all(&batch);
        }
    }

    /// An empty buffer: one the writer gave back, or a new one of `capacity`.
    pub fn empty_batch(&self, capacity: usize) -> Vec<u8> {
        let reused = match self.spare.lock() {
            Ok(mut spare) => spare.pop(),
            Err(_) => None,
        };
        reused.unwrap_or_else(|| Vec::with_capacity(capacity))
    }
}

/// The writer thread's loop. While lines keep coming it polls the queue every [`POLL`]
/// instead of sleeping in `recv`, so that a sender never pays a wake-up (a futex call) per
/// batch, and it gathers what arrived into one buffer for one `write(2)`. After [`LINGER`]
/// without a line it sleeps in `recv` again: an idle server costs nothing. A failed write
/// (stderr closed) loses those lines only: the queue keeps draining, so that no thread
/// waits on a log nobody reads.
fn write_all<W: Write>(rx: Receiver<Msg>, mut out: W, spare: &Mutex<Vec<Vec<u8>>>) {
    let mut buf = Vec::with_capacity(2 * super::BATCH);
    let mut write = |buf: &mut Vec<u8>| {
        if !buf.is_empty() {
            let _ = out.write_all(buf);
            let _ = out.flush();
            buf.clear();
        }
    };
    let mut last = Instant::now();
    loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                write(&mut buf);
                if last.elapsed() < LINGER {
                    std::thread::sleep(POLL);
                    continue;
                }
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            }
        };
        last = Instant::now();
        match msg {
            Msg::Batch(mut batch) => {
                buf.extend_from_slice(&batch);
                batch.clear();
                if let Ok(mut spare) = spare.lock() {
                    if spare.len() < SPARE && batch.capacity() <= 2 * super::BATCH {
                        spare.push(batch);
                    }
                }
                if buf.len() >= super::BATCH {
                    write(&mut buf);
                }
            }
            // Whatever was queued, before the stop or in the moment after it, is written.
            Msg::Stop => {
                while let Ok(Msg::Batch(batch)) = rx.try_recv() {
                    buf.extend_from_slice(&batch);
                }
                break;
            }
        }
    }
    write(&mut buf);
}

/// Kept by `main`: dropping it writes out every queued line and ends the writer.
pub struct Guard {
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        super::flush_thread();
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Msg::Stop);
            let _ = thread.join();
        }
        self.stopped.store(true, Ordering::Release);
    }
}

/// Where tracing's formatted lines go: the same queue, in order with this thread's access
/// lines (see [`super::write_event`]).
#[derive(Clone, Copy, Default)]
pub struct MakeLineWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeLineWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

/// Takes one formatted event (tracing writes each with one `write_all`).
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match super::SINK.get() {
            Some(sink) => super::write_event(sink, buf),
            None => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_is_written_in_order_before_the_guard_returns() {
        let out = crate::accesslog::TestOut::default();
        let (sink, guard) = Sink::start(LogFormat::Text, out.clone());
        let mut want = Vec::new();
        // More batches than the queue holds: senders wait, nothing is dropped.
        for i in 0..(QUEUE * 4) {
            let mut batch = sink.empty_batch(64);
            batch.extend_from_slice(format!("line {i}\n").as_bytes());
            want.extend_from_slice(&batch);
            sink.send(batch);
        }
        drop(guard);
        assert_eq!(*out.0.lock().unwrap(), want);
        assert!(sink.stopped.load(Ordering::Acquire));
    }
}
