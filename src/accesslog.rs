//! The process's log output: access lines formatted straight into a per-thread buffer and
//! handed in batches to one writer thread, which also writes every other log line (through
//! [`sink::MakeLineWriter`]), so that stderr has a single writer and lines never interleave.
//!
//! Cost on the request path: one clock read at the start, one `SystemTime` at the end, and
//! the bytes of the line appended to a thread-local buffer. A tokio worker sends its buffer
//! to the writer when it holds 32 KiB, when the worker is about to park (it has nothing else
//! to do), and when the worker stops; other threads send each line at once. The writer
//! gathers what arrives into one `write(2)`; a line is out within a few milliseconds.
//!
//! When the disk or pipe cannot keep up, the queue (64 batches, up to 2 MiB) fills and the
//! thread that sends the next batch waits for room, as nginx waits on its `write(2)`: lines
//! are never dropped. On SIGTERM the server drains, the runtime's workers stop (each sends
//! what it holds) and [`Guard`]'s drop waits for the writer to write everything. A SIGHUP
//! (reload) does not touch the sink: it lives for the process, outside the reloadable state.

mod events;
mod format;
mod sink;

/// A writer the tests of the sink and the event format read back once written.
#[cfg(test)]
#[derive(Clone, Default)]
struct TestOut(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for TestOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::config::LogFormat;

pub use events::JsonEvents;
pub(crate) use format::Line;
pub use sink::{Guard, MakeLineWriter};

/// A batch is sent when it holds this much: a large `write(2)`, about 200 access lines.
const BATCH: usize = 32 * 1024;

/// The one sink of the process, installed by [`install`] before the runtime starts. Global
/// like tracing's dispatcher, and for the same reason: it must outlive every reload of the
/// config, which rebuilds the state that requests see.
static SINK: OnceLock<sink::Sink> = OnceLock::new();

/// Starts the writer thread; log lines go to stderr in `format` from now on. The guard
/// writes out what is left when dropped (at the end of `main`).
pub fn install(format: LogFormat) -> Guard {
    let (sink, guard) = sink::Sink::start(format, std::io::stderr());
    // A second install keeps the first sink; its guard then only flushes this thread.
    let _ = SINK.set(sink);
    guard
}

/// The access log, when the process installed one (`None` in library use without [`install`]).
pub(crate) fn installed() -> Option<AccessLog> {
    SINK.get().map(|sink| AccessLog {
        format: sink.format(),
    })
}

/// A handle to write access lines; `Copy`, cheap to keep in the state of every request.
#[derive(Clone, Copy)]
pub(crate) struct AccessLog {
    format: LogFormat,
}

impl AccessLog {
    /// Appends `line` to this thread's batch.
    pub fn write(&self, line: &Line<'_>) {
        let Some(sink) = SINK.get() else { return };
        with_local(|local| {
            format::line(&mut local.buf, &mut local.clock, self.format, line);
            if !local.worker || local.buf.len() >= BATCH {
                local.send(sink);
            }
        });
    }
}

/// Marks this thread as a runtime worker: its access lines wait in the batch until it is
/// full or the worker parks (`on_thread_start`).
pub fn worker_started() {
    with_local(|local| local.worker = true);
}

/// Sends this thread's batch to the writer (`on_thread_park`, `on_thread_stop`).
pub fn flush_thread() {
    if let Some(sink) = SINK.get() {
        with_local(|local| local.send(sink));
    }
}

/// One thread's batch, and its cache of the formatted second.
#[derive(Default)]
struct Local {
    buf: Vec<u8>,
    clock: format::Clock,
    worker: bool,
}

impl Local {
    fn send(&mut self, sink: &sink::Sink) {
        if !self.buf.is_empty() {
            let next = sink.empty_batch(BATCH + 1024);
            sink.send(std::mem::replace(&mut self.buf, next));
        }
    }
}

impl Drop for Local {
    /// A thread that ends sends what it still holds.
    fn drop(&mut self) {
        if let Some(sink) = SINK.get() {
            self.send(sink);
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Runs `f` on this thread's batch, unless the thread is ending (its batch already sent) or
/// the batch is in use further up this thread's stack (never, as nothing in here logs).
fn with_local(f: impl FnOnce(&mut Local)) {
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            f(&mut local);
        }
    });
}

/// Appends a complete log line of another kind (from tracing) to this thread's batch and
/// sends the batch at once, so that warnings are never late and a thread's lines keep their
/// order. Falls back to writing directly when the batch is not available.
fn write_event(sink: &sink::Sink, line: &[u8]) {
    let mut done = false;
    with_local(|local| {
        local.buf.extend_from_slice(line);
        local.send(sink);
        done = true;
    });
    if !done {
        sink.send(line.to_vec());
    }
}
