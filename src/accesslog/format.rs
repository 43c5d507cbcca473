//! Writing an access line, byte by byte, into a reused buffer: RFC 3339 times, integers by
//! `itoa`, JSON strings escaped for every byte. No `format!`, no allocation once the buffer
//! has grown to its working size.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;
use crate::context::Verdict;

/// What one access line says (SPEC §7); the same fields, by the same names, in both formats.
pub struct Line<'a> {
    pub time: SystemTime,
    pub request_id: &'a [u8],
    pub peer: IpAddr,
    pub method: &'a str,
    /// The request's path as received, never its query.
    pub path: &'a str,
    pub status: u16,
    pub route: &'a str,
    pub duration: Duration,
    pub user: Option<&'a str>,
    pub verdict: Verdict,
    /// Why, for `deny` and `error`.
    pub reason: Option<&'static str>,
}

/// The date and time of the last second formatted, so that most lines copy 19 bytes instead
/// of converting days to a calendar date.
#[derive(Default)]
pub struct Clock {
    second: u64,
    text: [u8; 19],
}

impl Clock {
    /// Appends `time` as `2026-11-30T06:10:17.123Z` (UTC, milliseconds).
    pub fn write(&mut self, out: &mut Vec<u8>, time: SystemTime) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if second != self.second || self.text[0] == 0 {
            self.text = date_time(second);
            self.second = second;
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        let ms = since.subsec_millis();
        out.extend_from_slice(&[
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (UTC; years 0 to 9999).
fn date_time(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut t = *b"0000-00-00T00:00:00";
    let two = |t: &mut [u8; 19], at: usize, v: u64| {
        t[at] = b'0' + (v / 10 % 10) as u8;
        t[at + 1] = b'0' + (v % 10) as u8;
    };
    let y = y.clamp(0, 9999) as u64;
    two(&mut t, 0, y / 100);
    two(&mut t, 2, y % 100);
    two(&mut t, 5, m);
    two(&mut t, 8, d);
    two(&mut t, 11, rest / 3600);
    two(&mut t, 14, rest / 60 % 60);
    two(&mut t, 17, rest % 60);
    t
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, public domain algorithm): eras of 400 years, years starting in March.
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends one access line (with its newline) in `format`.
pub fn line(out: &mut Vec<u8>, clock: &mut Clock, format: LogFormat, l: &Line<'_>) {
    let json = format == LogFormat::Json;
    if json {
        out.extend_from_slice(b"{\"time\":\"");
        clock.write(out, l.time);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\"");
    } else {
        clock.write(out, l.time);
        out.extend_from_slice(b"  INFO access:");
    }
    let mut f = Fields { out, json };
    f.text("request_id", l.request_id);
    f.key("peer");
    f.quote();
    ip(f.out, l.peer);
    f.quote();
    f.text("method", l.method.as_bytes());
    f.key("path");
    f.quote();
    path(f.out, l.path.as_bytes(), json);
    f.quote();
    f.key("status");
    f.out
        .extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    f.text("route", l.route.as_bytes());
    f.key("duration");
    millis(f.out, l.duration);
    f.text("user", l.user.unwrap_or("-").as_bytes());
    f.text("decision", l.verdict.as_str().as_bytes());
    if let Some(reason) = l.reason {
        f.text("reason", reason.as_bytes());
    }
    out.extend_from_slice(if json { b"}\n" } else { b"\n" });
}

/// Writes `key=value` pairs (text) or `,"key":value` members (JSON).
struct Fields<'o> {
    out: &'o mut Vec<u8>,
    json: bool,
}

impl Fields<'_> {
    fn key(&mut self, key: &str) {
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(key.as_bytes());
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            self.out.extend_from_slice(key.as_bytes());
            self.out.push(b'=');
        }
    }

    /// The quote around a JSON string; nothing in text, where the value is plain.
    fn quote(&mut self) {
        if self.json {
            self.out.push(b'"');
        }
    }

    /// A string: a JSON string, or in text the bare value when it is plain (visible ASCII, no
    /// quote or backslash), else a quoted, JSON-escaped one, so that a line stays one line
    /// and every value reads back unambiguously.
    fn text(&mut self, key: &str, value: &[u8]) {
        self.key(key);
        if !self.json && !value.is_empty() && value.iter().all(|&b| plain(b)) {
            self.out.extend_from_slice(value);
            return;
        }
        self.out.push(b'"');
        json_escape(self.out, value);
        self.out.push(b'"');
    }
}

fn plain(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

/// Appends `s` escaped for the inside of a JSON string (RFC 8259 §7): `"`, `\` and every
/// control character (U+0000 to U+001F, and DEL for the terminals that read logs). Other
/// bytes are copied: callers give valid UTF-8 or, for raw bytes, percent-encode first.
pub fn json_escape(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..=0x1f | 0x7f => 0,
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    out.extend_from_slice(&s[start..]);
}

/// A path as the client sent it, with every byte that is not visible ASCII percent-encoded
/// (hyper passes bytes above 0x7F through), so the line is ASCII and one line; in JSON, `"`
/// and `\` are escaped as well.
fn path(out: &mut Vec<u8>, p: &[u8], json: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in p {
        match b {
            b'"' | b'\\' if json => out.extend_from_slice(&[b'\\', b]),
            0x21..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}

/// An address: IPv4 by `itoa` (the common case), IPv6 by its `Display` (no allocation).
fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// A duration in milliseconds with three decimals (`12.345`), by integer arithmetic.
fn millis(out: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    let frac = (micros % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests;
