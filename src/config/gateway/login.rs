//! `gateway.oauth_proxy`: where this gateway logs people in (a remote central, named by its
//! URL and verify keys, or the central role of this same process), and which providers its
//! login page offers.

use ed25519_dalek::VerifyingKey;
use url::Url;

use super::super::central::CentralConfig;
use super::super::raw::{OneOrMany, RawOauthProxy};
use super::super::ConfigError;
use super::LoginSource;

/// Where this gateway logs people in: `oauth_proxy`, or the central role of this process.
pub(super) fn login_source(
    raw: Option<RawOauthProxy>,
    central: Option<&CentralConfig>,
) -> Result<Option<LoginSource>, ConfigError> {
    let raw = match (raw, &central) {
        (Some(raw), _) => raw,
        (None, Some(_)) => RawOauthProxy {
            url: None,
            verify_key: None,
            providers: None,
        },
        (None, None) => return Ok(None),
    };
    let verify_keys = verify_keys(raw.verify_key)?;
    match (raw.url, central) {
        (Some(url), _) => {
            let parsed = Url::parse(&url).map_err(|e| {
                ConfigError::at(
                    "gateway.oauth_proxy.url",
                    format!("`{url}` is not a URL: {e}"),
                )
            })?;
            if parsed.scheme() != "https" && !super::super::central::is_loopback(&parsed) {
                return Err(ConfigError::at(
                    "gateway.oauth_proxy.url",
                    format!("`{url}` must be https"),
                ));
            }
            if verify_keys.is_empty() {
                return Err(ConfigError::at(
                    "gateway.oauth_proxy.verify_key",
                    format!("is required with a remote url (get it from {url}/key)"),
                ));
            }
            let providers = raw.providers.unwrap_or_default();
            if providers.is_empty() {
                return Err(ConfigError::at(
                    "gateway.oauth_proxy.providers",
                    "name at least one provider of the central server",
                ));
            }
            Ok(Some(LoginSource {
                url: url.trim_end_matches('/').to_owned(),
                verify_keys,
                display_names: providers
                    .iter()
                    .map(|p| super::super::provider_display_name(p))
                    .collect(),
                providers,
            }))
        }
        (None, Some(central)) => {
            let known: Vec<String> = central.providers.iter().map(|p| p.name.clone()).collect();
            let providers = raw.providers.unwrap_or_else(|| known.clone());
            if let Some((i, p)) = providers
                .iter()
                .enumerate()
                .find(|(_, p)| !known.contains(p))
            {
                return Err(ConfigError::at(
                    &format!("gateway.oauth_proxy.providers[{i}]"),
                    format!(
                        "`{p}` is not a provider of central.providers ({})",
                        known.join(", ")
                    ),
                ));
            }
            Ok(Some(LoginSource {
                url: central.issuer.clone(),
                verify_keys,
                display_names: providers
                    .iter()
                    .map(|p| {
                        central
                            .providers
                            .iter()
                            .find(|c| c.name == *p)
                            .map_or_else(|| p.clone(), |c| c.display_name.clone())
                    })
                    .collect(),
                providers,
            }))
        }
        (None, None) => Err(ConfigError::at(
            "gateway.oauth_proxy.url",
            "is required when this process has no central: section",
        )),
    }
}

/// `gateway.oauth_proxy.verify_key`: one key or a list (a rotation), each as served at
/// `<url>/key`.
fn verify_keys(raw: Option<OneOrMany>) -> Result<Vec<VerifyingKey>, ConfigError> {
    let keys: Vec<String> = match raw {
        None => Vec::new(),
        Some(OneOrMany::One(k)) => vec![k],
        Some(OneOrMany::Many(ks)) => ks,
    };
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            crate::assertion::parse_verify_key(k).ok_or_else(|| {
                ConfigError::at(
                    &format!(
                        "gateway.oauth_proxy.verify_key{}",
                        if keys.len() > 1 {
                            format!("[{i}]")
                        } else {
                            String::new()
                        }
                    ),
                    "is not an Ed25519 verify key (64 hex digits, as served at <url>/key)",
                )
            })
        })
        .collect()
}
