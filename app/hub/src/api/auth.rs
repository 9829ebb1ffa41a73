//! `/api/v1/auth`, `/api/v1/users`, `/api/v1/tokens`: the first-boot claim, sessions, one's
//! own password and second factor, the user table and API tokens.
//!
//! Login and claim answer with a `wp_session` cookie (HttpOnly, SameSite=Strict, Secure over
//! TLS) and the session's CSRF token, which state-changing requests with that cookie send as
//! `X-CSRF-Token`. Every login, failed login, logout, claim and change to users or tokens is
//! an `audit.*` event in the event store.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use watchpost_config::Role;
use watchpost_store::{JsonBody, NewEvent, Severity};

use crate::api::extract::{Json as JsonBodyOf, Path};
use crate::auth::{
    LoginError, NewSession, Principal, SESSION_COOKIE, TokenView, UserError, UserView, Via,
};
use crate::error::{ApiError, ErrorBody};
use crate::state::HubState;

pub fn router() -> OpenApiRouter<HubState> {
    OpenApiRouter::new()
        .routes(routes!(claim_status, claim))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(totp_begin))
        .routes(routes!(totp_confirm))
        .routes(routes!(totp_disable))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user, delete_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Records an `audit.<what>` event; a store failure is logged, never fatal to the request.
pub async fn audit(state: &HubState, what: &str, user: &str, body: serde_json::Value) {
    let kind = format!("audit.{what}");
    let user = user.to_string();
    let severity = if what.ends_with("failed") {
        Severity::Warning
    } else {
        Severity::Notice
    };
    let r = state
        .blocking(move |store| {
            let body = JsonBody::from_value(&body)?;
            store.events().append(
                NewEvent::new(watchpost_store::now_us(), kind, user, severity).with_body(body),
            )
        })
        .await;
    if let Err(e) = r {
        tracing::warn!("recording an audit event: {}", e.message);
    }
}

/// The peer address of a request, as the guard sees it.
fn addr(c: Option<Extension<ConnectInfo<SocketAddr>>>) -> std::net::IpAddr {
    c.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip())
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(state: &HubState, s: &NewSession, secure: bool) -> HeaderValue {
    let max_age = u64::from(state.auth.config().session_max_hours) * 3600;
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        s.cookie
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A cookie that removes the session cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("wp_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The error answer of a refused login or claim.
pub fn login_error(e: &LoginError) -> ApiError {
    let (status, code) = match e {
        LoginError::Invalid => (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
        LoginError::TotpRequired => (StatusCode::UNAUTHORIZED, "TOTP_REQUIRED"),
        LoginError::TotpInvalid => (StatusCode::UNAUTHORIZED, "TOTP_INVALID"),
        LoginError::Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
        LoginError::AlreadyClaimed => (StatusCode::CONFLICT, "ALREADY_CLAIMED"),
        LoginError::NoProof => (StatusCode::FORBIDDEN, "NO_PROOF_OF_ACCESS"),
        LoginError::BadInput(_) => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT"),
        LoginError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "STORE_FAILED"),
    };
    ApiError::new(status, code, e.to_string())
}

fn login_response(e: LoginError) -> Response {
    let mut resp = login_error(&e).into_response();
    if let LoginError::Locked(wait) = e
        && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Records a login's or claim's outcome (a missing second factor is not a failure yet).
async fn audit_outcome(
    state: &HubState,
    ok: &str,
    failed: &str,
    user: &str,
    peer: std::net::IpAddr,
    r: &Result<NewSession, LoginError>,
) {
    match r {
        Ok(_) => audit(state, ok, user, json!({"address": peer.to_string()})).await,
        Err(LoginError::TotpRequired) => {}
        Err(e) => {
            let body = json!({"address": peer.to_string(), "reason": e.to_string()});
            audit(state, failed, user, body).await;
        }
    }
}

/// The answer to a login or a claim: the session with its cookie, or the refusal.
fn session_answer(
    state: &HubState,
    r: Result<NewSession, LoginError>,
    status: StatusCode,
    tls: bool,
) -> Response {
    match r {
        Ok(s) => (
            status,
            [(header::SET_COOKIE, session_cookie(state, &s, tls))],
            Json(SessionView {
                user: s.principal.user,
                role: s.principal.role,
                csrf: s.csrf,
            }),
        )
            .into_response(),
        Err(e) => login_response(e),
    }
}

fn user_error(e: UserError) -> ApiError {
    let (status, code) = match &e {
        UserError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT"),
        UserError::Exists(_) => (StatusCode::CONFLICT, "USER_EXISTS"),
        UserError::NotFound(_) => (StatusCode::NOT_FOUND, "USER_NOT_FOUND"),
        UserError::LastAdmin => (StatusCode::CONFLICT, "LAST_ADMIN"),
        UserError::WrongPassword => (StatusCode::FORBIDDEN, "WRONG_PASSWORD"),
        UserError::NoEnrollment => (StatusCode::CONFLICT, "NO_TOTP_ENROLLMENT"),
        UserError::WrongCode => (StatusCode::UNPROCESSABLE_ENTITY, "TOTP_INVALID"),
        UserError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "STORE_FAILED"),
    };
    ApiError::new(status, code, e.to_string())
}

/// Runs blocking auth work (Argon2, store writes) off the async threads.
async fn blocking<T: Send + 'static>(
    state: &HubState,
    f: impl FnOnce(&crate::auth::Authenticator) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let auth = state.auth.clone();
    tokio::task::spawn_blocking(move || f(&auth))
        .await
        .map_err(|e| ApiError::internal("TASK_FAILED", e.to_string()))
}

/// Whether the appliance waits for its first administrator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimStatus {
    pub claimed: bool,
    /// The board has a button whose press proves physical access.
    pub button: bool,
}

/// `GET /api/v1/auth/claim`
#[utoipa::path(
    get,
    path = "/auth/claim",
    tag = "auth",
    security(()),
    responses((status = 200, description = "Whether the appliance is claimed", body = ClaimStatus)),
)]
async fn claim_status(State(state): State<HubState>) -> Json<ClaimStatus> {
    let button = state
        .snapshot()
        .await
        .ok()
        .and_then(|s| s.board)
        .is_some_and(|b| b.button);
    Json(ClaimStatus {
        claimed: !state.auth.needs_claim(),
        button,
    })
}

/// The first administrator, with proof of physical access.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The setup code from the serial console or the journal (`XXXX-XXXX`). Leave it out to
    /// use a press of the board's button in the last two minutes instead.
    pub setup_code: Option<String>,
    pub user: String,
    pub password: String,
}

/// A signed-in session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub user: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// Send this as `X-CSRF-Token` with state-changing requests that use the cookie.
    pub csrf: String,
}

/// Claims the appliance: creates the first administrator and signs them in.
pub async fn do_claim(
    state: &HubState,
    code: Option<String>,
    user: String,
    password: String,
    peer: std::net::IpAddr,
) -> Result<NewSession, LoginError> {
    let pressed = crate::auth::guard::button_pressed_ago(state).await;
    let u = user.clone();
    let r = blocking(state, move |a| {
        a.claim(code.as_deref(), pressed, &u, &password, peer)
    })
    .await
    .map_err(|e| LoginError::Store(e.message))?;
    if r.is_ok() {
        tracing::info!(user = %user, "the appliance was claimed");
    }
    audit_outcome(state, "claimed", "claim_failed", &user, peer, &r).await;
    r
}

/// `POST /api/v1/auth/claim`
#[utoipa::path(
    post,
    path = "/auth/claim",
    tag = "auth",
    security(()),
    request_body = ClaimRequest,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 201, description = "Claimed; the administrator is signed in (Set-Cookie)", body = SessionView),
        (status = 403, description = "`NO_PROOF_OF_ACCESS`: wrong setup code and no button press", body = ErrorBody),
        (status = 409, description = "`ALREADY_CLAIMED`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: user name or password not acceptable", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_REQUESTS` (Retry-After)", body = ErrorBody),
    ),
)]
async fn claim(
    State(state): State<HubState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    tls: Option<Extension<crate::auth::OverTls>>,
    JsonBodyOf(body): JsonBodyOf<ClaimRequest>,
) -> Response {
    let r = do_claim(&state, body.setup_code, body.user, body.password, addr(ci)).await;
    session_answer(&state, r, StatusCode::CREATED, tls.is_some())
}

/// A login.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
    /// The authenticator app's code (or a recovery code) for users with a second factor.
    pub code: Option<String>,
}

/// Checks a password (and code) and records the outcome.
pub async fn do_login(
    state: &HubState,
    user: String,
    password: String,
    code: Option<String>,
    peer: std::net::IpAddr,
) -> Result<NewSession, LoginError> {
    let u = user.clone();
    let r = blocking(state, move |a| {
        a.login(&u, &password, code.as_deref(), peer)
    })
    .await
    .map_err(|e| LoginError::Store(e.message))?;
    audit_outcome(state, "login", "login_failed", &user, peer, &r).await;
    r
}

/// `POST /api/v1/auth/login`
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 200, description = "Signed in (Set-Cookie: wp_session)", body = SessionView),
        (status = 401, description = "`INVALID_CREDENTIALS`, `TOTP_REQUIRED`, `TOTP_INVALID`", body = ErrorBody),
        (status = 429, description = "`TOO_MANY_REQUESTS`: locked out for Retry-After seconds", body = ErrorBody),
    ),
)]
async fn login(
    State(state): State<HubState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    tls: Option<Extension<crate::auth::OverTls>>,
    JsonBodyOf(body): JsonBodyOf<LoginRequest>,
) -> Response {
    let r = do_login(&state, body.user, body.password, body.code, addr(ci)).await;
    session_answer(&state, r, StatusCode::OK, tls.is_some())
}

/// Ends the caller's session (if any) and records it.
pub async fn do_logout(state: &HubState, headers: &HeaderMap, who: &str) {
    if let Some(cookie) = crate::auth::guard::session_cookie(headers) {
        let _ = blocking(state, move |a| a.logout(&cookie)).await;
    }
    audit(state, "logout", who, json!({})).await;
}

/// `POST /api/v1/auth/logout`
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses((status = 204, description = "The session ended; the cookie is cleared")),
)]
async fn logout(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    do_logout(&state, &headers, &p.user).await;
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cleared_cookie())],
    )
        .into_response()
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub user: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// `basic`, `token` or `session`.
    pub via: String,
    pub totp: bool,
}

/// `GET /api/v1/auth/me`
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses((status = 200, description = "The caller", body = MeView)),
)]
async fn me(State(state): State<HubState>, Extension(p): Extension<Principal>) -> Json<MeView> {
    let totp = state
        .auth
        .users()
        .into_iter()
        .any(|u| u.name == p.user && u.totp);
    Json(MeView {
        user: p.user,
        role: p.role,
        via: match p.via {
            Via::Basic => "basic",
            Via::Token => "token",
            Via::Session => "session",
        }
        .into(),
        totp,
    })
}

/// A new password for the caller.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// `PUT /api/v1/auth/password`: changes the caller's password (ends their sessions).
#[utoipa::path(
    put,
    path = "/auth/password",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    request_body = PasswordChange,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 204, description = "Changed; every session of the user ended"),
        (status = 403, description = "`WRONG_PASSWORD`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`", body = ErrorBody),
    ),
)]
async fn change_password(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    JsonBodyOf(body): JsonBodyOf<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let user = p.user.clone();
    blocking(&state, move |a| {
        a.change_password(&user, &body.current, &body.new)
    })
    .await?
    .map_err(user_error)?;
    audit(&state, "password_changed", &p.user, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// TOTP enrollment started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpEnrollment {
    /// `otpauth://totp/...`: show as a QR code, or type the `secret` parameter into the app.
    pub otpauth_uri: String,
}

/// `POST /api/v1/auth/totp`: starts enrollment of a second factor for the caller.
#[utoipa::path(
    post,
    path = "/auth/totp",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses((status = 200, description = "A new secret, pending until confirmed", body = TotpEnrollment)),
)]
async fn totp_begin(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<TotpEnrollment>, ApiError> {
    let user = p.user.clone();
    let uri = blocking(&state, move |a| a.totp_begin(&user))
        .await?
        .map_err(user_error)?;
    Ok(Json(TotpEnrollment { otpauth_uri: uri }))
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `POST /api/v1/auth/totp/confirm`: turns the second factor on with a first code.
#[utoipa::path(
    post,
    path = "/auth/totp/confirm",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    request_body = TotpCode,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 200, description = "On; ten single-use recovery codes", body = RecoveryCodes),
        (status = 409, description = "`NO_TOTP_ENROLLMENT`", body = ErrorBody),
        (status = 422, description = "`TOTP_INVALID`", body = ErrorBody),
    ),
)]
async fn totp_confirm(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    JsonBodyOf(body): JsonBodyOf<TotpCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let user = p.user.clone();
    let codes = blocking(&state, move |a| a.totp_confirm(&user, &body.code))
        .await?
        .map_err(user_error)?;
    audit(&state, "totp_enabled", &p.user, json!({})).await;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// The caller's password, to turn the second factor off.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordOnly {
    pub password: String,
}

/// `POST /api/v1/auth/totp/disable`
#[utoipa::path(
    post,
    path = "/auth/totp/disable",
    tag = "auth",
    extensions(("x-watchpost-role" = json!("viewer"))),
    request_body = PasswordOnly,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 204, description = "The second factor is off"),
        (status = 403, description = "`WRONG_PASSWORD`", body = ErrorBody),
    ),
)]
async fn totp_disable(
    State(state): State<HubState>,
    ci: Option<Extension<ConnectInfo<SocketAddr>>>,
    Extension(p): Extension<Principal>,
    JsonBodyOf(body): JsonBodyOf<PasswordOnly>,
) -> Result<StatusCode, ApiError> {
    let user = p.user.clone();
    let peer = addr(ci);
    blocking(&state, move |a| {
        a.totp_disable_checked(&user, &body.password, peer)
    })
    .await?
    .map_err(user_error)?;
    audit(&state, "totp_disabled", &p.user, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users`
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses((status = 200, description = "Every user", body = [UserView])),
)]
async fn list_users(State(state): State<HubState>) -> Json<Vec<UserView>> {
    Json(state.auth.users())
}

/// A new user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    /// `admin`, `operator` or `viewer`.
    #[schema(value_type = String)]
    pub role: Role,
}

/// `POST /api/v1/users`
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = NewUser,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "`USER_EXISTS`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`", body = ErrorBody),
    ),
)]
async fn create_user(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    JsonBodyOf(body): JsonBodyOf<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let (name, role) = (body.name.clone(), body.role);
    blocking(&state, move |a| {
        a.create_user(&body.name, &body.password, body.role)
    })
    .await?
    .map_err(user_error)?;
    audit(
        &state,
        "user_created",
        &p.user,
        json!({"user": name, "role": role.as_str()}),
    )
    .await;
    let view = state
        .auth
        .users()
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| ApiError::internal("STORE_FAILED", "the new user is missing"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes to a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// A new password (ends the user's sessions).
    pub password: Option<String>,
    /// `false` turns the user's second factor off (a lost phone).
    pub totp: Option<bool>,
}

/// `PUT /api/v1/users/{name}`
#[utoipa::path(
    put,
    path = "/users/{name}",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("name" = String, Path, description = "The user's name")),
    request_body = UserChange,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 200, description = "Changed", body = UserView),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`LAST_ADMIN`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`", body = ErrorBody),
    ),
)]
async fn update_user(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    JsonBodyOf(body): JsonBodyOf<UserChange>,
) -> Result<Json<UserView>, ApiError> {
    let n = name.clone();
    let role = body.role;
    let reset_totp = body.totp == Some(false);
    let new_password = body.password.is_some();
    blocking(&state, move |a| {
        a.update_user(&n, body.role, body.password.as_deref())?;
        if reset_totp {
            a.totp_disable(&n)?;
        }
        Ok::<_, UserError>(())
    })
    .await?
    .map_err(user_error)?;
    audit(
        &state,
        "user_changed",
        &p.user,
        json!({"user": name, "role": role.map(Role::as_str), "password": new_password, "totp_reset": reset_totp}),
    )
    .await;
    state
        .auth
        .users()
        .into_iter()
        .find(|u| u.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("USER_NOT_FOUND", format!("no user named {name}")))
}

/// `DELETE /api/v1/users/{name}`
#[utoipa::path(
    delete,
    path = "/users/{name}",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("name" = String, Path, description = "The user's name")),
    responses(
        (status = 204, description = "Removed, with their sessions and tokens"),
        (status = 404, description = "`USER_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`LAST_ADMIN`", body = ErrorBody),
    ),
)]
async fn delete_user(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let n = name.clone();
    blocking(&state, move |a| a.delete_user(&n))
        .await?
        .map_err(user_error)?;
    audit(&state, "user_deleted", &p.user, json!({"user": name})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tokens`
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    responses((status = 200, description = "Every API token (never the token itself)", body = [TokenView])),
)]
async fn list_tokens(State(state): State<HubState>) -> Json<Vec<TokenView>> {
    Json(state.auth.tokens())
}

/// A new API token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for, e.g. `home-assistant`.
    pub name: String,
    #[schema(value_type = String)]
    pub role: Role,
    /// Whose rights it carries (default: the caller).
    pub owner: Option<String>,
}

/// The token, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// `Authorization: Bearer <token>`.
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// `POST /api/v1/tokens`
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    request_body = NewToken,
    responses(
        (status = 400, description = "`INVALID_BODY`: not the JSON this takes", body = ErrorBody),
        (status = 201, description = "Created; the token is in this answer only", body = CreatedToken),
        (status = 404, description = "`USER_NOT_FOUND`: no such owner", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`", body = ErrorBody),
    ),
)]
async fn create_token(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    JsonBodyOf(body): JsonBodyOf<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let owner = body.owner.clone().unwrap_or_else(|| p.user.clone());
    let o = owner.clone();
    let (view, token) = blocking(&state, move |a| a.create_token(&o, &body.name, body.role))
        .await?
        .map_err(user_error)?;
    audit(
        &state,
        "token_created",
        &p.user,
        json!({"id": view.id, "name": view.name, "owner": owner, "role": view.role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, view })))
}

/// `DELETE /api/v1/tokens/{id}`
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "users",
    extensions(("x-watchpost-role" = json!("admin"))),
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`TOKEN_NOT_FOUND`", body = ErrorBody),
    ),
)]
async fn revoke_token(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let i = id.clone();
    let had = blocking(&state, move |a| a.revoke_token(&i))
        .await?
        .map_err(|e| ApiError::internal("STORE_FAILED", e.to_string()))?;
    if !had {
        return Err(ApiError::not_found(
            "TOKEN_NOT_FOUND",
            format!("no token with id {id}"),
        ));
    }
    audit(&state, "token_revoked", &p.user, json!({"id": id})).await;
    Ok(StatusCode::NO_CONTENT)
}
