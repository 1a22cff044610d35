//! Route registration with an inventory: every route declares who may call it, so the route
//! inventory test and the OpenAPI document come from the same list as the router.
use std::collections::BTreeMap;

use axum::{
    extract::{Request, State},
    handler::Handler,
    http::Method,
    middleware::from_fn_with_state,
    middleware::Next,
    routing::{MethodFilter, MethodRouter},
    Router,
};

use super::{audit, auth::Caller, contract::Doc, state::AppState, Principal};
use crate::error::AppError;

/// Who may reach a route before its own permission checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Open to anonymous callers (reviewed allow-list in the route inventory test).
    Public,
    /// Requires an authenticated caller.
    Authenticated,
}

/// What a method the route does not serve answers to an authenticated caller. DRF checks
/// permissions before the method, so a caller the view's permission refuses gets 403, not 405.
#[derive(Clone, Copy)]
pub enum MethodPolicy {
    /// 405 for everyone, anonymous callers included (views without authentication, e.g. login).
    Open,
    /// 405 for everyone authenticated.
    NotAllowed,
    /// 405 when the predicate (the view's permission for unsafe methods) admits the caller, else 403.
    NotAllowedIf(fn(&Principal) -> bool),
    /// 403 for everyone: the view's permission only admits its own methods.
    Forbidden,
}

/// What each HTTP function crate exports: its routes and their inventory.
pub type FunctionApi = fn(&AppState) -> (Router, Vec<RouteSpec>);

#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub exposure: Exposure,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Its body, answers and query parameters, once the operation is typed (issue 14).
    pub doc: Option<Doc>,
}

pub struct Api {
    state: AppState,
    tag: &'static str,
    policy: MethodPolicy,
    paths: BTreeMap<&'static str, MethodRouter<AppState>>,
    specs: Vec<RouteSpec>,
}

fn filter_of(method: &Method) -> MethodFilter {
    MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET)
}

impl Api {
    pub fn new(state: &AppState, tag: &'static str) -> Self {
        Self { state: state.clone(), tag, policy: MethodPolicy::NotAllowed, paths: BTreeMap::new(), specs: Vec::new() }
    }

    pub fn method_policy(mut self, policy: MethodPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn route<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        exposure: Exposure,
        summary: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let existing = self.paths.remove(path).unwrap_or_default();
        self.paths.insert(path, existing.on(filter_of(&method), handler));
        self.specs.push(RouteSpec { method, path, exposure, summary, tag: self.tag, doc: None });
        self
    }

    /// A route whose calls are written to the request audit log (spec §0.12) as `view.view_method`.
    pub fn audited<H, T>(
        self,
        method: Method,
        path: &'static str,
        exposure: Exposure,
        summary: &'static str,
        view: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let authenticated = exposure != Exposure::Public;
        let layer = from_fn_with_state(self.state.clone(), move |state: State<AppState>, req: Request, next: Next| {
            audit::record(state, view, authenticated, req, next)
        });
        let layered = handler.layer(layer);
        self.route(method, path, exposure, summary, layered)
    }

    /// Documents the route added last: its form, answers and query parameters.
    pub fn doc(mut self, doc: Doc) -> Self {
        if let Some(spec) = self.specs.last_mut() {
            spec.doc = Some(doc);
        }
        self
    }

    /// The router and its inventory.
    pub fn build(self) -> (Router, Vec<RouteSpec>) {
        let policy = self.policy;
        let mut router = Router::new();
        for (path, methods) in self.paths {
            router = router.route(
                path,
                methods.fallback(move |caller: Caller, method: Method| refuse_method(caller, method, policy)),
            );
        }
        (router.with_state(self.state), self.specs)
    }
}

async fn refuse_method(caller: Caller, method: Method, policy: MethodPolicy) -> AppError {
    if let MethodPolicy::Open = policy {
        return AppError::MethodNotAllowed(method.to_string());
    }
    let Some(principal) = caller.principal() else { return AppError::NotAuthenticated };
    let allowed = match policy {
        MethodPolicy::Open | MethodPolicy::NotAllowed => true,
        MethodPolicy::NotAllowedIf(check) => check(principal),
        MethodPolicy::Forbidden => false,
    };
    if allowed {
        AppError::MethodNotAllowed(method.to_string())
    } else {
        AppError::permission_denied()
    }
}

/// Routers and inventories of several route groups, as one.
pub fn combine(parts: impl IntoIterator<Item = (Router, Vec<RouteSpec>)>) -> (Router, Vec<RouteSpec>) {
    parts.into_iter().fold((Router::new(), Vec::new()), |(router, mut specs), (r, s)| {
        specs.extend(s);
        (router.merge(r), specs)
    })
}
