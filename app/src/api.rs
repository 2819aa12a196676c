//! The protected API: the server functions of DESIGN.md and the values they
//! return. Every one of them answers errors with [`ApiError`] (`error.rs`).
//!
//! The Bearer access token is validated by the server before any of these
//! run: `server/src/edge/bearer_layer.rs` refuses every request under `/api/`
//! that is not public and lacks a valid token, so a protected function
//! only ever runs for a valid token. [`ssr::authorize`] hands it the
//! caller's claims and checks the scope it needs.

use std::sync::Arc;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::error::ApiError;

/// The scope `report` needs.
pub const REPORTS_READ: &str = "reports:read";

/// The checked claims of the caller's access token, as `whoami` returns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub uid: Option<String>,
    pub cid: Option<String>,
    pub scopes: Vec<String>,
    pub issuer: String,
    /// Expiry of the access token, in Unix seconds.
    pub expires_at: i64,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: u32,
    /// ISO 8601 date.
    pub date: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyReport {
    pub title: String,
    pub generated_for: String,
    pub rows: Vec<ReportRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub label: String,
    pub value: u64,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side half: what the bearer layer leaves on the request and
    //! the scope check a protected function makes.

    use super::{AccessClaims, ApiError, Arc};
    use leptos::prelude::*;

    pub use crate::error::ssr::{
        error_headers, error_response, error_status, from_server_side_failure, set_error_response,
    };

    /// The caller's checked access token. The server's bearer layer inserts
    /// it as a request extension, and only for a valid token: it answers
    /// every other request under the protected API itself, so no protected
    /// server function runs without one.
    #[derive(Clone, Debug)]
    pub struct BearerAuth(
        /// Shared with the verified-token cache, so the request's copies of
        /// it cost a reference count each.
        pub Arc<AccessClaims>,
    );

    /// The caller's checked claims, if they have `scope` (or any valid token
    /// when `scope` is `None`); otherwise the RFC 6750 error, with status and
    /// `WWW-Authenticate` already set on the response.
    pub async fn authorize(scope: Option<&str>) -> Result<Arc<AccessClaims>, ApiError> {
        // Read the extension in place: `leptos_axum::extract` would clone
        // the whole request head first.
        let claims = with_context::<http::request::Parts, _>(|parts| {
            parts
                .extensions
                .get::<BearerAuth>()
                .map(|auth| auth.0.clone())
        })
        .flatten();
        let result = match (claims, scope) {
            // No valid token reached this function: the bearer layer is not
            // in front of it, or this path is listed as public. Fail closed.
            (None, _) => Err(ApiError::Unauthorized {
                error_description: "this function needs a Bearer token, but the server did not check one for this path".into(),
            }),
            (Some(claims), Some(scope)) if !claims.has_scope(scope) => {
                Err(ApiError::InsufficientScope {
                    scope: scope.to_string(),
                })
            }
            (Some(claims), _) => Ok(claims),
        };
        if let Err(err) = &result {
            set_error_response(err);
        }
        result
    }
}

/// A public liveness check: no token needed (the bearer layer skips
/// `/api/health`). Answers `"ok"`.
#[server(endpoint = "health")]
pub async fn health() -> Result<String, ApiError> {
    Ok("ok".to_string())
}

/// Who the caller is, according to their access token.
#[server(endpoint = "whoami", client = crate::auth::client::AuthClient)]
pub async fn whoami() -> Result<Arc<AccessClaims>, ApiError> {
    ssr::authorize(None).await
}

/// `POST /api/whoami` with `access_token` rather than the tab's own: the
/// server's word on whom a token that is not the tab's yet names. The
/// server-function client sends the tab's token, so this is a plain fetch
/// of the same path, read with the same types.
#[cfg(feature = "hydrate")]
pub async fn whoami_for(access_token: &str) -> Result<AccessClaims, ApiError> {
    use server_fn::ServerFn;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    let failed = |what: &str| ApiError::ServerError {
        error_description: format!("the whoami call {what}"),
    };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let headers = web_sys::Headers::new().map_err(|_| failed("could not be made"))?;
    headers
        .set("Authorization", &format!("Bearer {access_token}"))
        .and_then(|()| headers.set("Content-Type", "application/x-www-form-urlencoded"))
        .map_err(|_| failed("could not be made"))?;
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(Whoami::PATH, &init)
        .map_err(|_| failed("could not be made"))?;
    let window = web_sys::window().ok_or_else(|| failed("has no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .and_then(JsValue::dyn_into)
        .map_err(|_| failed("could not reach the server"))?;
    let body = JsFuture::from(response.text().map_err(|_| failed("had no answer"))?)
        .await
        .ok()
        .and_then(|text| text.as_string())
        .ok_or_else(|| failed("had no answer"))?;
    if response.ok() {
        serde_json::from_str(&body).map_err(|_| failed("answered something unreadable"))
    } else {
        Err(serde_json::from_str(&body)
            .unwrap_or_else(|_| failed(&format!("was answered {}", response.status()))))
    }
}

/// The caller's messages.
#[server(endpoint = "messages", client = crate::auth::client::AuthClient)]
pub async fn messages() -> Result<Vec<Message>, ApiError> {
    let caller = ssr::authorize(None).await?;
    Ok(demo_messages(&caller.sub))
}

/// A small report; needs the `reports:read` scope.
#[server(endpoint = "report", client = crate::auth::client::AuthClient)]
pub async fn report() -> Result<WeeklyReport, ApiError> {
    let caller = ssr::authorize(Some(REPORTS_READ)).await?;
    Ok(WeeklyReport {
        title: "Sign-ins this week".into(),
        generated_for: caller.sub.clone(),
        rows: vec![
            ReportRow {
                label: "Monday".into(),
                value: 12,
            },
            ReportRow {
                label: "Tuesday".into(),
                value: 9,
            },
            ReportRow {
                label: "Wednesday".into(),
                value: 15,
            },
        ],
    })
}

/// Messages addressed to `sub`; fixed demo data, the same on every call.
pub fn demo_messages(sub: &str) -> Vec<Message> {
    vec![
        Message {
            id: 1,
            date: "2026-11-02".into(),
            text: format!("Welcome, {sub}. Your sign-in went through the implicit flow."),
        },
        Message {
            id: 2,
            date: "2026-11-15".into(),
            text: "This message came from a server function that checked your access token.".into(),
        },
    ]
}
