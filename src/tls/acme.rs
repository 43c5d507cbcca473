//! ACME (RFC 8555) with `instant-acme`: one account per directory and one certificate per
//! host, each host in a task of its own that sleeps until two thirds of its certificate's
//! life, orders, and retries a failure with capped exponential backoff. Nothing here blocks
//! start-up or the listener: hosts without a certificate are served the temporary one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::sni::SniResolver;
use super::store;
use crate::config::{AcmeSettings, Challenge, Config};
use crate::error::StartError;
use crate::metrics::Metrics;

/// The first retry of a failed order; each next one waits twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Let's Encrypt allows 5 failed validations per host and hour: past a few failures, one try an
/// hour stays well inside that, and a fixed CA is noticed within the hour.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// One order, validation and download included, ends by then (the client has no timeouts of
/// its own): a CA that hangs is retried like one that refuses.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// The hosts that need a certificate: `public_url`'s, then each exact route host (never
/// empty with ACME: the config refuses that).
pub fn hosts(config: &Config) -> Vec<String> {
    config.hosts()
}

/// Obtains and renews the certificates of `resolver`'s hosts.
pub struct Acme {
    settings: AcmeSettings,
    data_dir: PathBuf,
    resolver: Arc<SniResolver>,
    metrics: Option<Arc<Metrics>>,
    /// Built at start-up, so that a bad `tls.acme.ca` stops the start, not the first order.
    http: AcmeHttp,
    account: Mutex<Option<Account>>,
    /// Each host and when its first order is due (now, or its stored certificate's renewal).
    due: Vec<(String, SystemTime)>,
}

impl Acme {
    /// Loads the stored certificates into `resolver` and checks `tls.acme.ca`; no network, so
    /// that a restart serves the stored certificates from its first handshake on.
    pub fn new(
        settings: &AcmeSettings,
        data_dir: PathBuf,
        resolver: Arc<SniResolver>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, StartError> {
        let http = client(settings)?;
        let mut due = Vec::new();
        for host in resolver.hosts() {
            match store::load(&data_dir, host) {
                Ok(Some(stored)) => {
                    resolver.install(host, Arc::new(stored.key));
                    due.push((host.clone(), stored.renew_at));
                    info!(host, "serving the stored ACME certificate");
                }
                Ok(None) => due.push((host.clone(), SystemTime::now())),
                Err(e) => {
                    warn!(host, error = %crate::util::error_chain(&e), "stored ACME certificate does not load; ordering a new one");
                    due.push((host.clone(), SystemTime::now()));
                }
            }
        }
        Ok(Acme {
            due,
            settings: settings.clone(),
            data_dir,
            resolver,
            metrics,
            http,
            account: Mutex::new(None),
        })
    }

    /// Runs until aborted: one task per host, ended with this one.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (host, due) in self.due.clone() {
            tasks.spawn(self.clone().keep(host, due));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Keeps `host`'s certificate current: orders at `due`, then whenever it is due again.
    async fn keep(self: Arc<Self>, host: String, mut due: SystemTime) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if let Ok(wait) = due.duration_since(SystemTime::now()) {
                tokio::time::sleep(wait).await;
            }
            info!(host, directory = %self.settings.directory, "ACME order started");
            let result = tokio::time::timeout(ORDER_TIMEOUT, self.obtain(&host)).await;
            let result = result.unwrap_or_else(|_| Err(AcmeError::new("the order timed out")));
            if let Some(m) = &self.metrics {
                m.acme_order(result.is_ok());
            }
            match result {
                Ok((renew_at, life)) => {
                    info!(host, "ACME certificate obtained");
                    backoff = FIRST_BACKOFF;
                    // Never sooner than a tenth of the life (and a second): a CA whose
                    // validity is already two thirds gone on arrival (a skewed clock) is not
                    // asked in a loop.
                    let spacing = (life / 10).max(Duration::from_secs(1));
                    due = renew_at.max(SystemTime::now() + spacing);
                }
                Err(e) => {
                    warn!(host, error = %e, retry_in = ?backoff, "ACME order failed");
                    due = SystemTime::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One order for `host`, stored and served once issued; its renewal time and life.
    async fn obtain(&self, host: &str) -> Result<(SystemTime, Duration), AcmeError> {
        let account = self.account().await?;
        let (chain, key) = match self.order(&account, host).await {
            Ok(done) => done,
            Err(e) => {
                // The CA forgot the account (a test CA restarted, an account deactivated):
                // the next try registers a new one.
                if e.0.contains("accountDoesNotExist") {
                    *self.account.lock().await = None;
                    let _ = std::fs::remove_file(self.account_path());
                }
                return Err(e);
            }
        };
        store::save(&self.data_dir, host, &chain, &key).map_err(AcmeError::from_start)?;
        let stored = store::load(&self.data_dir, host)
            .map_err(AcmeError::from_start)?
            .ok_or_else(|| AcmeError::new("the stored certificate vanished"))?;
        self.resolver.install(host, Arc::new(stored.key));
        Ok((stored.renew_at, stored.life))
    }

    fn account_path(&self) -> PathBuf {
        store::account_path(&self.data_dir, &self.settings.directory)
    }

    /// The account: cached, else loaded from `data_dir`, else registered and stored.
    async fn account(&self) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        let builder = || Account::builder_with_http(Box::new(self.http.clone()));
        let path = self.account_path();
        let stored = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok());
        let account = match stored {
            Some(credentials) => builder().from_credentials(credentials).await?,
            None => {
                let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let directory = self.settings.directory.to_string();
                let (account, credentials) = builder().create(&new, directory, None).await?;
                let json = serde_json::to_vec(&credentials)
                    .map_err(|e| AcmeError::new(&format!("account credentials: {e}")))?;
                crate::fsutil::write_private(&path, &json).map_err(AcmeError::from_start)?;
                info!(path = %path.display(), "ACME account registered");
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// Orders, answers the challenges, finalizes with a key of ours: (chain PEM, key PEM).
    async fn order(&self, account: &Account, host: &str) -> Result<(String, String), AcmeError> {
        let ids = [Identifier::Dns(host.to_owned())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut answered = Answered {
            resolver: &self.resolver,
            tokens: Vec::new(),
            alpn: None,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(AcmeError::new(&format!("authorization is {other:?}"))),
            }
            let kind = match self.settings.challenge {
                Challenge::Http01 => ChallengeType::Http01,
                Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            };
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| AcmeError::new(&format!("the CA offers no {kind:?} challenge")))?;
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                Challenge::Http01 => {
                    let token = challenge.token.clone();
                    self.resolver
                        .challenges
                        .add_http(&token, key_authorization.as_str());
                    answered.tokens.push(token);
                }
                Challenge::TlsAlpn01 => {
                    self.resolver
                        .challenges
                        .add_alpn(host, key_authorization.digest().as_ref())
                        .map_err(AcmeError::from_start)?;
                    answered.alpn = Some(host.to_owned());
                }
            }
            challenge.set_ready().await?;
        }
        let patience = RetryPolicy::new().timeout(Duration::from_secs(90));
        let status = order.poll_ready(&patience).await?;
        drop(answered);
        if status != OrderStatus::Ready {
            return Err(AcmeError::new(&format!("order is {status:?}")));
        }
        let err = |e: rcgen::Error| AcmeError::new(&format!("certificate request: {e}"));
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(err)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let csr = params.serialize_request(&key).map_err(err)?;
        order.finalize_csr(csr.der()).await?;
        let chain = order.poll_certificate(&patience).await?;
        Ok((chain, key.serialize_pem()))
    }
}

/// The challenge answers of one order, withdrawn when it ends however it ends.
struct Answered<'a> {
    resolver: &'a SniResolver,
    tokens: Vec<String>,
    alpn: Option<String>,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.resolver.challenges.remove_http(token);
        }
        if let Some(host) = &self.alpn {
            self.resolver.challenges.remove_alpn(host);
        }
    }
}

/// The HTTPS client for the ACME server: hyper-util's pooled client over hyper-rustls, with
/// our crypto provider. Ours rather than instant-acme's own, which would bring a second TLS
/// verifier stack (the platform verifier) and the process-wide default provider.
#[derive(Clone)]
struct AcmeHttp(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        instant_acme::BodyWrapper<bytes::Bytes>,
    >,
);

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<instant_acme::BodyWrapper<bytes::Bytes>>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<instant_acme::BytesResponse, instant_acme::Error>,
                > + Send,
        >,
    > {
        let sent = self.0.request(req);
        Box::pin(async move {
            let res = sent
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(instant_acme::BytesResponse::from(res))
        })
    }
}

/// The client with either the public roots or only `tls.acme.ca`.
fn client(settings: &AcmeSettings) -> Result<AcmeHttp, StartError> {
    let mut roots = RootCertStore::empty();
    match &settings.ca {
        Some(path) => {
            let what = || format!("tls.acme.ca: {}", path.display());
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StartError::tls(what(), e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StartError::Tls {
                    what: format!("{}: no usable CERTIFICATE block", what()),
                    source: None,
                });
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::tls("ACME client protocol versions", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(AcmeHttp(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    ))
}

/// Why an order failed, in words fit for a log line (never a key or a token).
#[derive(Debug)]
struct AcmeError(String);

impl AcmeError {
    fn new(what: &str) -> Self {
        AcmeError(what.to_owned())
    }

    fn from_start(e: StartError) -> Self {
        AcmeError(crate::util::error_chain(&e))
    }
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        AcmeError(crate::util::error_chain(&e))
    }
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
