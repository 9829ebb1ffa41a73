//! The pages of signing in and of people: the first-boot claim, login, logout, one's account
//! (password, second factor) and, for administrators, users and API tokens.
//!
//! Forms post back to their own page; success redirects (303), a refusal renders the form
//! again with the reason beside it. The work is done by the same functions the API uses
//! (`api::auth::do_login`, `do_claim`, the [`Authenticator`](super::Authenticator)).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;
use watchpost_config::Role;

use super::access::{Access, Pages};
use super::{LoginError, OverTls, Principal, UserError};
use crate::api::auth::{
    audit, cleared_cookie, do_claim, do_login, do_logout, login_error, session_cookie,
};
use crate::pages::layout::{PageCtx, page};
use crate::pages::with_headers;
use crate::state::HubState;

pub fn pages() -> Pages {
    let viewer = Access::Role(Role::Viewer);
    let admin = Access::Role(Role::Admin);
    Pages::new()
        .get("/claim", Access::Public, with_headers(claim_form))
        .post("/claim", Access::Public, with_headers(claim_submit))
        .get("/login", Access::Public, with_headers(login_form))
        .post("/login", Access::Public, with_headers(login_submit))
        .post("/logout", viewer, with_headers(logout))
        .get("/account", viewer, with_headers(account))
        .post("/account/password", viewer, with_headers(account_password))
        .post("/account/totp", viewer, with_headers(totp_begin))
        .post("/account/totp/confirm", viewer, with_headers(totp_confirm))
        .post("/account/totp/disable", viewer, with_headers(totp_disable))
        .get("/users", admin, with_headers(users))
        .post("/users", admin, with_headers(user_create))
        .post("/users/{name}", admin, with_headers(user_update))
        .post("/users/{name}/delete", admin, with_headers(user_delete))
        .post("/tokens", admin, with_headers(token_create))
        .post("/tokens/{id}/revoke", admin, with_headers(token_revoke))
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer(c: Peer) -> std::net::IpAddr {
    c.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip())
}

/// A text input with its label and, when refused, the reason tied to it.
fn input(
    id: &str,
    label: &str,
    kind: &str,
    value: &str,
    autocomplete: &str,
    error: Option<&str>,
) -> Markup {
    let err_id = format!("{id}-error");
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(e) = error {
                input id=(id) name=(id) type=(kind) value=(value) autocomplete=(autocomplete)
                    aria-invalid="true" aria-describedby=(err_id);
                p.error id=(err_id) { (e) }
            } @else {
                input id=(id) name=(id) type=(kind) value=(value) autocomplete=(autocomplete);
            }
        }
    }
}

fn csrf_field(ctx: &PageCtx) -> Markup {
    html! {
        @if let Some(c) = &ctx.csrf {
            input type="hidden" name="csrf" value=(c);
        }
    }
}

fn alert(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.alert role="alert" { (t) }
        }
    }
}

fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

fn with_status(status: StatusCode, mut resp: Response) -> Response {
    *resp.status_mut() = status;
    resp
}

fn retry_after(mut resp: Response, e: &LoginError) -> Response {
    if let LoginError::Locked(wait) = e
        && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Where to go after login: a local path only, else `/`. A path starting with one `/`, with
/// no `\` and no control character: browsers read `\` as `/` and drop tabs and newlines
/// from a URL, so `/\evil.example` or `/<TAB>/evil.example` would leave the appliance.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

fn signed_in(state: &HubState, s: &super::NewSession, tls: bool, to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, s, tls));
    resp
}

// --- claim ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
pub struct ClaimForm {
    #[serde(default)]
    setup_code: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

fn claim_page(ctx: &PageCtx, form: &ClaimForm, error: Option<&str>) -> Response {
    let body = html! {
        p { "This appliance has no administrator yet. Prove that you are at the box, then choose the administrator's name and password." }
        (alert(error))
        form method="post" action="/claim" {
            fieldset {
                legend { "Proof of physical access" }
                p.hint id="code-hint" {
                    "The setup code is printed on the serial console and in the system journal ("
                    code { "journalctl -u watchpost | grep 'setup code'" }
                    "). Or press the board's button briefly, then submit within two minutes with the code left empty."
                }
                div.field {
                    label for="setup_code" { "Setup code" }
                    input id="setup_code" name="setup_code" type="text" value=(form.setup_code)
                        autocomplete="one-time-code" inputmode="text" placeholder="XXXX-XXXX"
                        aria-describedby="code-hint";
                }
            }
            fieldset {
                legend { "Administrator" }
                (input("user", "User name", "text", &form.user, "username", None))
                (input("password", "Password (at least 8 characters)", "password", "", "new-password", None))
                (input("confirm", "Password again", "password", "", "new-password", None))
            }
            button type="submit" { "Claim and sign in" }
        }
    };
    page("Claim this Watchpost", ctx, body)
}

async fn claim_form(State(state): State<HubState>, ctx: PageCtx) -> Response {
    if !state.auth.needs_claim() {
        return Redirect::to("/login").into_response();
    }
    claim_page(&ctx, &ClaimForm::default(), None)
}

async fn claim_submit(
    State(state): State<HubState>,
    ctx: PageCtx,
    c: Peer,
    tls: Option<Extension<OverTls>>,
    Form(form): Form<ClaimForm>,
) -> Response {
    if !state.auth.needs_claim() {
        return Redirect::to("/login").into_response();
    }
    if form.password != form.confirm {
        return with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            claim_page(&ctx, &form, Some("The two passwords differ.")),
        );
    }
    let code = Some(form.setup_code.trim().to_string()).filter(|c| !c.is_empty());
    match do_claim(
        &state,
        code,
        form.user.trim().to_string(),
        form.password.clone(),
        peer(c),
    )
    .await
    {
        Ok(s) => signed_in(&state, &s, tls.is_some(), "/setup"),
        Err(e) => {
            let status = login_error(&e).status;
            retry_after(
                with_status(status, claim_page(&ctx, &form, Some(&e.to_string()))),
                &e,
            )
        }
    }
}

// --- login / logout ------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(ctx: &PageCtx, form: &LoginForm, error: Option<&str>, want_code: bool) -> Response {
    let body = html! {
        (alert(error))
        form method="post" action="/login" {
            input type="hidden" name="next" value=(form.next);
            (input("user", "User name", "text", &form.user, "username", None))
            (input("password", "Password", "password", "", "current-password", None))
            div.field {
                label for="code" { "One-time code" }
                input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                    aria-describedby="code-hint" autofocus[want_code];
                p.hint id="code-hint" { "Only for accounts with two-factor sign-in: the authenticator app's code, or a recovery code." }
            }
            button type="submit" { "Sign in" }
        }
    };
    page("Sign in", ctx, body)
}

async fn login_form(ctx: PageCtx, Query(q): Query<NextQuery>) -> Response {
    if ctx.principal.is_some() {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let form = LoginForm {
        next: safe_next(q.next.as_deref()),
        ..Default::default()
    };
    login_page(&ctx, &form, None, false)
}

async fn login_submit(
    State(state): State<HubState>,
    ctx: PageCtx,
    c: Peer,
    tls: Option<Extension<OverTls>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let code = Some(form.code.trim().to_string()).filter(|c| !c.is_empty());
    match do_login(
        &state,
        form.user.trim().to_string(),
        form.password.clone(),
        code,
        peer(c),
    )
    .await
    {
        Ok(s) => signed_in(&state, &s, tls.is_some(), &safe_next(Some(&form.next))),
        Err(e) => {
            let status = login_error(&e).status;
            let want_code = matches!(e, LoginError::TotpRequired | LoginError::TotpInvalid);
            retry_after(
                with_status(
                    status,
                    login_page(&ctx, &form, Some(&e.to_string()), want_code),
                ),
                &e,
            )
        }
    }
}

async fn logout(
    State(state): State<HubState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    do_logout(&state, &headers, &p.user).await;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cleared_cookie());
    resp
}

// --- account -------------------------------------------------------------------------------

async fn blocking<T: Send + 'static>(
    state: &HubState,
    f: impl FnOnce(&super::Authenticator) -> T + Send + 'static,
) -> T {
    let auth = state.auth.clone();
    match tokio::task::spawn_blocking(move || f(&auth)).await {
        Ok(v) => v,
        // A panic in Argon2 or the store: nothing sensible to show but the panic.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn qr_svg(text: &str) -> Markup {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The SVG is generated here from our own data, never user markup.
            html! { div.qr role="img" aria-label="QR code of the enrollment link" { (maud::PreEscaped(svg)) } }
        }
        Err(_) => html! {},
    }
}

struct AccountView<'a> {
    notice: Option<&'a str>,
    error: Option<&'a str>,
    /// Enrollment in progress: the otpauth URI.
    enrolling: Option<&'a str>,
    recovery: Option<&'a [String]>,
}

fn account_page(state: &HubState, ctx: &PageCtx, v: &AccountView<'_>) -> Response {
    let user = ctx
        .principal
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_default();
    let role = ctx.principal.as_ref().map_or("", |p| p.role.as_str());
    let has_totp = state.auth.users().iter().any(|u| u.name == user && u.totp);
    let body = html! {
        p { "Signed in as " strong { (user) } " (" (role) ")." }
        (notice(v.notice))
        (alert(v.error))
        section aria-labelledby="pw-h" {
            h2 id="pw-h" { "Password" }
            form method="post" action="/account/password" {
                (csrf_field(ctx))
                (input("current", "Current password", "password", "", "current-password", None))
                (input("new", "New password (at least 8 characters)", "password", "", "new-password", None))
                button type="submit" { "Change password" }
            }
        }
        section aria-labelledby="totp-h" {
            h2 id="totp-h" { "Two-factor sign-in" }
            @if let Some(codes) = v.recovery {
                p { "Two-factor sign-in is on. Keep these recovery codes somewhere safe; each works once, and they are not shown again." }
                ul.codes { @for c in codes { li { code { (c) } } } }
            } @else if let Some(uri) = v.enrolling {
                p { "Scan this code with an authenticator app, or type the key into it, then enter the code the app shows." }
                (qr_svg(uri))
                p { "Key: " code.secret { (uri.split("secret=").nth(1).and_then(|s| s.split('&').next()).unwrap_or("")) } }
                form method="post" action="/account/totp/confirm" {
                    (csrf_field(ctx))
                    (input("code", "Code from the app", "text", "", "one-time-code", None))
                    button type="submit" { "Turn on" }
                }
            } @else if has_totp {
                p { "Two-factor sign-in is on." }
                form method="post" action="/account/totp/disable" {
                    (csrf_field(ctx))
                    (input("password", "Password, to turn it off", "password", "", "current-password", None))
                    button.danger type="submit" { "Turn off" }
                }
            } @else {
                p { "Off. With it on, signing in also needs a code from an authenticator app on your phone." }
                form method="post" action="/account/totp" {
                    (csrf_field(ctx))
                    button type="submit" { "Set up" }
                }
            }
        }
    };
    page("Your account", ctx, body)
}

async fn account(State(state): State<HubState>, ctx: PageCtx) -> Response {
    account_page(
        &state,
        &ctx,
        &AccountView {
            notice: None,
            error: None,
            enrolling: None,
            recovery: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

async fn account_password(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    Form(f): Form<PasswordForm>,
) -> Response {
    let user = p.user.clone();
    match blocking(&state, move |a| {
        a.change_password(&user, &f.current, &f.new)
    })
    .await
    {
        Ok(()) => {
            audit(&state, "password_changed", &p.user, serde_json::json!({})).await;
            // Every session of the user ended, this one too.
            let mut resp = Redirect::to("/login").into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, cleared_cookie());
            resp
        }
        Err(e) => with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            account_page(
                &state,
                &ctx,
                &AccountView {
                    notice: None,
                    error: Some(&e.to_string()),
                    enrolling: None,
                    recovery: None,
                },
            ),
        ),
    }
}

async fn totp_begin(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
) -> Response {
    let user = p.user.clone();
    match blocking(&state, move |a| a.totp_begin(&user)).await {
        Ok(uri) => account_page(
            &state,
            &ctx,
            &AccountView {
                notice: None,
                error: None,
                enrolling: Some(&uri),
                recovery: None,
            },
        ),
        Err(e) => account_error(&state, &ctx, &e),
    }
}

fn account_error(state: &HubState, ctx: &PageCtx, e: &UserError) -> Response {
    with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        account_page(
            state,
            ctx,
            &AccountView {
                notice: None,
                error: Some(&e.to_string()),
                enrolling: None,
                recovery: None,
            },
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn totp_confirm(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    Form(f): Form<CodeForm>,
) -> Response {
    let user = p.user.clone();
    match blocking(&state, move |a| a.totp_confirm(&user, &f.code)).await {
        Ok(codes) => {
            audit(&state, "totp_enabled", &p.user, serde_json::json!({})).await;
            account_page(
                &state,
                &ctx,
                &AccountView {
                    notice: Some("Two-factor sign-in is on."),
                    error: None,
                    enrolling: None,
                    recovery: Some(&codes),
                },
            )
        }
        Err(e) => account_error(&state, &ctx, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordOnlyForm {
    #[serde(default)]
    password: String,
}

async fn totp_disable(
    State(state): State<HubState>,
    ctx: PageCtx,
    c: Peer,
    Extension(p): Extension<Principal>,
    Form(f): Form<PasswordOnlyForm>,
) -> Response {
    let user = p.user.clone();
    let addr = peer(c);
    let r = blocking(&state, move |a| {
        a.totp_disable_checked(&user, &f.password, addr)
    })
    .await;
    match r {
        Ok(()) => {
            audit(&state, "totp_disabled", &p.user, serde_json::json!({})).await;
            account_page(
                &state,
                &ctx,
                &AccountView {
                    notice: Some("Two-factor sign-in is off."),
                    error: None,
                    enrolling: None,
                    recovery: None,
                },
            )
        }
        Err(e) => account_error(&state, &ctx, &e),
    }
}

// --- users and tokens ----------------------------------------------------------------------

const ROLES: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

fn role_select(id: &str, current: Role) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in ROLES {
                option value=(r.as_str()) selected[r == current] { (r.as_str()) }
            }
        }
    }
}

fn users_page(
    state: &HubState,
    ctx: &PageCtx,
    notice_text: Option<&str>,
    error: Option<&str>,
    new_token: Option<&str>,
) -> Response {
    let users = state.auth.users();
    let tokens = state.auth.tokens();
    let body = html! {
        (notice(notice_text))
        (alert(error))
        section aria-labelledby="users-h" {
            h2 id="users-h" { "Users" }
            p.hint { "Admin: everything. Operator: acknowledge events, change setpoints, switch relays, test alarms. Viewer: read only." }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Two-factor" } th scope="col" { "Change" } } }
                    tbody {
                        @for u in &users {
                            tr {
                                th scope="row" { (u.name) }
                                td { (u.role.as_str()) }
                                td { @if u.totp { "on" } @else { "off" } }
                                td {
                                    form.inline method="post" action={ "/users/" (u.name) } {
                                        (csrf_field(ctx))
                                        label.visually-hidden for={ "role-" (u.name) } { "Role of " (u.name) }
                                        (role_select(&format!("role-{}", u.name), u.role))
                                        label.visually-hidden for={ "pw-" (u.name) } { "New password for " (u.name) }
                                        input id={ "pw-" (u.name) } name="password" type="password" autocomplete="new-password" placeholder="new password (optional)";
                                        @if u.totp {
                                            label { input type="checkbox" name="reset_totp" value="1"; " turn off two-factor" }
                                        }
                                        button type="submit" { "Save" }
                                    }
                                    form.inline method="post" action={ "/users/" (u.name) "/delete" } {
                                        (csrf_field(ctx))
                                        button.danger type="submit" aria-label={ "Remove " (u.name) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Add a user" }
            form method="post" action="/users" {
                (csrf_field(ctx))
                (input("name", "User name", "text", "", "off", None))
                (input("password", "Password (at least 8 characters)", "password", "", "new-password", None))
                div.field { label for="new-role" { "Role" } (role_select("new-role", Role::Viewer)) }
                button type="submit" { "Add user" }
            }
        }
        section aria-labelledby="tokens-h" {
            h2 id="tokens-h" { "API tokens" }
            p.hint { "For Home Assistant and other programs: send " code { "Authorization: Bearer <token>" } ". A token has at most its owner's rights." }
            @if let Some(t) = new_token {
                div.notice role="status" {
                    p { "The new token. Copy it now: it is not shown again." }
                    p { code.secret { (t) } }
                }
            }
            @if tokens.is_empty() {
                p { "No tokens." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Owner" } th scope="col" { "Role" } th scope="col" { "Last used" } th scope="col" { "Revoke" } } }
                        tbody {
                            @for t in &tokens {
                                tr {
                                    th scope="row" { (t.name) }
                                    td { (t.owner) }
                                    td { (t.role.as_str()) }
                                    td { @match t.last_used_us { Some(us) => time datetime=(rfc3339(us)) { (rfc3339(us)) }, None => "never" } }
                                    td {
                                        form.inline method="post" action={ "/tokens/" (t.id) "/revoke" } {
                                            (csrf_field(ctx))
                                            button.danger type="submit" aria-label={ "Revoke " (t.name) } { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "New token" }
            form method="post" action="/tokens" {
                (csrf_field(ctx))
                (input("token-name", "What it is for", "text", "", "off", None))
                div.field { label for="token-role" { "Role" } (role_select("token-role", Role::Operator)) }
                button type="submit" { "Create token" }
            }
        }
    };
    page("Users and API tokens", ctx, body)
}

fn rfc3339(us: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn users(State(state): State<HubState>, ctx: PageCtx) -> Response {
    users_page(&state, &ctx, None, None, None)
}

fn user_result(state: &HubState, ctx: &PageCtx, r: Result<&str, UserError>) -> Response {
    match r {
        Ok(text) => users_page(state, ctx, Some(text), None, None),
        Err(e) => with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            users_page(state, ctx, None, Some(&e.to_string()), None),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

async fn user_create(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    Form(f): Form<NewUserForm>,
) -> Response {
    let role: Role = match f.role.parse() {
        Ok(r) => r,
        Err(e) => return user_result(&state, &ctx, Err(UserError::Invalid(e))),
    };
    let name = f.name.trim().to_string();
    let n = name.clone();
    let r = blocking(&state, move |a| a.create_user(&n, &f.password, role)).await;
    if r.is_ok() {
        audit(
            &state,
            "user_created",
            &p.user,
            serde_json::json!({"user": name, "role": role.as_str()}),
        )
        .await;
    }
    user_result(&state, &ctx, r.map(|()| "User added."))
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    reset_totp: Option<String>,
}

async fn user_update(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    axum::extract::Path(name): axum::extract::Path<String>,
    Form(f): Form<UserForm>,
) -> Response {
    let role: Option<Role> = match f.role.as_str() {
        "" => None,
        r => match r.parse() {
            Ok(r) => Some(r),
            Err(e) => return user_result(&state, &ctx, Err(UserError::Invalid(e))),
        },
    };
    let password = Some(f.password).filter(|p| !p.is_empty());
    let reset = f.reset_totp.is_some();
    let n = name.clone();
    let changed_pw = password.is_some();
    let r = blocking(&state, move |a| {
        a.update_user(&n, role, password.as_deref())?;
        if reset {
            a.totp_disable(&n)?;
        }
        Ok(())
    })
    .await;
    if r.is_ok() {
        audit(
            &state,
            "user_changed",
            &p.user,
            serde_json::json!({"user": name, "role": role.map(Role::as_str), "password": changed_pw, "totp_reset": reset}),
        )
        .await;
    }
    user_result(&state, &ctx, r.map(|()| "Saved."))
}

async fn user_delete(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let n = name.clone();
    let r = blocking(&state, move |a| a.delete_user(&n)).await;
    if r.is_ok() {
        audit(
            &state,
            "user_deleted",
            &p.user,
            serde_json::json!({"user": name}),
        )
        .await;
    }
    user_result(&state, &ctx, r.map(|()| "User removed."))
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default, rename = "token-name")]
    name: String,
    #[serde(default)]
    role: String,
}

async fn token_create(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    Form(f): Form<TokenForm>,
) -> Response {
    let role: Role = match f.role.parse() {
        Ok(r) => r,
        Err(e) => return user_result(&state, &ctx, Err(UserError::Invalid(e))),
    };
    let owner = p.user.clone();
    match blocking(&state, move |a| a.create_token(&owner, &f.name, role)).await {
        Ok((view, token)) => {
            audit(
                &state,
                "token_created",
                &p.user,
                serde_json::json!({"id": view.id, "name": view.name, "owner": view.owner, "role": view.role.as_str()}),
            )
            .await;
            users_page(&state, &ctx, None, None, Some(&token))
        }
        Err(e) => user_result(&state, &ctx, Err(e)),
    }
}

async fn token_revoke(
    State(state): State<HubState>,
    ctx: PageCtx,
    Extension(p): Extension<Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let i = id.clone();
    let r = blocking(&state, move |a| a.revoke_token(&i)).await;
    match r {
        Ok(true) => {
            audit(
                &state,
                "token_revoked",
                &p.user,
                serde_json::json!({"id": id}),
            )
            .await;
            users_page(&state, &ctx, Some("Token revoked."), None, None)
        }
        Ok(false) => users_page(&state, &ctx, None, Some("No such token."), None),
        Err(e) => users_page(&state, &ctx, None, Some(&e.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_the_appliance() {
        assert_eq!(safe_next(Some("/zones?x=1")), "/zones?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
