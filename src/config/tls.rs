//! `tls:` and `http_listen`: where the listener's certificates come from (files, self-signed,
//! or an ACME server, SPEC §10), validated with key-path errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::raw::{RawAcme, RawTls};
use super::{duration, ConfigError, MetricsSettings};

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub source: TlsSource,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// `tls.hsts`: the `max-age` of the `Strict-Transport-Security` header sent on every
    /// response; `None` (the default): no header.
    pub hsts: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM certificate chain and private key, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate for the `public_url` host (and localhost), generated once into `data_dir`.
    SelfSigned,
    /// One certificate per host, obtained and renewed from an ACME server into `data_dir`.
    Acme(AcmeSettings),
}

/// `tls.acme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The ACME server's directory URL (https).
    pub directory: Url,
    /// The account's contact, sent as `mailto:`; the CA writes there about expiring
    /// certificates and incidents.
    pub email: Option<String>,
    /// A PEM bundle trusted for the connection to `directory` instead of the public roots
    /// (a private ACME server such as Pebble).
    pub ca: Option<PathBuf>,
    pub challenge: Challenge,
}

/// `tls.acme.challenge`: how the ACME server checks that we serve a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 8555 §8.3: a token answered over plain HTTP on port 80 (`http_listen`).
    Http01,
    /// RFC 8737: a special certificate answered on the TLS listener (port 443).
    TlsAlpn01,
}

pub(super) fn tls(raw: RawTls) -> Result<TlsSettings, ConfigError> {
    // `0s` is allowed: `max-age=0` is how a site takes HSTS back (RFC 6797 §6.1.1).
    let hsts = match raw.hsts.as_deref().map(str::trim) {
        None => None,
        Some("0" | "0s") => Some(Duration::ZERO),
        Some(t) => Some(duration("tls.hsts", Some(t), Duration::ZERO)?),
    };
    let both = "give one of cert and key, self_signed: true, or acme, not several";
    let source = match (raw.cert, raw.key, raw.self_signed, raw.acme) {
        (None, None, false, Some(acme)) => TlsSource::Acme(acme_settings(acme)?),
        (_, _, _, Some(_)) => return Err(ConfigError::at("tls.acme", both)),
        (Some(cert), Some(key), false, None) => TlsSource::Files { cert, key },
        (None, None, true, None) => TlsSource::SelfSigned,
        (Some(_), Some(_), true, None) => return Err(ConfigError::at("tls.self_signed", both)),
        (Some(_), None, _, None) => {
            return Err(ConfigError::at("tls.key", "is required with tls.cert"))
        }
        (None, Some(_), _, None) => {
            return Err(ConfigError::at("tls.cert", "is required with tls.key"))
        }
        (None, None, false, None) => {
            return Err(ConfigError::at(
                "tls",
                "give cert and key (PEM files), self_signed: true, or acme",
            ))
        }
    };
    Ok(TlsSettings {
        source,
        handshake_timeout: duration(
            "tls.handshake_timeout",
            raw.handshake_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        reload_interval: duration(
            "tls.reload_interval",
            raw.reload_interval.as_deref(),
            Duration::from_secs(30),
        )?,
        hsts,
    })
}

fn acme_settings(raw: RawAcme) -> Result<AcmeSettings, ConfigError> {
    let dir = &raw.directory;
    let directory = Url::parse(dir)
        .map_err(|e| ConfigError::at("tls.acme.directory", format!("`{dir}` is not a URL: {e}")))?;
    if directory.scheme() != "https" || directory.host_str().is_none() {
        return Err(ConfigError::at(
            "tls.acme.directory",
            format!("`{dir}` must be an https:// URL (RFC 8555 §6.1: ACME runs over HTTPS only)"),
        ));
    }
    if let Some(email) = &raw.email {
        let ok = email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && !host.is_empty() && !host.contains('@')
        }) && !email.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',');
        if !ok {
            return Err(ConfigError::at(
                "tls.acme.email",
                format!("`{email}` is not an e-mail address like ops@example.com"),
            ));
        }
    }
    let challenge = match raw.challenge.as_deref() {
        None | Some("http-01") => Challenge::Http01,
        Some("tls-alpn-01") => Challenge::TlsAlpn01,
        Some(other) => {
            return Err(ConfigError::at(
                "tls.acme.challenge",
                format!("`{other}` is not one of http-01, tls-alpn-01"),
            ))
        }
    };
    Ok(AcmeSettings {
        directory,
        email: raw.email,
        ca: raw.ca,
        challenge,
    })
}

/// `http_listen` against the other listeners and the challenge that needs it.
pub(super) fn check_listeners(
    tls: &TlsSettings,
    listen: SocketAddr,
    http_listen: Option<SocketAddr>,
    metrics: Option<&MetricsSettings>,
) -> Result<(), ConfigError> {
    if let TlsSource::Acme(acme) = &tls.source {
        if acme.challenge == Challenge::Http01 && http_listen.is_none() {
            return Err(ConfigError::at(
                "tls.acme.challenge",
                "http-01 is answered on `http_listen` (port 80): set http_listen, or choose \
                 challenge: tls-alpn-01 (answered on `listen`, port 443)",
            ));
        }
    }
    let Some(http) = http_listen else {
        return Ok(());
    };
    let clash = |other: SocketAddr| other == http && http.port() != 0;
    if clash(listen) || metrics.is_some_and(|m| clash(m.listen)) {
        return Err(ConfigError::at(
            "http_listen",
            "must differ from `listen` and `metrics.listen` (plain HTTP has a listener of its own)",
        ));
    }
    Ok(())
}

/// With ACME: there must be a name to certify, and wildcard route hosts (which ACME grants
/// only by DNS-01) are served the `public_url` host's certificate, with a warning.
pub(super) fn check_acme_hosts(config: &mut super::Config) -> Result<(), ConfigError> {
    if !matches!(config.tls.source, TlsSource::Acme(_)) {
        return Ok(());
    }
    if config.hosts().is_empty() {
        return Err(ConfigError::at(
            "tls.acme",
            "no host name to obtain a certificate for: public_url is an IP address and no \
             route names a host (ACME certifies DNS names)",
        ));
    }
    for wildcard in config.wildcard_hosts() {
        config.warnings.push(format!(
            "tls.acme: route host `{wildcard}` gets no certificate of its own (a wildcard \
             needs the dns-01 challenge, which oauthgate does not answer): its names are \
             served the certificate of `{}`; name each host on a route of its own instead",
            config.hosts()[0]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Challenge, Config, TlsSource};

    fn parse(top: &str) -> Result<Config, String> {
        let top = if top.contains("public_url") {
            top.to_owned()
        } else {
            format!("public_url: https://gw.example\n{top}")
        };
        let text = format!(
            "listen: 127.0.0.1:8443\n{top}\n\
             gateway:\n  routes:\n    - {{prefix: /, upstream: \"http://127.0.0.1:9\"}}\n"
        );
        Config::parse(&text, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn acme_is_read_with_its_defaults() {
        let c = parse(
            "http_listen: 127.0.0.1:8080\ntls:\n  acme: {directory: \"https://ca.example/dir\", \
             email: ops@example.com}",
        )
        .unwrap();
        assert_eq!(c.http_listen, Some("127.0.0.1:8080".parse().unwrap()));
        let TlsSource::Acme(acme) = &c.tls.source else {
            panic!("{:?}", c.tls.source)
        };
        assert_eq!(acme.challenge, Challenge::Http01);
        assert_eq!(acme.directory.as_str(), "https://ca.example/dir");
        let c =
            parse("tls:\n  acme: {directory: \"https://ca.example/dir\", challenge: tls-alpn-01}")
                .unwrap();
        assert!(matches!(&c.tls.source, TlsSource::Acme(a) if a.challenge == Challenge::TlsAlpn01));
        assert_eq!(c.http_listen, None);
    }

    #[test]
    fn acme_errors_name_their_key() {
        let dir = "directory: \"https://ca.example/dir\"";
        let cases = [
            (
                format!("tls: {{self_signed: true, acme: {{{dir}}}}}"),
                "tls.acme:",
            ),
            (
                format!("tls: {{cert: a, key: b, acme: {{{dir}}}}}"),
                "tls.acme:",
            ),
            (
                "http_listen: 127.0.0.1:80\ntls: {acme: {directory: \"http://ca.example/dir\"}}"
                    .into(),
                "tls.acme.directory:",
            ),
            (
                "http_listen: 127.0.0.1:80\ntls: {acme: {directory: nonsense}}".into(),
                "tls.acme.directory:",
            ),
            (
                format!("http_listen: 127.0.0.1:80\ntls: {{acme: {{{dir}, challenge: dns-01}}}}"),
                "tls.acme.challenge:",
            ),
            (
                format!("tls: {{acme: {{{dir}, challenge: http-01}}}}"),
                "tls.acme.challenge:",
            ),
            (format!("tls: {{acme: {{{dir}}}}}"), "tls.acme.challenge:"),
            (
                format!("http_listen: 127.0.0.1:80\ntls: {{acme: {{{dir}, email: \"a b@c\"}}}}"),
                "tls.acme.email:",
            ),
            (
                format!("http_listen: 127.0.0.1:80\ntls: {{acme: {{{dir}, colour: red}}}}"),
                "tls.acme.colour:",
            ),
            (
                "http_listen: 127.0.0.1:8443\ntls: {self_signed: true}".into(),
                "http_listen:",
            ),
            (
                "http_listen: nowhere\ntls: {self_signed: true}".into(),
                "http_listen:",
            ),
        ];
        for (top, want) in cases {
            let e = parse(&top).unwrap_err();
            assert!(e.starts_with(want), "{top}: {e}");
        }
    }

    #[test]
    fn http_listen_works_without_acme() {
        let c = parse("http_listen: \"[::1]:8080\"\ntls: {self_signed: true}").unwrap();
        assert_eq!(c.http_listen, Some("[::1]:8080".parse().unwrap()));
        assert_eq!(c.tls.source, TlsSource::SelfSigned);
    }
}
