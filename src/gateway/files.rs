//! `file://` upstreams: a folder of static files, served read-only (GET and HEAD).
//!
//! Meant for small sites such as the demo page; files are read whole. The path is the
//! normalised request path (no dot segments, no encoded separators), dot-files are hidden, and
//! the resolved file must stay inside the folder (no symlink escapes).

use std::path::Path;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::error::RequestError;
use crate::pages::{self, Body};
use crate::path::NormalPath;

/// Largest file served; bigger ones belong behind a real web server.
const MAX_FILE: u64 = 16 * 1024 * 1024;

pub async fn serve(
    root: &Path,
    method: &Method,
    path: &NormalPath,
) -> Result<Response<Body>, RequestError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(RequestError::MethodNotAllowed);
    }
    if path.segments().any(|s| s.starts_with('.')) {
        return Err(RequestError::NotFound);
    }
    let mut file = root.to_path_buf();
    file.extend(path.segments());
    let root = tokio::fs::canonicalize(root)
        .await
        .map_err(|_| RequestError::NotFound)?;
    let mut file = tokio::fs::canonicalize(&file)
        .await
        .map_err(|_| RequestError::NotFound)?;
    if !file.starts_with(&root) {
        return Err(RequestError::NotFound);
    }
    if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    let meta = tokio::fs::metadata(&file)
        .await
        .map_err(|_| RequestError::NotFound)?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(RequestError::NotFound);
    }
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        tokio::fs::read(&file)
            .await
            .map_err(|_| RequestError::NotFound)?
    };
    let mut res = pages::response(StatusCode::OK, content_type(&file), body);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if method == Method::HEAD {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    }
    Ok(res)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
