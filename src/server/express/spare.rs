//! One spare read buffer and one spare write buffer per worker thread, so that the express
//! lane allocates no buffer per request, while a connection between requests holds none.
//!
//! A request's buffers are 4 KiB: beyond glibc's per-thread cache (1 KiB), where every
//! malloc and free walks the shared bins (profiles showed `malloc_consolidate` and
//! `unlink_chunk` once the lane allocated them per request). A task takes the spare at the
//! start of a request and gives it back at its end; a request that finds none (another task
//! on the thread holds it) allocates, and the larger of the two is kept. Thread-local: no lock.

use std::cell::RefCell;

use bytes::BytesMut;

/// The room a fresh buffer gets: a browser's or a benchmark's request head fits.
pub(super) const SIZE: usize = 4096;

/// Larger buffers (a long head, a response gathered to a record) are not kept.
const KEEP: usize = 64 * 1024;

thread_local! {
    static READ: RefCell<Option<BytesMut>> = const { RefCell::new(None) };
    static WRITE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer with room for at least `SIZE` bytes.
pub(super) fn read_buf() -> BytesMut {
    let spare = READ.with(|r| r.borrow_mut().take());
    spare.unwrap_or_else(|| BytesMut::with_capacity(SIZE))
}

/// Gives back a read buffer, once nothing else holds a slice of it (a request's header
/// values do until the request is dropped); otherwise it is simply freed.
pub(super) fn give_read(mut buf: BytesMut) {
    buf.clear();
    if buf.capacity() > KEEP || !buf.try_reclaim(SIZE) {
        return;
    }
    READ.with(|r| {
        let mut spare = r.borrow_mut();
        if spare.as_ref().is_none_or(|s| s.capacity() < buf.capacity()) {
            *spare = Some(buf);
        }
    });
}

/// An empty write buffer.
pub(super) fn write_buf() -> Vec<u8> {
    let spare = WRITE.with(|w| std::mem::take(&mut *w.borrow_mut()));
    if spare.capacity() == 0 {
        Vec::with_capacity(SIZE)
    } else {
        spare
    }
}

/// Gives back a write buffer.
pub(super) fn give_write(mut out: Vec<u8>) {
    if out.capacity() > KEEP {
        return;
    }
    out.clear();
    WRITE.with(|w| {
        let mut spare = w.borrow_mut();
        if spare.capacity() < out.capacity() {
            *spare = out;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_unless_a_slice_of_it_lives() {
        let mut buf = read_buf();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = buf.as_ptr();
        let head = buf.split_to(4).freeze();
        drop(head);
        give_read(buf);
        let again = read_buf();
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty() && again.capacity() >= SIZE);
        // A slice still alive: not kept.
        let mut buf = again;
        buf.extend_from_slice(b"abcd");
        let held = buf.split_to(2).freeze();
        give_read(buf);
        let fresh = read_buf();
        assert_ne!(fresh.as_ptr(), held.as_ptr());
        let out = write_buf();
        let ptr = out.as_ptr();
        give_write(out);
        let again = write_buf();
        assert_eq!(again.as_ptr(), ptr);
    }
}
