//! The upstream client codec's reading side (issue 16): a response head and its chunked body
//! as an upstream sends them, in any split. How the bytes arrive never changes what is read;
//! a head is taken whole and only it (1xx skipped, never returned); a chunked body never
//! yields more than was sent, and what follows its end is left in the buffer, never eaten.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{parse_head, ChunkError, ChunkStep, Chunked, Framing, HeadError, Kept};

/// The head read from `wire` fed in pieces cut at `cuts`: the outcome and what is left.
fn head_in_pieces(
    wire: &[u8],
    cuts: &[usize],
    head_request: bool,
) -> (Result<Option<(u16, Framing, bool, usize)>, HeadError>, Vec<u8>) {
    let mut buf = BytesMut::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([&wire.len()]) {
        let cut = cut.clamp(at, wire.len());
        buf.extend_from_slice(&wire[at..cut]);
        at = cut;
        match parse_head(&mut buf, head_request, &mut Kept::default()) {
            Ok(None) => continue,
            Ok(Some(p)) => {
                let status = p.response.status().as_u16();
                assert!(status >= 200, "a {status} head was returned");
                buf.extend_from_slice(&wire[at..]);
                let headers = p.response.headers().len();
                return (Ok(Some((status, p.framing, p.reuse, headers))), buf.to_vec());
            }
            Err(e) => return (Err(e), Vec::new()),
        }
    }
    (Ok(None), buf.to_vec())
}

/// The chunked body read from `wire` in pieces: its bytes, and what follows its end.
fn chunked_in_pieces(wire: &[u8], cuts: &[usize]) -> Result<Option<(Vec<u8>, Vec<u8>)>, ChunkError> {
    let mut dec = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([&wire.len()]) {
        let cut = cut.clamp(at, wire.len());
        buf.extend_from_slice(&wire[at..cut]);
        at = cut;
        loop {
            match dec.step(&mut buf)? {
                ChunkStep::Data(d) => {
                    assert!(!d.is_empty(), "empty data frame");
                    body.extend_from_slice(&d);
                }
                ChunkStep::More => break,
                ChunkStep::End => {
                    buf.extend_from_slice(&wire[at..]);
                    return Ok(Some((body, buf.to_vec())));
                }
            }
        }
    }
    Ok(None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, wire)) = data.split_first() else {
        return;
    };
    let head_request = first & 1 == 1;
    let n = wire.len().max(1);
    // Cut points from the input itself, so that libFuzzer explores them too.
    let cuts: Vec<usize> = wire.iter().take(4).map(|&b| usize::from(b) * n / 256).collect();
    let mut sorted = cuts.clone();
    sorted.sort_unstable();

    let (whole, rest) = head_in_pieces(wire, &[], head_request);
    let (split, split_rest) = head_in_pieces(wire, &sorted, head_request);
    assert_eq!(whole, split, "the split changed the head");
    assert_eq!(rest, split_rest, "the split changed what follows the head");
    if let Ok(Some(_)) = whole {
        assert!(rest.len() < wire.len(), "a head was read from nothing");
    }

    // The body after it, or the whole input, as a chunked body.
    let body = match whole {
        Ok(Some((_, Framing::Chunked, ..))) => &rest[..],
        _ => wire,
    };
    let whole = chunked_in_pieces(body, &[]);
    let split = chunked_in_pieces(body, &sorted);
    assert_eq!(whole, split, "the split changed the chunked body");
    if let Ok(Some((data, after))) = whole {
        assert!(data.len() + after.len() < body.len(), "more out than in");
        assert!(body.ends_with(&after), "bytes after the end were eaten");
    }
});
