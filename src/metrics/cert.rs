//! The served certificate's expiry, for `oauthgate_tls_certificate_expiry_timestamp_seconds`.
//!
//! rustls-pki-types carries certificates as DER without reading them; `x509-parser` (from the
//! Rusticata project, the parser behind `rcgen`'s own tests and many TLS tools) reads the
//! `notAfter` field. Parsed at scrape time, so a certificate reloaded from disk is reported as
//! soon as it is served.

use crate::tls::ReloadingResolver;

/// The served certificate's file and its `notAfter` (Unix seconds); `None` when it cannot be
/// read (then the metric has no sample, rather than a wrong one).
pub(super) fn expiry(tls: &ReloadingResolver) -> Option<(String, i64)> {
    let (file, der) = tls.served()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some((
        file.display().to_string(),
        cert.validity().not_after.timestamp(),
    ))
}
