//! One entry of `gateway.routes`: its host, prefix, upstream and policy, checked, with
//! `strip_prefix` and `upstream_tls`.

use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};

use super::super::raw::{RawPreserveHost, RawRoute, RawUpstreamTls};
use super::super::ConfigError;
use super::values::{prefix, target};
use super::{host, Allow, Login, LoginSource, Route, Target};

/// `upstream_tls`: how an `https://` upstream is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `ca`: the only roots its certificate may chain to (else the public roots).
    pub ca: Vec<CertificateDer<'static>>,
    /// `server_name`: the name sent as SNI and checked in its certificate (else the
    /// upstream's host).
    pub server_name: Option<ServerName<'static>>,
    /// Tells pools apart: the roots' SHA-256 and the name. Two routes to one origin with
    /// other TLS settings get two pools, and a reload that changes the CA file a new one.
    pub key: String,
}

/// `gateway.routes`: each route checked, none shadowing the gateway's own prefix or
/// repeating another's.
pub(super) fn routes(
    raw: Vec<RawRoute>,
    login: Option<&LoginSource>,
    auth_prefix: &str,
    default_case: bool,
) -> Result<Vec<Route>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::at(
            "gateway.routes",
            "needs at least one route",
        ));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("gateway.routes[{i}].{key}");
        let route = route(r, &at, login, default_case)?;
        if crate::path::under(&route.prefix, auth_prefix) {
            return Err(ConfigError::at(
                &at("prefix"),
                format!(
                    "`{}` would shadow the gateway's own {auth_prefix}",
                    route.prefix
                ),
            ));
        }
        if let Some(j) = routes
            .iter()
            .position(|o| o.prefix == route.prefix && o.host == route.host)
        {
            let on = route
                .host
                .as_ref()
                .map(|h| format!(" on {h}"))
                .unwrap_or_default();
            return Err(ConfigError::at(
                &at("prefix"),
                format!(
                    "`{}`{on} is already used by gateway.routes[{j}]",
                    route.prefix
                ),
            ));
        }
        routes.push(route);
    }
    Ok(routes)
}

fn route(
    raw: RawRoute,
    at: &dyn Fn(&str) -> String,
    login: Option<&LoginSource>,
    case_insensitive: bool,
) -> Result<Route, ConfigError> {
    let host = raw
        .host
        .as_deref()
        .map(|h| host::route_host(h, &at("host")))
        .transpose()?;
    let prefix = prefix(&raw.prefix).map_err(|m| ConfigError::at(&at("prefix"), m))?;
    // Fail closed: where logins (or bearer tokens) are possible, a route without `login:`
    // requires one. A `bearer: true` route needs no login source: tokens alone may pass it.
    let bearer_only = raw.bearer == Some(true) && login.is_none();
    let mode = raw.login.unwrap_or(if login.is_some() || bearer_only {
        Login::Required
    } else {
        Login::None
    });
    if mode != Login::None && login.is_none() && !bearer_only {
        return Err(ConfigError::at(
            &at("login"),
            "needs gateway.oauth_proxy (or a central: section) to log people in",
        ));
    }
    let allow = match raw.allow {
        None => Allow::default(),
        Some(a) => super::super::policy::allow(a, at, login)?,
    };
    if mode != Login::Required && allow.names_anyone() {
        return Err(ConfigError::at(
            &at("allow"),
            "only networks apply to routes without login: required",
        ));
    }
    if raw.bearer == Some(true) && mode == Login::None {
        return Err(ConfigError::at(
            &at("bearer"),
            "needs login: required or optional (a login: none route forwards no identity)",
        ));
    }
    let access = super::super::policy::RouteAccess {
        methods: super::super::policy::methods(raw.methods, at)?,
        cors_preflight: super::super::policy::cors_preflight(raw.cors_preflight, at)?,
        bearer: raw.bearer.unwrap_or(false),
        audience: None,
    };
    let target = target(&raw.upstream).map_err(|m| ConfigError::at(&at("upstream"), m))?;
    let access = super::super::policy::RouteAccess {
        audience: match &target {
            Target::Http { scheme, authority } => Some(format!("{scheme}://{authority}").into()),
            Target::Files(_) => None,
        },
        ..access
    };
    let (preserve_host, any_host) = match raw.preserve_host {
        None => (true, false),
        Some(RawPreserveHost::Flag(keep)) => (keep, false),
        Some(RawPreserveHost::Word(w)) if w == "any" => (true, true),
        Some(RawPreserveHost::Word(w)) => {
            return Err(ConfigError::at(
                &at("preserve_host"),
                format!("`{w}` is not one of true, false, any"),
            ))
        }
    };
    let strip_prefix = raw.strip_prefix.unwrap_or(false);
    if strip_prefix && matches!(target, Target::Files(_)) {
        return Err(ConfigError::at(
            &at("strip_prefix"),
            "applies to http(s) upstreams only (a folder is looked up by the request path)",
        ));
    }
    let upstream_tls = raw
        .upstream_tls
        .map(|t| upstream_tls(t, &target, at))
        .transpose()?;
    Ok(Route {
        host,
        strip_prefix,
        upstream_tls,
        prefix,
        target,
        login: mode,
        allow,
        preserve_host,
        any_host,
        case_insensitive: raw.case_insensitive.unwrap_or(case_insensitive),
        access,
    })
}

/// `gateway.routes[i].upstream_tls`: the CA bundle read and checked now, so a missing or
/// empty file stops the config rather than every request.
fn upstream_tls(
    raw: RawUpstreamTls,
    target: &Target,
    at: &dyn Fn(&str) -> String,
) -> Result<UpstreamTls, ConfigError> {
    if !matches!(target, Target::Http { scheme, .. } if *scheme == http::uri::Scheme::HTTPS) {
        return Err(ConfigError::at(
            &at("upstream_tls"),
            "needs an https:// upstream",
        ));
    }
    let ca = match &raw.ca {
        None => Vec::new(),
        Some(path) => ca_bundle(path).map_err(|m| ConfigError::at(&at("upstream_tls.ca"), m))?,
    };
    let server_name = raw
        .server_name
        .as_deref()
        .map(|name| {
            ServerName::try_from(name.to_owned()).map_err(|_| {
                ConfigError::at(
                    &at("upstream_tls.server_name"),
                    format!("`{name}` is not a DNS name or IP address"),
                )
            })
        })
        .transpose()?;
    let mut sha = Sha256::new();
    for cert in &ca {
        sha.update(cert.as_ref());
    }
    let key = format!(
        "ca={:x} name={}",
        sha.finalize(),
        raw.server_name.as_deref().unwrap_or("")
    );
    Ok(UpstreamTls {
        ca,
        server_name,
        key,
    })
}

/// The certificates of a PEM file (one CA, a bundle, or the upstream's own self-signed one).
fn ca_bundle(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}
