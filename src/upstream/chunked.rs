//! A strict decoder of `Transfer-Encoding: chunked` response bodies (RFC 9112 §7.1): the data
//! handed on as slices of the read buffer, everything else checked byte by byte and bounded.
//! Whatever it refuses ends the body with an error and the connection with it: a lenient
//! reading here is how a response smuggled into a pooled connection reaches the next user.

use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk-size line, extensions included.
pub const MAX_SIZE_LINE: usize = 4096;
/// The most bytes of trailer fields (read, and dropped).
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("a chunk size that is not hexadecimal digits")]
    Size,
    #[error("a chunk size over 2^64")]
    Overflow,
    #[error("a chunk-size line over {MAX_SIZE_LINE} bytes")]
    LongLine,
    #[error("a control character in a chunk extension or trailer")]
    Control,
    #[error("no CRLF where one must be")]
    Crlf,
    #[error("trailers over {MAX_TRAILERS} bytes")]
    LongTrailers,
}

/// What one step of decoding gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The buffer is used up before the body's end: read more.
    More,
    /// The body has ended; its last byte (the final CRLF) was taken from the buffer.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the size: its value and how many digits so far.
    Size(u64, usize),
    /// Spaces after the size, before `;` (RFC 9112's BWS).
    SizeSpace(u64),
    /// A chunk extension, skipped up to its CR.
    Ext(u64),
    /// The LF of the size line.
    SizeLf(u64),
    /// Bytes of chunk data left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// The decoder's state between reads.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line so far.
    line: usize,
    /// Bytes of trailers so far.
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size(0, 0),
            line: 0,
            trailers: 0,
        }
    }
}

impl Chunked {
    /// Decodes from the front of `buf`, taking what it used; data comes out as slices of the
    /// buffer (no copy). Call again after `Data`; read more into `buf` after `More`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            if let State::Data(left) = self.state {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            if self.state == State::Done {
                return Ok(Step::End);
            }
            let Some(&b) = buf.first() else {
                return Ok(Step::More);
            };
            buf.advance(1);
            self.state = self.byte(b)?;
        }
    }

    /// One byte outside chunk data.
    fn byte(&mut self, b: u8) -> Result<State, ChunkError> {
        use State::*;
        if matches!(self.state, Size(..) | SizeSpace(_) | Ext(_) | SizeLf(_)) {
            self.line += 1;
            if self.line > MAX_SIZE_LINE {
                return Err(ChunkError::LongLine);
            }
        }
        if matches!(self.state, TrailerStart | Trailer | TrailerLf | EndLf) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError::LongTrailers);
            }
        }
        Ok(match (self.state, b) {
            (Size(n, digits), _) if b.is_ascii_hexdigit() => {
                let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                let n = n.checked_mul(16).and_then(|n| n.checked_add(d));
                let n = n.ok_or(ChunkError::Overflow)?;
                Size(n, digits + 1)
            }
            (Size(_, 0), _) => return Err(ChunkError::Size),
            (Size(n, _) | SizeSpace(n), b' ' | b'\t') => SizeSpace(n),
            (Size(n, _) | SizeSpace(n), b';') => Ext(n),
            (Size(n, _), b'\r') => SizeLf(n),
            (Size(..) | SizeSpace(_), _) => return Err(ChunkError::Size),
            (Ext(n), b'\r') => SizeLf(n),
            (Ext(n), _) if b == b'\t' || !b.is_ascii_control() => Ext(n),
            (Ext(_), _) => return Err(ChunkError::Control),
            (SizeLf(n), b'\n') => {
                self.line = 0;
                if n == 0 {
                    TrailerStart
                } else {
                    Data(n)
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size(0, 0),
            (TrailerStart, b'\r') => EndLf,
            (Trailer, b'\r') => TrailerLf,
            (TrailerStart | Trailer, _) if b == b'\t' || !b.is_ascii_control() => Trailer,
            (TrailerStart | Trailer, _) => return Err(ChunkError::Control),
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (SizeLf(_) | DataCr | DataLf | TrailerLf | EndLf, _) => return Err(ChunkError::Crlf),
            (Data(_) | Done, _) => self.state,
        })
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
