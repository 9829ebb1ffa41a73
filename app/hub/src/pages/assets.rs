//! The page's static files, embedded in the binary in two forms: as written and gzipped at
//! build time (`build.rs`, best compression). Each is served at `/assets/<stem>-<hash>.<ext>`,
//! the hash being the first 8 hex digits of the SHA-256 of its content, so the URL changes
//! with the content and the answer is cacheable forever (`immutable`). The gzip form is sent
//! when the request's `Accept-Encoding` allows it, the plain form otherwise.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The name in `assets/` (`app.css`).
    pub name: &'static str,
    /// The content-hashed name it is served under (`app-1a2b3c4d.css`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The URL of asset `name` (`/assets/app-1a2b3c4d.css`); `/assets/<name>` for a name that
/// is not embedded (a programming error the page tests catch: it answers 404).
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/assets/{}", a.path),
        None => format!("/assets/{name}"),
    }
}

/// The asset served as `path` (its hashed name).
pub fn by_path(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Whether an `Accept-Encoding` value allows gzip: `gzip` or `*` listed without `q=0`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut gzip = None;
    let mut star = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// `GET /assets/{file}`.
pub async fn get(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = by_path(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let mut resp = if gzip {
        let mut r = asset.gzip.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.raw.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn every_asset_gunzips_to_its_source_and_is_named_by_its_hash() {
        assert_eq!(ASSETS.len(), 3);
        for a in ASSETS {
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(a.gzip)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, a.raw, "{}", a.name);
            assert!(a.gzip.len() < a.raw.len(), "{} compresses", a.name);
            let hash: String = Sha256::digest(a.raw)[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let (stem, ext) = a.name.rsplit_once('.').unwrap();
            assert_eq!(a.path, format!("{stem}-{hash}.{ext}"));
            assert_eq!(by_path(a.path).unwrap().name, a.name);
            assert_eq!(url(a.name), format!("/assets/{}", a.path));
        }
        assert!(by_path("app.css").is_none(), "only hashed names are served");
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("*, gzip;q=0"));
        assert!(!accepts_gzip(""));
    }
}
