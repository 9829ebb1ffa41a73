//! The `hub` worker: the appliance's face to people and other systems.
//!
//! Role: serves `GET /health` and `GET /metrics` (unauthenticated), the REST API under
//! `/api/v1/` (HTTP Basic against the configured users; every route there requires it), and
//! hosts the services that belong to no device: the event store today; alarm rules and
//! receivers, the camera manager and OTA control as they arrive (see [`services`]).
//!
//! Design: `/health` and `/metrics` are answered from the supervisor's snapshot, asked for over
//! the worker's supervisor channel, so they report the truth even when the bus is down. API
//! areas are modules of [`api`] with one router each; errors use one shape ([`ApiError`]).
//! The hub owns `<data_dir>/hub.redb` (event log, alarm queues, settings).
//!
//! Failure: a listen address that cannot be bound or a store that cannot be opened ends the
//! worker with a typed [`HubError`]; the supervisor restarts it with backoff. A user entry that
//! cannot be loaded is a configuration error (not restarted in a loop).
//!
//! Shutdown: on cancel the HTTP server stops accepting, in-flight requests get a grace period,
//! services stop, and the store closes with every acknowledged write already on disk.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod pages;
pub mod services;
pub mod state;
pub mod system_bus;
pub mod tls;
pub mod update;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use watchpost_config::Config;
use watchpost_runtime::{ExitCode, WorkerCtx};

pub use error::ApiError;
pub use state::HubState;

/// Why the hub stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("binding the HTTP listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the hub store {path}: {source}")]
    OpenStore {
        path: std::path::PathBuf,
        source: watchpost_store::StoreError,
    },
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("loading users: {0}")]
    Users(#[from] auth::AuthSetupError),
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
    #[error("preparing the HTTPS certificate: {0}")]
    Tls(#[from] tls::TlsError),
}

impl HubError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            HubError::Bind { .. } => ExitCode::Unavailable,
            HubError::OpenStore { .. } => ExitCode::Unavailable,
            HubError::DataDir { .. } => ExitCode::Unavailable,
            HubError::Users(_) => ExitCode::Config,
            HubError::Serve(_) => ExitCode::Failure,
            HubError::Tls(_) => ExitCode::Unavailable,
        }
    }
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "no such API endpoint")
}

/// The OpenAPI document's frame: title, the HTTP Basic scheme every `/api/v1/` route requires.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Watchpost",
        description = "The REST API of the Watchpost edge gateway. Every route under /api/v1/ requires authentication (HTTP Basic against the appliance's users). docs/api.md lists each route with its minimum role."
    ),
    modifiers(&SecuritySchemes),
    security(("basic" = []), ("bearer" = []), ("session" = [])),
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`wpt_…`) from POST /api/v1/tokens"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "A browser session from POST /api/v1/auth/login; state-changing requests also send X-CSRF-Token",
            ))),
        );
    }
}

/// What the guard may answer before a handler runs, on every operation it applies to:
/// `401` without credentials, `403` for a role too low (and a session without its CSRF
/// token on a state-changing request), `429` past the rate limits.
struct GuardResponses;

impl utoipa::Modify for GuardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder, schema};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            let methods = [
                item.get.is_some(),
                item.put.is_some(),
                item.post.is_some(),
                item.delete.is_some(),
                item.patch.is_some(),
            ];
            for (op, is_get) in operations(item).zip(
                [true, false, false, false, false]
                    .into_iter()
                    .zip(methods)
                    .filter(|(_, present)| *present)
                    .map(|(g, _)| g),
            ) {
                let access = auth::access::operation_access(op);
                let mut add = |code: &str, text: &str| {
                    if op.responses.responses.contains_key(code) {
                        return;
                    }
                    let body = ContentBuilder::new()
                        .schema(Some(RefOr::Ref(schema::Ref::from_schema_name("ErrorBody"))))
                        .build();
                    op.responses.responses.insert(
                        code.into(),
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(text)
                                .content("application/json", body)
                                .build(),
                        ),
                    );
                };
                if api {
                    add(
                        "429",
                        "`TOO_MANY_REQUESTS`: past a rate limit or locked out (Retry-After)",
                    );
                }
                let Some(auth::access::Access::Role(role)) = access else {
                    continue;
                };
                add("401", "`UNAUTHORIZED`: no valid credentials");
                if role != watchpost_config::Role::Viewer || !is_get {
                    add(
                        "403",
                        "`FORBIDDEN`: the caller's role is too low; `CSRF`: a session request without its token",
                    );
                }
            }
        }
    }
}

/// Operation ids are unique: an id that two handlers share (`list`, `test`) gets its tag in
/// front (`relays_list`).
struct UniqueOperationIds;

impl utoipa::Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                let Some(id) = op.operation_id.clone() else {
                    continue;
                };
                if seen.get(&id).copied().unwrap_or(0) > 1 {
                    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                    op.operation_id = Some(match tag {
                        Some(tag) => format!("{tag}_{id}"),
                        None => id,
                    });
                }
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    extensions(("x-watchpost-role" = json!("viewer"))),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object)),
)]
async fn openapi_json(axum::Extension(doc): axum::Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0,
    )
        .into_response()
}

/// The serialized document, built once with the router.
#[derive(Debug, Clone)]
struct OpenApiJson(axum::body::Bytes);

type DocRouter = utoipa_axum::router::OpenApiRouter<HubState>;

/// Every page with its minimum role (see [`auth::access::Pages`]).
fn pages() -> auth::access::Pages {
    auth::pages::pages().merge(pages::pages())
}

/// The routes with their OpenAPI description and the pages' route table, before the state
/// is attached.
fn documented_routes() -> (
    Router<HubState>,
    utoipa::openapi::OpenApi,
    auth::access::PageTable,
) {
    let api = api::router()
        .routes(utoipa_axum::routes!(openapi_json))
        .fallback(api_not_found);
    let (router, mut doc) = DocRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(utoipa_axum::routes!(health::health))
        .routes(utoipa_axum::routes!(health::metrics))
        .nest("/api/v1", api)
        .split_for_parts();
    // These look at every operation, so they run once all routes are in.
    utoipa::Modify::modify(&GuardResponses, &mut doc);
    utoipa::Modify::modify(&UniqueOperationIds, &mut doc);
    let (page_router, page_table) = pages().into_parts();
    (router.merge(page_router), doc, page_table)
}

/// The OpenAPI 3.1 document of the hub's HTTP surface.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// Every route of the hub with the least access it needs: the API's from its description,
/// the pages' from their registration.
pub fn route_table() -> auth::access::RouteTable {
    let (_, doc, pages) = documented_routes();
    // A route without a role fails the build's tests (and is refused at run time).
    auth::access::RouteTable::new(&doc, &pages).unwrap_or_else(|e| panic!("route table: {e}"))
}

/// The hub's whole HTTP surface. One guard in front of every route: the first-boot claim,
/// credentials, the route table's role, CSRF, rate limits.
pub fn router(state: HubState) -> Router {
    let (routes, doc, pages) = documented_routes();
    let table =
        auth::access::RouteTable::new(&doc, &pages).unwrap_or_else(|e| panic!("route table: {e}"));
    let guard = auth::guard::Guard {
        hub: state.clone(),
        table: Arc::new(table),
    };
    let doc = OpenApiJson(doc.to_json().unwrap_or_default().into());
    routes
        .layer(middleware::from_fn_with_state(guard, auth::guard::guard))
        .layer(axum::Extension(doc))
        .with_state(state)
}

/// Runs the hub until shutdown.
pub async fn run(
    config: Config,
    ctx: Arc<WorkerCtx>,
    version: &'static str,
) -> Result<(), HubError> {
    let data_dir = config.system.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| HubError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let store_path = data_dir.join("hub.redb");
    let store = {
        let p = store_path.clone();
        // Quick repair: the hub's file holds the alarm delivery queues, so after a crash or a
        // power cut it must reopen in milliseconds, not after a walk over the whole file.
        let options = watchpost_store::StoreOptions {
            quick_repair: true,
            ..Default::default()
        };
        tokio::task::spawn_blocking(move || watchpost_store::Store::open_with(&p, &options))
            .await
            .map_err(|e| HubError::Serve(std::io::Error::other(e)))?
            .map_err(|source| HubError::OpenStore {
                path: store_path.clone(),
                source,
            })?
    };
    let auth = {
        let (c, st, dir) = (config.auth.clone(), store.clone(), data_dir.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || auth::Authenticator::open(&c, st, dir))
                .await
                .map_err(|e| HubError::Serve(std::io::Error::other(e)))??,
        )
    };
    if let Some(code) = auth.setup_code() {
        // The journal, and the serial console on the image: proof of physical access.
        tracing::warn!(
            setup_code = %code,
            "no administrator yet: open the setup page (/claim) and enter setup code {code}"
        );
    }
    let tls_config = config.hub.tls.clone();
    let tls = if tls_config.enabled {
        let dir = data_dir.clone();
        let c = tls_config.clone();
        let handle =
            tokio::task::spawn_blocking(move || tls::TlsHandle::load_or_generate(&dir, &c))
                .await
                .map_err(|e| HubError::Serve(std::io::Error::other(e)))??;
        Some(Arc::new(handle))
    } else {
        None
    };
    let addr = config.hub.listen.addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HubError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| HubError::Bind { addr, source })?;
    let tls_listener = match &tls {
        Some(_) => {
            let addr = tls_config.listen.addr();
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| HubError::Bind { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| HubError::Bind { addr, source })?;
            Some((l, bound))
        }
        None => None,
    };
    let bus = watchpost_bus::Bus::connect(&config, ctx.name(), ctx.shutdown().clone());
    let stop_grace_ms = config.supervisor.stop_grace_ms;
    let updates = Arc::new(update::Updates::new(
        &config.hub.update,
        &config.system.data_dir,
        version,
    ));
    let state = HubState {
        alarm: watchpost_alarm::AlarmHandle::new(&config.alarms),
        config: Arc::new(config),
        bus,
        store,
        ctx: ctx.clone(),
        auth: auth.clone(),
        version,
        neasmart: Default::default(),
        cameras: Default::default(),
        monitor: Default::default(),
        tls: tls.clone(),
        update: updates,
    };
    let services = services::start(&state);
    let app = router(state);

    let server_stop = tokio_util::sync::CancellationToken::new();
    // HTTPS serves the same router; with `redirect_http` the plain listener sends browsers there.
    let mut tls_server = None;
    let mut ready = vec![("http", bound)];
    let mut http_app = app.clone();
    if let (Some(handle), Some((l, tls_bound))) = (tls, tls_listener) {
        if tls_config.redirect_http {
            let target = tls::RedirectTarget {
                port: tls_bound.port(),
                hostname: handle.hostname(),
            };
            http_app = tls::redirect_http(http_app, target);
        }
        tls_server = Some(tokio::spawn(tls::serve(
            l,
            handle,
            app,
            server_stop.clone(),
        )));
        ready.push(("https", tls_bound));
    }
    let stop = server_stop.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(
            listener,
            http_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    });
    let listening = ready
        .iter()
        .map(|(k, a)| format!("{k} on {a}"))
        .collect::<Vec<_>>()
        .join(", ");
    ctx.ready(ready);
    ctx.status(format!("{listening}, {} users", auth.user_count()));

    let mut tick = tokio::time::interval(ctx.heartbeat_interval());
    let result = loop {
        tokio::select! {
            _ = ctx.shutdown().cancelled() => break Ok(()),
            r = &mut server => {
                break match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(HubError::Serve(e)),
                    Err(e) => Err(HubError::Serve(std::io::Error::other(e))),
                };
            }
            // `serve` returns only once stopped: ending before that is a failure (a panic).
            Some(r) = async { Some((&mut tls_server.as_mut()?).await) } => {
                let e = r.err().map(std::io::Error::other).unwrap_or_else(|| {
                    std::io::Error::other("the HTTPS server stopped")
                });
                tls_server = None;
                break Err(HubError::Serve(e));
            }
            _ = tick.tick() => ctx.heartbeat(),
        }
    };
    // Everything below shares one grace period, inside the supervisor's own before it kills.
    let grace = Duration::from_millis(stop_grace_ms * 3 / 4);
    let deadline = tokio::time::Instant::now() + grace;
    server_stop.cancel();
    let drained = async {
        let http = async {
            if tokio::time::timeout_at(deadline, &mut server)
                .await
                .is_err()
            {
                server.abort();
                tracing::warn!(
                    "HTTP requests still running at the end of the shutdown grace period; aborted"
                );
            }
        };
        let https = async {
            if let Some(t) = tls_server.as_mut()
                && tokio::time::timeout_at(deadline, &mut *t).await.is_err()
            {
                t.abort();
                tracing::warn!(
                    "HTTPS requests still running at the end of the shutdown grace period; aborted"
                );
            }
        };
        tokio::join!(http, https);
    };
    drained.await;
    services::drain(services, deadline).await;
    tracing::info!("hub stopped");
    result
}
