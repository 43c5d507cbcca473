//! The headers the gateway sets on every request it forwards: `Host`,
//! `X-Forwarded-For/-Proto/-Host`, the user's identity and `X-Request-Id`, and the `Cookie`
//! left once its own cookies are cut. They are ours alone: any header of these names in the
//! request's map is left out, whatever the strips before let through. On the hot path they
//! are written straight into the request head (six map inserts a request were a tenth of the
//! gateway's own work); a request hyper sends gets them in its map.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::headers::{self, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_USER_INFO};
use super::identity::{Outgoing, X_USER_ASSERTION};
use super::session::OwnCookies;
use crate::context::X_REQUEST_ID;
use crate::upstream::SetHeaders;

/// Room for the headers [`Added::set_in`] puts in a map: one made with this much over its
/// size is not grown and rehashed on the way.
const ADDED_HEADERS: usize = 8;

/// What one forwarded request is told.
pub struct Added {
    /// `Host`: the client's (`preserve_host`) or the upstream's.
    pub host: HeaderValue,
    /// `X-Forwarded-For`: the client's address, never what it claimed.
    pub peer: IpAddr,
    /// `X-Forwarded-Host`: the host the client asked for, if it named one.
    pub forwarded_host: Option<HeaderValue>,
    /// The logged-in user, on a route that sends it.
    pub identity: Option<Outgoing>,
    pub request_id: HeaderValue,
    /// The request's `Cookie` without the gateway's own cookies, when it carried any.
    pub cookies: OwnCookies,
}

impl SetHeaders for Added {
    fn replaces(&self, name: &HeaderName) -> bool {
        *name == header::HOST
            || *name == X_FORWARDED_FOR
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_HOST
            || *name == X_REQUEST_ID
            || *name == X_USER_INFO
            || *name == X_USER_ASSERTION
            || self.identity.as_ref().is_some_and(|i| i.configures(name))
            || (*name == header::COOKIE && self.cookies != OwnCookies::Absent)
    }

    fn write_h1(&self, out: &mut Vec<u8>) {
        // The names as written by `HeaderName` (lower case), each with its `: `.
        line(out, b"host: ", self.host.as_bytes());
        let mut ip = [0u8; 48];
        if let Some(len) = headers::format_ip(&mut ip, self.peer) {
            line(out, b"x-forwarded-for: ", &ip[..len]);
        }
        out.extend_from_slice(b"x-forwarded-proto: https\r\n");
        if let Some(host) = &self.forwarded_host {
            line(out, b"x-forwarded-host: ", host.as_bytes());
        }
        if let Some(identity) = &self.identity {
            identity.each(|name, value| {
                out.extend_from_slice(name.as_str().as_bytes());
                line(out, b": ", value.as_bytes());
            });
        }
        line(out, b"x-request-id: ", self.request_id.as_bytes());
        if let OwnCookies::Cut(Some(kept)) = &self.cookies {
            line(out, b"cookie: ", kept.as_bytes());
        }
    }

    fn set_in(&self, h: &mut HeaderMap) {
        h.reserve(ADDED_HEADERS);
        headers::set_forwarded(h, self.peer, self.forwarded_host.as_ref());
        if let Some(identity) = &self.identity {
            identity.set(h);
        }
        h.insert(X_REQUEST_ID.clone(), self.request_id.clone());
        h.insert(header::HOST, self.host.clone());
        self.cookies.set_in(h);
    }
}

/// `name: ` (with its colon and space) `value\r\n`. Every value here is a `HeaderValue` (no
/// CR, LF or NUL: see `upstream::h1::encode_head`) or an address written by `format_ip`.
#[inline(always)]
fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 2);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "added_tests.rs"]
mod tests;
