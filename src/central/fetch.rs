//! Talking to providers over HTTP: one client that never follows redirects, and every answer
//! (token response, user info, emails, discovery, keys) read incrementally and abandoned as
//! soon as it passes [`MAX_DOCUMENT`], so a provider cannot make the central's memory grow
//! with the size of what it sends.

use std::time::Duration;

use super::providers::ProviderError;

/// The largest document read from a provider.
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// Why a request to a provider produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the request failed")]
    Network(#[from] reqwest::Error),
    #[error("{url} answered more than {MAX_DOCUMENT} bytes")]
    TooLarge { url: String },
    #[error("the answer is not a valid HTTP response")]
    Build(#[from] http::Error),
}

impl From<FetchError> for ProviderError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Network(e) => ProviderError::Unreachable(e),
            FetchError::TooLarge { .. } => ProviderError::BadAnswer(e.to_string()),
            FetchError::Build(e) => ProviderError::unreadable("the token response", e),
        }
    }
}

/// The body of `res`, read chunk by chunk and refused as soon as it passes the cap (a
/// declared `Content-Length` over the cap is refused before reading anything).
pub async fn read_capped(mut res: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let url = res.url().to_string();
    let too_large = || FetchError::TooLarge { url: url.clone() };
    if res
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs a JSON document (with a bearer token when given), bounded in size; non-2xx is an error.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<T, ProviderError> {
    get_json_page(http, url, bearer).await.map(|(doc, _)| doc)
}

/// Like [`get_json`], with the `rel="next"` target of the answer's `Link` header (RFC 8288),
/// as GitHub paginates lists.
pub async fn get_json_page<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<(T, Option<String>), ProviderError> {
    let mut request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let res = request.send().await?;
    let status = res.status();
    if !status.is_success() {
        return Err(ProviderError::BadAnswer(format!("{url} answered {status}")));
    }
    let next = res
        .headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_link);
    let body = read_capped(res).await?;
    let doc = serde_json::from_slice(&body)
        .map_err(|e| ProviderError::unreadable(format!("{url} did not answer JSON"), e))?;
    Ok((doc, next))
}

/// The target of the `rel="next"` link in one `Link` value: `<url>; rel="next", <…>; …`.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("rel="))
            .any(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
            .then(|| target.to_owned())
    })
}

/// Sends one request the `oauth2` crate built (the code exchange) and reads its answer under
/// the same cap: the crate's own reqwest adapter would read any size. Takes the client by
/// value (a cheap handle) so the future owns everything it uses.
pub async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, FetchError> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let res = http
        .request(parts.method, &url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut answer = http::Response::builder().status(res.status());
    for (name, value) in res.headers() {
        answer = answer.header(name, value);
    }
    let body = read_capped(res).await?;
    Ok(answer.body(body)?)
}

/// The HTTP client for providers: never follows redirects, bounded in time.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("oauthgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_link_of_a_github_link_header() {
        let v = r#"<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last""#;
        assert_eq!(
            next_link(v).as_deref(),
            Some("https://api.github.com/user/orgs?page=2")
        );
        let last = r#"<https://api.github.com/user/orgs?page=1>; rel="prev""#;
        assert_eq!(next_link(last), None);
        assert_eq!(next_link("garbage"), None);
    }
}
