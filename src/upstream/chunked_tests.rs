//! The chunked decoder against bodies encoded here, split at random, and every malformed
//! variant it must refuse.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::*;

/// Feeds `wire` to a decoder in the pieces `cuts` makes; the body, and what is left after
/// its end.
fn decode(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
    let mut dec = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut at = 0;
    let mut pieces: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    pieces.sort_unstable();
    pieces.push(wire.len());
    for end in pieces {
        buf.put_slice(&wire[at..end.max(at)]);
        at = end.max(at);
        loop {
            match dec.step(&mut buf)? {
                Step::Data(d) => {
                    assert!(!d.is_empty());
                    body.extend_from_slice(&d);
                }
                Step::More => break,
                Step::End => {
                    buf.put_slice(&wire[at..]);
                    return Ok((body, buf.to_vec()));
                }
            }
        }
    }
    Err(ChunkError::Crlf)
}

fn encode(chunks: &[Vec<u8>], ext: bool, trailers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:X}", c.len()).as_bytes());
        if ext {
            out.extend_from_slice(b" ;name=\"v;x\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailers {
        out.extend_from_slice(b"Expires: never\r\nX-T: \t1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn any_chunking_and_any_split_decodes_to_the_input(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        ext: bool,
        trailers: bool,
        after in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let mut wire = encode(&chunks, ext, trailers);
        wire.extend_from_slice(&after);
        let (body, rest) = decode(&wire, &cuts).expect("valid chunked body");
        prop_assert_eq!(body, chunks.concat());
        // Bytes after the end are left for the caller to see (a desync), never eaten.
        prop_assert_eq!(rest, after);
    }

    #[test]
    fn no_input_panics_and_data_never_exceeds_the_input(
        wire in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        if let Ok((body, rest)) = decode(&wire, &cuts) {
            prop_assert!(body.len() + rest.len() <= wire.len());
        }
    }
}

fn refused(wire: &[u8]) -> ChunkError {
    match decode(wire, &[]) {
        Err(e) => e,
        Ok(got) => panic!("accepted {:?}: {got:?}", String::from_utf8_lossy(wire)),
    }
}

#[test]
fn malformed_sizes_are_refused() {
    for wire in [
        &b"+5\r\nhello\r\n0\r\n\r\n"[..],
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\r\n",
        b";ext\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"g\r\n",
        b"5\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(refused(wire), ChunkError::Size, "{wire:?}");
    }
    assert_eq!(refused(b"10000000000000000\r\n"), ChunkError::Overflow);
    assert_eq!(refused(b"ffffffffffffffff0\r\n"), ChunkError::Overflow);
}

#[test]
fn crlf_is_required_where_the_grammar_puts_it() {
    for wire in [
        &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
        b"5\r\nhello\rX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"0\r\n\rX",
        b"0\r\nX-T: 1\rX",
    ] {
        assert_eq!(refused(wire), ChunkError::Crlf, "{wire:?}");
    }
}

#[test]
fn extensions_and_trailers_are_bounded_and_free_of_controls() {
    let mut long = b"5;".to_vec();
    long.resize(MAX_SIZE_LINE + 10, b'a');
    assert_eq!(refused(&long), ChunkError::LongLine);
    let mut trailers = b"0\r\n".to_vec();
    for _ in 0..(MAX_TRAILERS / 10 + 1) {
        trailers.extend_from_slice(b"X-A: 1234\r\n");
    }
    assert_eq!(refused(&trailers), ChunkError::LongTrailers);
    assert_eq!(refused(b"5;a\0b\r\n"), ChunkError::Control);
    assert_eq!(refused(b"5;a\nb\r\n"), ChunkError::Control);
    assert_eq!(refused(b"0\r\nX-A: \0\r\n\r\n"), ChunkError::Control);
    assert_eq!(refused(b"0\r\nX-A: 1\n\r\n"), ChunkError::Control);
}

#[test]
fn data_is_sliced_from_the_buffer() {
    let mut buf = BytesMut::from(&b"5\r\nhello\r\n0\r\n\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let mut dec = Chunked::default();
    match dec.step(&mut buf) {
        Ok(Step::Data(d)) => {
            assert_eq!(&d[..], b"hello");
            assert_eq!(d.as_ptr() as usize, start + 3, "copied, not sliced");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dec.step(&mut buf), Ok(Step::End));
    assert!(buf.is_empty());
    // Asked again after the end, it stays ended and takes nothing more.
    buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(dec.step(&mut buf), Ok(Step::End));
    assert_eq!(buf.len(), 17);
}
