//! Header maps kept per thread between requests, and filled again through the names they
//! already hold.
//!
//! A header map costs about 300 instructions a header to fill: each name parsed (`HeaderName`
//! looks its standard names up), hashed and inserted. Yet the requests of one client, and
//! the responses of one upstream, come with the same header names in the same order, request
//! after request. So a map is given back with its names (its values blanked, so that no
//! buffer of the last message stays held) and, filled again, keeps them when the new head
//! begins with the same names in the same order: each such header costs a case-insensitive
//! compare of its name and the new value (see [`fill`]). Requests and responses keep their
//! maps apart: each list holds the names that kind of head came with last.
//!
//! [`fill`] gives the map that appending each header to an empty map gives: the property
//! tests hold it to that for any map it starts from.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// Byte ranges of one header line in a head: name start, name end, value start, value end
/// (heads are far under 4 GiB, so `u32` holds them).
pub type Line = (u32, u32, u32, u32);

/// A header the head's bytes do not make a valid `HeaderName` and `HeaderValue` of, or
/// whose range lies outside the head.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// How many maps of each kind a thread keeps: as many requests as wait on their upstreams
/// at once on one thread take none from the allocator.
const SPARES: usize = 64;

/// A map with room for more headers than this (a request or response with many) is freed,
/// not kept. A map's room is three quarters of a power of two (6, 12, 24, 48, 96, …), so a
/// kept one has at most 64 index slots and 48 entries: a few KiB, and at most `SPARES` of
/// each kind a thread after a burst (well under 1 MiB).
const KEEP_HEADERS: usize = 48;

thread_local! {
    static REQUESTS: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static RESPONSES: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    /// A head's line positions, while it is parsed: one list a thread, reused by every head
    /// (an array of 100 positions made for each head was 1.6 KiB written per parse).
    static LINES: Cell<Vec<Line>> = const { Cell::new(Vec::new()) };
}

/// This thread's list for a head's line positions, empty (a new one when it is lent out
/// already, or the thread is ending). Give it back with [`give_lines`].
pub fn take_lines() -> Vec<Line> {
    let mut lines = LINES.try_with(Cell::take).unwrap_or_default();
    lines.clear();
    lines
}

/// Gives back the list [`take_lines`] lent: it keeps its room (at most 100 lines, 1.6 KiB)
/// for the thread's next head.
pub fn give_lines(lines: Vec<Line>) {
    let _ = LINES.try_with(|kept| kept.set(lines));
}

/// The kind of head a kept map was, and will be, filled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    fn list(self) -> &'static LocalKey<RefCell<Vec<HeaderMap>>> {
        match self {
            Kind::Request => &REQUESTS,
            Kind::Response => &RESPONSES,
        }
    }
}

/// A kept map: the last head's names with blank values. Its only way out is [`Kept::fill`],
/// so nothing can read those names as a message's headers.
#[derive(Debug, Default)]
pub struct Kept(HeaderMap);

impl Kept {
    /// The map of the headers of `lines` (ranges in `head`), with room for `room` more (see
    /// [`fill`]); this one is left empty.
    pub fn fill(
        &mut self,
        head: &Bytes,
        lines: &[Line],
        room: usize,
    ) -> Result<HeaderMap, Invalid> {
        let mut map = std::mem::take(&mut self.0);
        fill(&mut map, head, lines, room)?;
        Ok(map)
    }
}

/// A map for a head of this kind: one kept on this thread, or a new one.
pub fn take(kind: Kind) -> Kept {
    let kept = kind.list().try_with(|l| l.borrow_mut().pop());
    Kept(kept.ok().flatten().unwrap_or_default())
}

/// Keeps `map` for the next head of this kind: its names stay, each value is blanked (so no
/// buffer of this message stays held), unless it grew large or the list is full.
pub fn give(kind: Kind, mut map: HeaderMap) {
    if map.capacity() > KEEP_HEADERS {
        return;
    }
    for value in map.values_mut() {
        *value = HeaderValue::from_static("");
    }
    crate::util::keep_spare(kind.list(), map, SPARES);
}

/// Makes `map` hold the headers of `lines` (ranges in `head`), in order, with room for
/// `room` more: the map that appending each to an empty map gives, whatever `map` held.
/// Its first names are reused when they are, in its order, the first names of `lines`
/// (compared as `HeaderName` compares them: without case), and its others removed; otherwise
/// it is cleared first. Values share `head`'s bytes. On `Err` the map is left empty.
fn fill(map: &mut HeaderMap, head: &Bytes, lines: &[Line], room: usize) -> Result<(), Invalid> {
    let filled = refill(map, head, lines, room);
    if filled.is_err() {
        map.clear();
    }
    filled
}

fn refill(map: &mut HeaderMap, head: &Bytes, lines: &[Line], room: usize) -> Result<(), Invalid> {
    let kept = match reuse_names(map, head, lines)? {
        Some(kept) => kept,
        None => {
            map.clear();
            0
        }
    };
    let rest = &lines[kept..];
    map.reserve(rest.len() + room);
    for &(n0, n1, v0, v1) in rest {
        let name = HeaderName::from_bytes(range(head, n0, n1)?).map_err(|_| Invalid)?;
        map.append(name, value(head, v0, v1)?);
    }
    Ok(())
}

/// Gives each of the map's headers, in its order, the value of the line in the same place,
/// while the names match; then removes the headers past the head's lines (the last head's
/// that this one lacks, or what the gateway added to the last message: HSTS, a renewed
/// session's cookie). `Some(n)`: `n` were reused,
/// and the map is the one the first `n` lines make (it iterates in the order its lines were
/// appended). `None`: not reused (some values may be new: the caller clears the map).
fn reuse_names(
    map: &mut HeaderMap,
    head: &Bytes,
    lines: &[Line],
) -> Result<Option<usize>, Invalid> {
    let mut reused = 0;
    // The names past the lines, each once (a map iterates a name's values together).
    let mut past: [Option<HeaderName>; FEW_PAST] = Default::default();
    {
        let mut headers = map.iter_mut();
        let mut last: Option<&HeaderName> = None;
        for &(n0, n1, v0, v1) in lines {
            let Some((name, slot)) = headers.next() else {
                break;
            };
            if !same_name(range(head, n0, n1)?, name.as_str().as_bytes()) {
                return Ok(None);
            }
            *slot = value(head, v0, v1)?;
            reused += 1;
            last = Some(name);
        }
        let mut count = 0;
        for (name, _) in headers {
            if Some(name) == last {
                // A name whose values the lines end among: removing it would take the
                // reused ones too.
                return Ok(None);
            }
            if count > 0 && past[count - 1].as_ref() == Some(name) {
                continue;
            }
            match past.get_mut(count) {
                Some(slot) => *slot = Some(name.clone()),
                None => return Ok(None),
            }
            count += 1;
        }
    }
    if reused == 0 {
        return Ok(None);
    }
    // The names past the lines are the map's last entries, so removing them (each swapped
    // with the last) moves none of the reused ones.
    for name in past.iter_mut().filter_map(Option::take) {
        map.remove(name);
    }
    Ok(Some(reused))
}

/// Whether `raw`, a header name as sent, is `name` (a `HeaderName`'s text, lower-case ASCII)
/// as `HeaderName` reads names: without ASCII case (`eq_ignore_ascii_case`, which took a
/// tenth of a proxied request's header work a byte at a time). Eight bytes at a time.
fn same_name(raw: &[u8], name: &[u8]) -> bool {
    if raw.len() != name.len() {
        return false;
    }
    let mut raw_words = raw.chunks_exact(8);
    let mut name_words = name.chunks_exact(8);
    for (r, n) in (&mut raw_words).zip(&mut name_words) {
        if lower(word(r)) != Some(word(n)) {
            return false;
        }
    }
    lower(word(raw_words.remainder())) == Some(word(name_words.remainder()))
}

/// Up to eight bytes as one little-endian word (zeros after them). A name's last few bytes
/// are read as two loads that overlap (the bytes they share are the same in both), not a
/// byte at a time: a fifth of a kept map's refill went to that loop.
fn word(b: &[u8]) -> u64 {
    if let Some(eight) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*eight);
    }
    let n = b.len();
    match (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        (Some(lo), Some(hi)) => {
            u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4))
        }
        _ => match (b.first_chunk::<2>(), b.last_chunk::<2>()) {
            (Some(lo), Some(hi)) => {
                u64::from(u16::from_le_bytes(*lo))
                    | u64::from(u16::from_le_bytes(*hi)) << (8 * (n - 2))
            }
            _ => b.first().map_or(0, |&one| u64::from(one)),
        },
    }
}

/// The word with each of its bytes in `A..=Z` made lower case; `None` if a byte is not
/// ASCII (no name has one). For bytes under 0x80, `b + 0x3f` reaches 0x80 exactly when
/// `b >= b'A'`, and `b + 0x25` when `b > b'Z'`, with no carry into the next byte.
fn lower(w: u64) -> Option<u64> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if w & HIGH != 0 {
        return None;
    }
    let from_a = w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let past_z = w.wrapping_add(0x2525_2525_2525_2525);
    let upper = from_a & !past_z & HIGH;
    Some(w | (upper >> 2))
}

/// How many names past a head's lines a reused map may drop (the gateway adds at most a few
/// to a message: a renewed session's cookie and `Cache-Control`, HSTS).
const FEW_PAST: usize = 4;

/// `head[start..end]`, when that lies inside the head.
fn range(head: &Bytes, start: u32, end: u32) -> Result<&[u8], Invalid> {
    head.get(start as usize..end as usize).ok_or(Invalid)
}

/// The value at `head[start..end]`, sharing its bytes.
fn value(head: &Bytes, start: u32, end: u32) -> Result<HeaderValue, Invalid> {
    range(head, start, end)?;
    HeaderValue::from_maybe_shared(head.slice(start as usize..end as usize)).map_err(|_| Invalid)
}

#[cfg(test)]
#[path = "maps_tests.rs"]
mod tests;
