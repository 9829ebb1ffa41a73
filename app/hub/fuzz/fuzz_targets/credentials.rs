//! Any bytes as the credentials a stranger sends: a `Cookie` header, an `Authorization`
//! header (the scheme and the Basic decoding, without the store or Argon2), and a typed setup
//! code. Invariants, beyond not panicking:
//! - `session_cookie` answers a value only when the header has `wp_session=<that value>`, and
//!   answers one whenever a cookie of the header is `wp_session`;
//! - `Scheme::of` answers Bearer/Basic only for those prefixes, with the trimmed rest;
//!   `basic_credentials` decodes only canonical base64 of `user:password` (re-encoding the
//!   answer gives the input back) and the user has no colon;
//! - `code_matches` ignores case, spaces and dashes, is symmetric and reflexive.
#![no_main]

use base64::Engine;
use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use watchpost_hub::auth::claim::code_matches;
use watchpost_hub::auth::guard::session_cookie;
use watchpost_hub::auth::{SESSION_COOKIE, Scheme, basic_credentials};

fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // The Cookie header (a browser may send several).
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, v.clone());
        let got = session_cookie(&headers);
        let text = v.to_str().ok();
        if let Some(value) = &got {
            let t = text.expect("a cookie was read from a header that is not text");
            assert!(t.contains(&format!("{SESSION_COOKIE}={value}")), "{t:?} -> {value:?}");
        }
        if let Some(t) = text {
            let named = t
                .split(';')
                .any(|kv| kv.trim().starts_with(&format!("{SESSION_COOKIE}=")));
            assert_eq!(got.is_some(), named, "{t:?}");
        }
        headers.append(COOKIE, HeaderValue::from_static("other=1; wp_session=abc"));
        let both = session_cookie(&headers);
        assert!(both.is_some(), "the second Cookie header was not read");
        if got.is_some() {
            assert_eq!(both, got, "the first Cookie header's session must win");
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The Authorization header.
    match Scheme::of(text) {
        Some(Scheme::Bearer(token)) => {
            assert!(text.starts_with("Bearer ") || text.starts_with("bearer "));
            assert_eq!(token, text[7..].trim());
        }
        Some(Scheme::Basic(encoded)) => {
            assert!(text.starts_with("Basic ") || text.starts_with("basic "));
            assert_eq!(encoded, text[6..].trim());
        }
        None => {
            for p in ["Bearer ", "bearer ", "Basic ", "basic "] {
                assert!(!text.starts_with(p));
            }
        }
    }
    if let Some((user, password)) = basic_credentials(text) {
        assert!(!user.contains(':'));
        let again = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        assert_eq!(again, text.trim(), "not canonical base64 was accepted");
    }

    // The setup code as typed.
    assert!(code_matches(text, text));
    let code = "ABCD-EFGH";
    assert_eq!(code_matches(code, text), norm(text) == "ABCDEFGH", "{text:?}");
    if let Some((a, b)) = text.split_once('\n') {
        assert_eq!(code_matches(a, b), code_matches(b, a));
        assert_eq!(code_matches(a, b), norm(a) == norm(b));
    }
});
