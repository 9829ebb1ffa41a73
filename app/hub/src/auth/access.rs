//! Who may call what: the route table and the builder that registers pages with their role.
//!
//! Every route of the hub has exactly one entry: API routes carry their minimum role in their
//! OpenAPI description (`x-watchpost-role`, or `security(())` for the open ones), pages are
//! registered through [`Pages`] together with theirs. The guard looks the matched route up
//! here; a route with no entry is refused (fail closed) and the route × role test fails.

use std::collections::HashMap;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use watchpost_config::Role;

use crate::state::HubState;

/// The least a caller needs for one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (health, metrics, login, claim, assets).
    Public,
    /// A signed-in user with at least this role.
    Role(Role),
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(r) => r.as_str(),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(Access::Public),
            other => other.parse().ok().map(Access::Role),
        }
    }
}

/// The pages' part of the route table: method, route template, least access.
pub type PageTable = Vec<(Method, &'static str, Access)>;

/// HTML pages and their minimum roles, registered together so neither can be missing.
#[derive(Default)]
pub struct Pages {
    router: Router<HubState>,
    table: PageTable,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").field("table", &self.table).finish()
    }
}

impl Pages {
    pub fn new() -> Self {
        Self::default()
    }

    /// A `GET` page (also answers `HEAD`).
    #[must_use]
    pub fn get<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, HubState>,
        T: 'static,
    {
        self.page(Method::GET, path, access, handler)
    }

    /// A form target.
    #[must_use]
    pub fn post<H, T>(self, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, HubState>,
        T: 'static,
    {
        self.page(Method::POST, path, access, handler)
    }

    fn page<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, HubState>,
        T: 'static,
    {
        let filter = if method == Method::GET {
            MethodFilter::GET
        } else {
            MethodFilter::POST
        };
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path, access));
        self
    }

    /// Adds another set of pages.
    #[must_use]
    pub fn merge(mut self, other: Pages) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub fn into_parts(self) -> (Router<HubState>, PageTable) {
        (self.router, self.table)
    }
}

/// Method and route template (as axum's `MatchedPath` spells it) → the least access.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    map: HashMap<(Method, String), Access>,
}

impl RouteTable {
    /// The table of the documented API routes and the pages.
    pub fn new(
        doc: &utoipa::openapi::OpenApi,
        pages: &[(Method, &'static str, Access)],
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (Method::GET, item.get.as_ref()),
                (Method::PUT, item.put.as_ref()),
                (Method::POST, item.post.as_ref()),
                (Method::DELETE, item.delete.as_ref()),
                (Method::PATCH, item.patch.as_ref()),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let access = operation_access(op)
                    .ok_or_else(|| format!("{method} {path} names no x-watchpost-role"))?;
                map.insert((method, path.clone()), access);
            }
        }
        for (method, path, access) in pages {
            if map
                .insert((method.clone(), path.to_string()), *access)
                .is_some()
            {
                return Err(format!("{method} {path} is registered twice"));
            }
        }
        Ok(Self { map })
    }

    /// The access of a matched route; `HEAD` is looked up as `GET`.
    pub fn get(&self, method: &Method, path: &str) -> Option<Access> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.map.get(&(method.clone(), path.to_string())).copied()
    }

    /// Whether any method of `path` has an entry (another method then answers 405).
    pub fn knows_path(&self, path: &str) -> bool {
        self.map.keys().any(|(_, p)| p == path)
    }

    /// Every entry, sorted (for the route × role test and docs).
    pub fn entries(&self) -> Vec<(Method, String, Access)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|((m, p), a)| (m.clone(), p.clone(), *a))
            .collect();
        v.sort_by(|a, b| (&a.1, a.0.as_str()).cmp(&(&b.1, b.0.as_str())));
        v
    }
}

/// An operation's access: `x-watchpost-role`, or public when it has an empty security list.
pub fn operation_access(op: &utoipa::openapi::path::Operation) -> Option<Access> {
    let from_ext = op
        .extensions
        .as_ref()
        .and_then(|e| e.get("x-watchpost-role"))
        .and_then(|v| v.as_str())
        .and_then(Access::parse);
    if from_ext.is_some() {
        return from_ext;
    }
    let open = op
        .security
        .as_ref()
        .is_some_and(|s| serde_json::to_value(s).is_ok_and(|v| v == serde_json::json!([{}])));
    open.then_some(Access::Public)
}
