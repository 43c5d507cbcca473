//! Spare read and write buffers per worker thread, so that the express lane allocates no
//! buffer per request, while a connection between requests holds none.
//!
//! A request's buffers are 4 KiB: beyond glibc's per-thread cache (1 KiB), where every
//! malloc and free walks the shared bins (profiles showed `malloc_consolidate` and
//! `unlink_chunk` once the lane allocated them per request). A task takes a spare at the
//! start of a request and gives it back at its end. A request holds its read buffer while
//! its upstream answers (the header values share its bytes), so a thread keeps a few: with
//! one spare, every request that began while another was waiting allocated (nine requests
//! in ten under `bench/auth.sh`). Thread-local: no lock.
//!
//! Header maps are kept the same way, by `crate::maps`.

use std::cell::RefCell;

use bytes::BytesMut;

/// The room a fresh buffer gets: a browser's or a benchmark's request head fits.
pub(super) const SIZE: usize = 4096;

/// Larger buffers (a long head, a response gathered to a record) are not kept.
const KEEP: usize = 64 * 1024;

/// How many spare read buffers a thread keeps: as many requests as wait on
/// their upstreams at once on one thread take none from the allocator (most are 4 KiB; at most `KEEP` each).
const SPARES: usize = 64;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer with room for at least `SIZE` bytes.
pub(super) fn read_buf() -> BytesMut {
    let spare = READ.with(|r| r.borrow_mut().pop());
    spare.unwrap_or_else(|| BytesMut::with_capacity(SIZE))
}

/// Gives back a read buffer, once nothing else holds a slice of it (a request's header
/// values do until the request is dropped); otherwise it is simply freed.
pub(super) fn give_read(mut buf: BytesMut) {
    buf.clear();
    // The size is checked once reclaimed: reclaiming gives back the whole allocation, which a
    // long head had grown (a review finding: checked before, a split-off buffer looked small).
    if !buf.try_reclaim(SIZE) || buf.capacity() > KEEP {
        return;
    }
    crate::util::keep_spare(&READ, buf, SPARES);
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

    #[test]
    fn requests_waiting_at_once_each_give_back_a_buffer_that_is_taken_again() {
        // Tests run on threads of their own: this thread's spares are this test's.
        let spares = || READ.with(|r| r.borrow().len());
        let held: Vec<BytesMut> = (0..SPARES + 3).map(|_| read_buf()).collect();
        assert_eq!(spares(), 0);
        let kept: Vec<*const u8> = held[..SPARES].iter().map(|b| b.as_ptr()).collect();
        for buf in held {
            give_read(buf);
        }
        // All but the three beyond the bound are kept.
        assert_eq!(spares(), SPARES);
        let again: Vec<BytesMut> = (0..SPARES).map(|_| read_buf()).collect();
        assert_eq!(spares(), 0);
        assert!(again.iter().all(|b| kept.contains(&b.as_ptr())));
        assert!(again.iter().all(|b| b.is_empty() && b.capacity() >= SIZE));
    }

    #[test]
    fn a_buffer_grown_by_a_long_head_is_not_kept_even_split() {
        let spares = || READ.with(|r| r.borrow().len());
        let mut buf = read_buf();
        buf.resize(KEEP + 100, b'x');
        // The head taken off the front: what is left looks small until reclaimed.
        let head = buf.split_to(KEEP + 50).freeze();
        drop(head);
        assert!(buf.capacity() <= KEEP);
        let before = spares();
        give_read(buf);
        assert_eq!(spares(), before, "a grown buffer is freed, not kept");
    }
}
