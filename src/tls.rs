//! TLS for the listener: rustls (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`), certificates from
//! PEM files that are reloaded when they change, or a self-signed one generated into `data_dir`;
//! with `tls.acme`, one certificate per host by SNI (`sni`), obtained by `acme` into `store`.

pub mod acme;
pub mod sni;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::config::{TlsSettings, TlsSource};
use crate::error::StartError;

/// The one crypto provider of the process (ring), passed explicitly rather than installed
/// as a process-wide default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the certificate comes from, resolved to files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files `settings` name, or the self-signed pair for `host` (generated on first use);
/// `None` with ACME, whose certificates are per host (`store`).
pub fn cert_files(
    settings: &TlsSettings,
    data_dir: &Path,
    host: &str,
) -> Result<Option<CertFiles>, StartError> {
    match &settings.source {
        TlsSource::Files { cert, key } => Ok(Some(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        TlsSource::SelfSigned => self_signed(data_dir, host).map(Some),
        TlsSource::Acme(_) => Ok(None),
    }
}

/// The resolver that serves one certificate from files.
pub fn file_resolver(files: CertFiles) -> Result<Arc<ReloadingResolver>, StartError> {
    Ok(Arc::new(ReloadingResolver::load(files, &provider())?))
}

/// Builds the server config around `resolver`. ALPN `acme-tls/1` is offered only with
/// TLS-ALPN-01 (RFC 8737 §3), last, so that no browser ever picks it.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    acme_alpn: bool,
) -> Result<Arc<ServerConfig>, StartError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StartError::tls("server protocol versions", e))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(sni::ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(config))
}

/// Serves the current certificate; [`ReloadingResolver::watch`] swaps in changed files, and a
/// config reload that names other files [`ReloadingResolver::switch`]es to them.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    files: CertFiles,
    /// The files' modification times when they were loaded.
    loaded: Option<(SystemTime, SystemTime)>,
}

impl ReloadingResolver {
    fn load(files: CertFiles, provider: &CryptoProvider) -> Result<Self, StartError> {
        Ok(ReloadingResolver {
            current: RwLock::new(Current {
                key: Arc::new(load_certified_key(&files, provider)?),
                loaded: modified(&files),
                files,
            }),
        })
    }

    /// Checks the files every `interval` and reloads them when their times change. A broken
    /// new file is logged and the old certificate kept. Runs until the task is aborted.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let provider = provider();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some((files, loaded)) = self
                .current
                .read()
                .ok()
                .map(|c| (c.files.clone(), c.loaded))
            else {
                continue;
            };
            let now = modified(&files);
            if loaded == now {
                continue;
            }
            match load_certified_key(&files, &provider) {
                Ok(key) => {
                    if let Ok(mut cur) = self.current.write() {
                        // A switch to other files in between wins.
                        if cur.files == files {
                            *cur = Current {
                                key: Arc::new(key),
                                files,
                                loaded: now,
                            };
                            info!(cert = %cur.files.cert.display(), "TLS certificate reloaded");
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %crate::util::error_chain(&e), "TLS certificate changed but cannot be loaded; keeping the old one")
                }
            }
        }
    }

    /// Serves `files` from now on (a config reload named other ones); `false` when they are
    /// the ones served already. An error leaves the current certificate in place.
    pub fn switch(&self, files: &CertFiles) -> Result<bool, StartError> {
        if self
            .current
            .read()
            .map(|c| c.files == *files)
            .unwrap_or(false)
        {
            return Ok(false);
        }
        let key = load_certified_key(files, &provider())?;
        if let Ok(mut cur) = self.current.write() {
            *cur = Current {
                key: Arc::new(key),
                files: files.clone(),
                loaded: modified(files),
            };
        }
        info!(cert = %files.cert.display(), "TLS certificate files switched by a config reload");
        Ok(true)
    }

    /// The served certificate's file and its end-entity certificate (DER).
    pub fn served(&self) -> Option<(PathBuf, CertificateDer<'static>)> {
        let cur = self.current.read().ok()?;
        let leaf = cur.key.cert.first()?.clone();
        Some((cur.files.cert.clone(), leaf))
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c.key))
    }
}

fn modified(files: &CertFiles) -> Option<(SystemTime, SystemTime)> {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((time(&files.cert)?, time(&files.key)?))
}

pub(crate) fn load_certified_key(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, StartError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError::tls(format!("certificate {}", files.cert.display()), e))?;
    if certs.is_empty() {
        return Err(StartError::Tls {
            what: format!(
                "certificate {}: no CERTIFICATE block found",
                files.cert.display()
            ),
            source: None,
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| StartError::tls(format!("private key {}", files.key.display()), e))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| {
        StartError::tls(
            format!(
                "{} and {} do not make a usable pair",
                files.cert.display(),
                files.key.display()
            ),
            e,
        )
    })
}

/// Whether `cert` and `key` load as `serve` would load them (for `oauthgate check`).
pub fn check_files(cert: &Path, key: &Path) -> Result<(), StartError> {
    let files = CertFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    load_certified_key(&files, &provider()).map(|_| ())
}

/// Returns the self-signed certificate for `host` in `data_dir/tls`, generating it on first use.
fn self_signed(data_dir: &Path, host: &str) -> Result<CertFiles, StartError> {
    let files = self_signed_files(data_dir, host);
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let mut names = vec![
        host.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.dedup();
    let (cert, key) = generate(host, names)
        .map_err(|e| StartError::tls("cannot generate a self-signed certificate", e))?;
    crate::fsutil::write_private(&files.key, key.as_bytes())?;
    crate::fsutil::write_private(&files.cert, cert.as_bytes())?;
    info!(cert = %files.cert.display(), host, "generated a self-signed TLS certificate");
    Ok(files)
}

/// Where the self-signed certificate for `host` lives (`data_dir/tls/<host>.crt` and `.key`).
pub fn self_signed_files(data_dir: &Path, host: &str) -> CertFiles {
    let dir = data_dir.join("tls");
    let safe = safe_name(host);
    CertFiles {
        cert: dir.join(format!("{safe}.crt")),
        key: dir.join(format!("{safe}.key")),
    }
}

/// `host` as a file name: anything but letters, digits, `.` and `-` becomes `_`.
pub(crate) fn safe_name(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A self-signed certificate for `names` (PEM certificate, PEM key). The subject is the host
/// name and the certificate carries subject and authority key identifiers: OpenSSL picks the
/// issuer out of a trust bundle by subject and key identifier, so two certificates that all
/// say `CN = rcgen self signed cert` and carry no identifier confuse it ("certificate
/// signature failure") once both are in one bundle.
pub(crate) fn generate(host: &str, names: Vec<String>) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    // `ExplicitNoCa` writes the subject key identifier (and `CA:FALSE`).
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    /// Two generated certificates in one bundle each verify with `openssl verify`, with the
    /// host as CN and both key identifiers (skipped where there is no openssl binary).
    #[test]
    fn generated_certificates_share_a_bundle_under_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let mut bundle = String::new();
        let mut files = Vec::new();
        for host in ["a.example", "b.example"] {
            let (cert, _) = super::generate(host, vec![host.to_owned()]).unwrap();
            let path = dir.path().join(format!("{host}.crt"));
            std::fs::write(&path, &cert).unwrap();
            bundle.push_str(&cert);
            files.push((host, path));
        }
        let bundle_path = dir.path().join("bundle.pem");
        std::fs::write(&bundle_path, bundle).unwrap();
        let Ok(out) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            eprintln!("no openssl: skipped");
            return;
        };
        assert!(out.status.success());
        for (host, path) in files {
            let out = std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&bundle_path)
                .arg(&path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{host}: {text}");
            let out = std::process::Command::new("openssl")
                .args([
                    "x509",
                    "-noout",
                    "-subject",
                    "-ext",
                    "subjectKeyIdentifier,authorityKeyIdentifier",
                    "-in",
                ])
                .arg(&path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("CN = {host}")) || text.contains(&format!("CN={host}")),
                "{text}"
            );
            assert!(text.contains("Subject Key Identifier"), "{text}");
            assert!(text.contains("Authority Key Identifier"), "{text}");
        }
    }
}
