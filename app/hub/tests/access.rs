//! The route table enforced: every route of the hub × no credentials and each role answers
//! exactly as its entry says; the first-boot claim, sessions with CSRF, login lockout, API
//! tokens and TOTP, through the real router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use watchpost_config::{Config, Role};
use watchpost_hub::HubState;
use watchpost_hub::auth::access::Access;
use watchpost_hub::auth::{Authenticator, totp};

fn config(dir: &std::path::Path, users: bool) -> Config {
    let mut text = format!(
        "[system]\ndata_dir = \"{}\"\n[hub]\nlisten = \"127.0.0.1:0\"\nhealth_timeout_ms = 50\n[auth]\napi_per_user_per_min = 0\napi_per_address_per_min = 0\n",
        dir.display()
    );
    if users {
        for (name, role) in [("ann", "admin"), ("olaf", "operator"), ("vera", "viewer")] {
            text.push_str(&format!(
                "[[auth.users]]\nname = \"{name}\"\npassword = \"{name}-password\"\nrole = \"{role}\"\n"
            ));
        }
    }
    watchpost_config::from_str_with_env(&text, std::path::Path::new("test.toml"), &[])
        .expect("test config")
}

fn state(dir: &std::path::Path, users: bool) -> HubState {
    let config = config(dir, users);
    let store = watchpost_store::Store::open(dir.join("hub.redb")).expect("test setup");
    let shutdown = CancellationToken::new();
    let auth =
        Authenticator::open(&config.auth, store.clone(), dir.to_path_buf()).expect("test setup");
    HubState {
        alarm: watchpost_alarm::AlarmHandle::new(&config.alarms),
        bus: watchpost_bus::Bus::connect(&config, "hub", shutdown.clone()),
        config: Arc::new(config),
        store,
        ctx: Arc::new(watchpost_runtime::WorkerCtx::standalone("hub", shutdown)),
        auth: Arc::new(auth),
        version: "test",
        neasmart: Default::default(),
        cameras: Default::default(),
        monitor: Default::default(),
        tls: None,
        update: std::sync::Arc::new(watchpost_hub::update::Updates::new(
            &Default::default(),
            dir,
            "0.1.0",
        )),
    }
}

fn basic(user: &str) -> String {
    let text = format!("{user}:{user}-password");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("test setup");
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .expect("an answer within 20 s")
        .expect("test setup");
    let status = resp.status();
    let headers = resp.headers().clone();
    // A stream (`/live`) never ends: only its head matters here.
    let streaming = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if streaming {
        Default::default()
    } else {
        tokio::time::timeout(
            Duration::from_secs(20),
            axum::body::to_bytes(resp.into_body(), 1 << 22),
        )
        .await
        .expect("a whole body within 20 s")
        .expect("test setup")
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET uri` with these headers.
async fn get_with(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Answer {
    call(app, Method::GET, uri, headers, None).await
}

/// `GET uri` with an `authorization` header.
async fn get_as(app: &Router, uri: &str, authorization: &str) -> Answer {
    get_with(app, uri, &[("authorization", authorization)]).await
}

/// `POST uri` with an `authorization` header and, when given, a JSON body.
async fn post_as(
    app: &Router,
    uri: &str,
    authorization: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    call(
        app,
        Method::POST,
        uri,
        &[("authorization", authorization)],
        body,
    )
    .await
}

/// `POST uri` with a JSON body and no credentials (the claim, logins).
async fn post_json(app: &Router, uri: &str, body: serde_json::Value) -> Answer {
    call(app, Method::POST, uri, &[], Some(body)).await
}

/// `POST /api/v1/auth/claim` with the setup code and the first admin.
async fn claim(app: &Router, setup_code: &str, user: &str, password: &str) -> Answer {
    let body = serde_json::json!({"setup_code": setup_code, "user": user, "password": password});
    post_json(app, "/api/v1/auth/claim", body).await
}

/// `POST /api/v1/auth/login` with a password and, when given, the TOTP or recovery code.
async fn login(app: &Router, user: &str, password: &str, code: Option<&str>) -> Answer {
    let mut body = serde_json::json!({"user": user, "password": password});
    if let Some(c) = code {
        body["code"] = c.into();
    }
    post_json(app, "/api/v1/auth/login", body).await
}

fn code(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_table_says() {
    let dir = tempfile::tempdir().expect("test setup");
    let app = watchpost_hub::router(state(dir.path(), true));
    let table = watchpost_hub::route_table();
    let entries = table.entries();
    assert!(entries.len() > 40, "only {} routes", entries.len());
    let callers: [(Option<&str>, Option<Role>); 4] = [
        (None, None),
        (Some("vera"), Some(Role::Viewer)),
        (Some("olaf"), Some(Role::Operator)),
        (Some("ann"), Some(Role::Admin)),
    ];
    let mut checked = 0;
    for (method, path, access) in &entries {
        // Path parameters get a value that names nothing, so no handler changes anything.
        let uri = regex_free_fill(path);
        // Ending the caller's session is harmless, but the admin's Basic login must stay.
        for (user, role) in callers {
            let auth = user.map(basic);
            let mut headers = vec![];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            let body = (*method != Method::GET).then(|| serde_json::json!({}));
            let a = call(&app, method.clone(), &uri, &headers, body).await;
            let api = path.starts_with("/api/v1/");
            let what = format!("{method} {path} as {user:?} ({})", access.as_str());
            match (access, role) {
                (Access::Public, _) => {
                    assert!(
                        !matches!(code(&a), "UNAUTHORIZED" | "FORBIDDEN"),
                        "{what}: {}",
                        a.status
                    );
                }
                (Access::Role(_), None) if api => {
                    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(code(&a), "UNAUTHORIZED", "{what}");
                }
                (Access::Role(_), None) => {
                    assert_eq!(a.status, StatusCode::SEE_OTHER, "{what}");
                    let loc = a.headers[header::LOCATION].to_str().expect("test setup");
                    assert!(loc.starts_with("/login?next="), "{what}: {loc}");
                }
                (Access::Role(needed), Some(r)) if !r.allows(*needed) => {
                    assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}");
                    if api {
                        assert_eq!(code(&a), "FORBIDDEN", "{what}");
                    }
                }
                (Access::Role(_), Some(_)) => {
                    assert!(
                        !matches!(a.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                            || !matches!(
                                code(&a),
                                "UNAUTHORIZED" | "FORBIDDEN" | "ROUTE_NOT_IN_TABLE" | "CSRF"
                            ),
                        "{what}: {} {}",
                        a.status,
                        a.body
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, entries.len() * 4);
}

/// `{param}` → `none-such`.
fn regex_free_fill(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                out.push_str("none-such");
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn a_route_missing_from_the_table_is_refused() {
    let dir = tempfile::tempdir().expect("test setup");
    let st = state(dir.path(), true);
    let table = watchpost_hub::route_table();
    let guard = watchpost_hub::auth::guard::Guard {
        hub: st.clone(),
        table: Arc::new(table),
    };
    let app: Router = Router::new()
        .route("/unlisted", axum::routing::get(|| async { "secret" }))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            watchpost_hub::auth::guard::guard,
        ))
        .with_state(st);
    let a = get_as(&app, "/unlisted", &basic("ann")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&a), "ROUTE_NOT_IN_TABLE");
    // A method a listed route does not have is the router's 405, not a refusal.
    let other = tempfile::tempdir().expect("test setup");
    let app = watchpost_hub::router(state(other.path(), true));
    let t = call(&app, Method::TRACE, "/health", &[], None).await;
    assert_eq!(t.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn cookie_of(a: &Answer) -> String {
    let set = a.headers[header::SET_COOKIE].to_str().expect("test setup");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("test setup").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_boot_claim_then_sessions_with_csrf() {
    let dir = tempfile::tempdir().expect("test setup");
    let app = watchpost_hub::router(state(dir.path(), false));
    // Unclaimed: everything but health and the claim redirects to the claim page.
    for uri in ["/", "/api/v1/system/info", "/login"] {
        let a = call(&app, Method::GET, uri, &[], None).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(a.headers[header::LOCATION], "/claim", "{uri}");
    }
    assert_ne!(
        call(&app, Method::GET, "/metrics", &[], None).await.status,
        StatusCode::SEE_OTHER
    );
    let status = call(&app, Method::GET, "/api/v1/auth/claim", &[], None).await;
    assert_eq!(status.body["claimed"], false);

    let code_text = std::fs::read_to_string(dir.path().join("setup-code")).expect("test setup");
    let setup = code_text.trim();
    let wrong = claim(&app, "AAAA-AAAA", "ann", "a-long-password").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&wrong), "NO_PROOF_OF_ACCESS");
    let short = claim(&app, setup, "ann", "short").await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = claim(&app, &setup.to_lowercase(), "ann", "a-long-password").await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["role"], "admin");
    assert!(!dir.path().join("setup-code").exists());
    let cookie = cookie_of(&ok);
    let csrf = ok.body["csrf"].as_str().expect("test setup").to_string();
    let again = claim(&app, setup, "eve", "a-long-password").await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let me = get_with(&app, "/api/v1/auth/me", &[("cookie", &cookie)]).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["via"], "session");
    // A state-changing request with the cookie needs the CSRF token.
    let new_user =
        serde_json::json!({"name": "vera", "password": "vera-password", "role": "viewer"});
    let no_token = call(
        &app,
        Method::POST,
        "/api/v1/users",
        &[("cookie", &cookie)],
        Some(new_user.clone()),
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&no_token), "CSRF");
    let with = call(
        &app,
        Method::POST,
        "/api/v1/users",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        Some(new_user),
    )
    .await;
    assert_eq!(with.status, StatusCode::CREATED, "{}", with.body);
    // Logout ends the session.
    let out = call(
        &app,
        Method::POST,
        "/api/v1/auth/logout",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = get_with(&app, "/api/v1/auth/me", &[("cookie", &cookie)]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // The audit log has the claim, the user change and the logout.
    let events = get_as(
        &app,
        "/api/v1/events?kind=audit&limit=50",
        "Basic YW5uOmEtbG9uZy1wYXNzd29yZA==",
    )
    .await;
    let kinds: Vec<String> = events.body["items"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| e["kind"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    for k in [
        "audit.claimed",
        "audit.claim_failed",
        "audit.user_created",
        "audit.logout",
    ] {
        assert!(
            kinds.iter().any(|x| x == k),
            "{k} missing from {kinds:?} ({})",
            events.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_out_with_retry_after() {
    let dir = tempfile::tempdir().expect("test setup");
    let app = watchpost_hub::router(state(dir.path(), true));
    for i in 1..=4 {
        let a = login(&app, "vera", "wrong", None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let fifth = login(&app, "vera", "wrong", None).await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fifth.headers[header::RETRY_AFTER], "30");
    // Locked even with the right password, and over Basic too.
    let right = login(&app, "vera", "vera-password", None).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    let b = get_as(&app, "/api/v1/auth/me", &basic("vera")).await;
    assert_eq!(b.status, StatusCode::TOO_MANY_REQUESTS);
    // Another user is not locked.
    let other = get_as(&app, "/api/v1/auth/me", &basic("olaf")).await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_and_totp() {
    let dir = tempfile::tempdir().expect("test setup");
    let app = watchpost_hub::router(state(dir.path(), true));
    let admin = basic("ann");
    let made = post_as(
        &app,
        "/api/v1/tokens",
        &admin,
        Some(serde_json::json!({
        "name": "home-assistant", "role": "operator"})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let token = made.body["token"].as_str().expect("test setup").to_string();
    let bearer = format!("Bearer {token}");
    let me = get_as(&app, "/api/v1/auth/me", &bearer).await;
    assert_eq!(
        (me.body["role"].as_str(), me.body["via"].as_str()),
        (Some("operator"), Some("token"))
    );
    // Operator rights only: the user table is refused.
    assert_eq!(
        get_as(&app, "/api/v1/users", &bearer).await.status,
        StatusCode::FORBIDDEN
    );
    let listed = get_as(&app, "/api/v1/tokens", &admin).await;
    assert!(!listed.body.to_string().contains(&token));
    assert!(listed.body[0]["last_used_us"].is_u64());
    let id = made.body["id"].as_str().expect("test setup");
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            &[("authorization", &admin)],
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get_as(&app, "/api/v1/auth/me", &bearer).await.status,
        StatusCode::UNAUTHORIZED
    );

    // TOTP for olaf: enroll, confirm, then logins need the code and Basic is refused.
    let olaf = basic("olaf");
    let begun = post_as(&app, "/api/v1/auth/totp", &olaf, None).await;
    let uri = begun.body["otpauth_uri"]
        .as_str()
        .expect("test setup")
        .to_string();
    let secret_b32 = uri
        .split("secret=")
        .nth(1)
        .expect("test setup")
        .split('&')
        .next()
        .expect("test setup");
    let secret = base32_decode(secret_b32);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("test setup")
        .as_secs();
    let confirm = post_as(
        &app,
        "/api/v1/auth/totp/confirm",
        &olaf,
        Some(serde_json::json!({"code": totp::code_at(&secret, now)})),
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let recovery = confirm.body["recovery_codes"][0]
        .as_str()
        .expect("test setup")
        .to_string();
    assert_eq!(
        get_as(&app, "/api/v1/auth/me", &olaf).await.status,
        StatusCode::UNAUTHORIZED
    );
    let no_code = login(&app, "olaf", "olaf-password", None).await;
    assert_eq!(code(&no_code), "TOTP_REQUIRED");
    // The code of the next step is accepted (a phone's clock a little ahead), once.
    let next = totp::code_at(&secret, now + 30);
    let with = login(&app, "olaf", "olaf-password", Some(&next)).await;
    assert_eq!(with.status, StatusCode::OK, "{}", with.body);
    let replay = login(&app, "olaf", "olaf-password", Some(&next)).await;
    assert_eq!(code(&replay), "TOTP_INVALID");
    let rec = login(&app, "olaf", "olaf-password", Some(&recovery)).await;
    assert_eq!(rec.status, StatusCode::OK);
    let rec2 = login(&app, "olaf", "olaf-password", Some(&recovery)).await;
    assert_eq!(code(&rec2), "TOTP_INVALID");
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.bytes() {
        let v = alphabet.iter().position(|&a| a == c).expect("test setup") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}
