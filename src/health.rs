//! `oauthgate health [--url URL]`: probes this process's health endpoint over TLS, for
//! Docker's `HEALTHCHECK` and service managers (the image has no curl).
//!
//! Without `--url` it asks the configured listener: `/_auth/health` when the config has a
//! gateway, else `/oauth/health`, sent to `listen` (an unspecified address becomes loopback)
//! with `public_url`'s host as the name. A loopback target is not verified (it is this
//! machine, and a self-signed certificate is the usual case there); any other is verified
//! against the public roots and the configured or generated certificate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

use crate::config::{Config, TlsSource};

/// How long the probe waits in all (Docker's default timeout is 30 s).
const TIMEOUT: Duration = Duration::from_secs(5);

/// The URL that will be probed, and the address to send it to (`None`: resolve its host).
pub fn target(config: &Config) -> (Url, Option<SocketAddr>) {
    let path = match &config.gateway {
        Some(g) => format!("{}/health", g.auth_prefix),
        None => format!("{}/health", crate::config::CENTRAL_PREFIX),
    };
    let ip = match config.listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, config.listen.port());
    let mut url = config.public_url.clone();
    url.set_path(&path);
    // The port in the URL is only what the Host header says; the connection goes to `addr`.
    let _ = url.set_port(Some(addr.port()));
    (url, Some(addr))
}

/// Probes `url` (or the configured target): `Ok` with a line to print when it answers 200.
pub async fn probe(config: Option<&Config>, url: Option<&str>) -> Result<String, String> {
    let (url, addr) = match (url, config) {
        (Some(u), _) => (Url::parse(u).map_err(|e| format!("--url {u}: {e}"))?, None),
        (None, Some(c)) => target(c),
        (None, None) => return Err("give --url, or a config to read the address from".into()),
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url} has no host"))?
        .to_owned();
    let loopback = addr.map_or_else(
        || crate::config::is_loopback(&url),
        |a| a.ip().is_loopback(),
    );
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(loopback);
    if let Some(addr) = addr {
        builder = builder.resolve(&host, addr);
    }
    if let Some(config) = config.filter(|_| !loopback) {
        for cert in own_certificates(config) {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().map_err(|e| format!("client: {e}"))?;
    let res = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("{url}: {}", crate::util::error_chain(&e)))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    let line = format!("{url}: {} {}", status.as_u16(), body.trim());
    if status == reqwest::StatusCode::OK {
        Ok(line)
    } else {
        Err(line)
    }
}

/// The certificates this process serves, to trust when probing it by a non-loopback address.
fn own_certificates(config: &Config) -> Vec<reqwest::Certificate> {
    let path = match &config.tls.source {
        TlsSource::Files { cert, .. } => cert.clone(),
        TlsSource::SelfSigned => {
            let host = config.public_url.host_str().unwrap_or("localhost");
            crate::tls::self_signed_files(&config.data_dir, host).cert
        }
        TlsSource::Acme(_) => {
            let host = config.public_url.host_str().unwrap_or("localhost");
            crate::tls::store::cert_files(&config.data_dir, host).cert
        }
    };
    std::fs::read(path)
        .ok()
        .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, body: &str) -> Config {
        let text = format!(
            "listen: \"{listen}\"\npublic_url: https://gw.example\ntls: {{self_signed: true}}\n{body}"
        );
        Config::parse(&text, &|_| None).unwrap()
    }

    #[test]
    fn the_probe_asks_the_listener_by_loopback_with_the_public_host() {
        let gw = config(
            "0.0.0.0:8443",
            "gateway:\n  auth_prefix: /auth\n  routes:\n    - {prefix: /, upstream: \"http://a\"}\n",
        );
        let (url, addr) = target(&gw);
        assert_eq!(url.as_str(), "https://gw.example:8443/auth/health");
        assert_eq!(addr, Some("127.0.0.1:8443".parse().unwrap()));
        let central = config(
            "[::]:443",
            "central:\n  providers:\n    github: {client_id: a, client_secret: b}\n",
        );
        let (url, addr) = target(&central);
        assert_eq!(url.as_str(), "https://gw.example/oauth/health");
        assert_eq!(addr, Some("[::1]:443".parse().unwrap()));
    }
}
