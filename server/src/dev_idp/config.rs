//! The dev authorization server's clients, users, scopes and lifetimes: the
//! JSON file format (`server/dev-idp.json` is the demo, also built in), its
//! checks, and the typed [`Config`] the handlers read.
//!
//! ```json
//! {
//!   "comment": "free text, ignored",
//!   "app_client_id": "0oa-dev-spa",          // gets <app origin>/login/callback and <app origin>/
//!   "audience": "api://default",             // aud of access tokens
//!   "idp": "00o-dev-idp",                    // idp claim of ID tokens
//!   "scopes_supported": ["openid", "profile", "email", "reports:read"],
//!   "access_token_lifetime_secs": 3600,      // 1..=86400
//!   "id_token_lifetime_secs": 3600,          // 1..=86400
//!   "session_lifetime_secs": 28800,          // 60..=604800
//!   "authorization_code_lifetime_secs": 60,  // 1..=600; Okta's is 60, fixed
//!   "jwks_max_age_secs": 300,                // Cache-Control of /v1/keys and discovery, 0..=86400
//!   "trusted_origins": ["http://localhost:8080"], // CORS, besides the redirect URIs' origins (default: none)
//!   "clients": [{ "client_id": "…", "name": "…", "redirect_uris": ["…"],
//!                 "post_logout_redirect_uris": ["…"],
//!                 "response_types": ["code", "id_token", "token"], // default: all three
//!                 "scopes": ["openid", "offline_access", …],       // default: scopes_supported
//!                 "refresh_token_lifetime_secs": 7776000,   // 60..=157680000 (5 years), default 90 days
//!                 "refresh_token_idle_secs": 604800,        // 60..=lifetime, default 7 days (or the lifetime)
//!                 "refresh_token_rotation_grace_secs": 30,  // 0..=60, default 30
//!                 "dpop_bound_access_tokens": false,        // token requests must carry a DPoP proof
//!                 "dpop_nonce_required": true }],           // DPoP proofs must carry our nonce
//!   "users": [{ "id": "00u…", "login": "…", "name": "…", "email": "… (default: login)",
//!               "password_hash": "pbkdf2-sha256$…", "demo_password": "… (shown on the sign-in page)",
//!               "scopes": ["openid", …] }]
//! }
//! ```
//! (The real file has no comments: JSON has none.) Unknown fields are
//! errors, so a misspelt field is not silently ignored.
//!
//! A client's `response_types` and `scopes` play the part of Okta's app
//! settings and access policy rule: `response_types` are the app's grant
//! type boxes ("Authorization Code", and "Allow ID Token / Allow Access
//! Token with implicit grant type"; a request is allowed when each of its
//! words is listed, so `id_token` and `token` allow `id_token token`), and
//! `scopes` the scopes the rule lets this client have. Asking for more is
//! refused as Okta refuses it: `unsupported_response_type`, and
//! `access_denied` "Policy evaluation failed…".
//!
//! DPoP (RFC 9449) is always offered at the token endpoint: a request
//! with a valid proof gets tokens bound to its key. A client's
//! `dpop_bound_access_tokens` is Okta's "Require Demonstrating Proof of
//! Possession (DPoP) header in token requests" (off by default), and
//! `dpop_nonce_required` says whether proofs must carry a nonce this
//! server issued, which Okta always requires (so on by default).
//!
//! Refresh tokens are Okta's "Refresh Token" grant type with "Rotate token
//! after every use": a client may have them when it may use `code` and its
//! `scopes` include `offline_access` (which must then be in
//! `scopes_supported`). `offline_access` is the client's to grant, not the
//! user's: users' `scopes` need not list it. The three `refresh_token_*`
//! fields are the rule's "Refresh token lifetime" and "…but will expire if
//! not used every", and the app's "Grace period for token rotation"; they
//! are only accepted for a client that may have refresh tokens.
//!
//! The origins that may call the endpoints a browser app reads with
//! `fetch` (discovery, keys, token, userinfo, revoke, introspect) are Okta's
//! *Trusted Origins* of type CORS: here every client's redirect URIs'
//! origins, plus `trusted_origins` for pages that sign in elsewhere but
//! call these endpoints (see [`super::cors`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::password::{PasswordHash, PasswordHashError};
use super::response_type::ResponseType;

/// The demo configuration, built in so the server runs with no file.
pub const DEMO_CONFIG: &str = include_str!("../../dev-idp.json");

/// The scope that asks for a refresh token (OIDC Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the dev authorization server config {path} (DEV_IDP_CONFIG): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} is not valid: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    #[error("{origin} is not valid: {problem}")]
    Invalid { origin: String, problem: String },
    #[error("the app origin {0:?} is not an http(s) origin such as http://localhost:3000")]
    AppOrigin(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    #[allow(dead_code)] // documentation for people, not for the server
    comment: Option<String>,
    app_client_id: String,
    #[serde(default = "default_audience")]
    audience: String,
    #[serde(default = "default_idp")]
    idp: String,
    scopes_supported: Vec<String>,
    #[serde(default = "default_token_lifetime")]
    access_token_lifetime_secs: u64,
    #[serde(default = "default_token_lifetime")]
    id_token_lifetime_secs: u64,
    #[serde(default = "default_session_lifetime")]
    session_lifetime_secs: u64,
    #[serde(default = "default_code_lifetime")]
    authorization_code_lifetime_secs: u64,
    #[serde(default = "default_jwks_max_age")]
    jwks_max_age_secs: u64,
    #[serde(default)]
    trusted_origins: Vec<String>,
    clients: Vec<ClientFile>,
    users: Vec<UserFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    client_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Default: `code`, `id_token` and `token`.
    #[serde(default)]
    response_types: Option<Vec<String>>,
    /// Default: every scope in `scopes_supported`.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    refresh_token_lifetime_secs: Option<u64>,
    #[serde(default)]
    refresh_token_idle_secs: Option<u64>,
    #[serde(default)]
    refresh_token_rotation_grace_secs: Option<u64>,
    /// Okta's "Require Demonstrating Proof of Possession (DPoP) header in
    /// token requests" (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    /// Whether DPoP proofs at the token endpoint must carry a nonce this
    /// server issued, as Okta's always must.
    #[serde(default = "default_true")]
    dpop_nonce_required: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    id: String,
    login: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    password_hash: String,
    #[serde(default)]
    demo_password: Option<String>,
    scopes: Vec<String>,
}

fn default_audience() -> String {
    "api://default".into()
}
fn default_idp() -> String {
    "00o-dev-idp".into()
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_session_lifetime() -> u64 {
    8 * 3600
}
fn default_jwks_max_age() -> u64 {
    300
}
fn default_code_lifetime() -> u64 {
    60
}

/// Okta's defaults for a refresh token: it lives as long as the rule
/// allows ("unlimited" at Okta; bounded here, since everything is kept in
/// memory) but dies when not used for 7 days, and a rotated token stays
/// good for 30 s.
const DEFAULT_REFRESH_LIFETIME_SECS: u64 = 90 * 86_400;
const DEFAULT_REFRESH_IDLE_SECS: u64 = 7 * 86_400;
const DEFAULT_ROTATION_GRACE_SECS: u64 = 30;
/// Okta allows a refresh token lifetime of up to five years.
const MAX_REFRESH_LIFETIME_SECS: u64 = 5 * 365 * 86_400;
/// Okta's range for the grace period for token rotation.
pub const MAX_ROTATION_GRACE_SECS: u64 = 60;

/// A registered client (an Okta "app integration").
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The response types it may ask for, as words (`code`, `id_token`,
    /// `token`), in the file's order.
    pub response_types: Vec<String>,
    /// The scopes its access policy rule allows.
    pub scopes: Vec<String>,
    /// Its refresh tokens' lifetimes, if it may have refresh tokens.
    pub refresh: Option<RefreshPolicy>,
    /// What its token requests must do about DPoP.
    pub dpop: ClientDpop,
}

/// A client's DPoP settings (RFC 9449), as Okta's app settings have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDpop {
    /// Every token request must carry a DPoP proof (`invalid_dpop_proof`
    /// otherwise): `dpop_bound_access_tokens`, off by default.
    pub required: bool,
    /// Proofs must carry a nonce this server issued (`use_dpop_nonce`
    /// otherwise): `dpop_nonce_required`, on by default, as at Okta.
    pub nonce_required: bool,
}

impl Default for ClientDpop {
    fn default() -> Self {
        ClientDpop {
            required: false,
            nonce_required: true,
        }
    }
}

/// How long a client's refresh tokens live (Okta's access policy rule and
/// the app's rotation setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// From the sign-in, whatever the use: the rule's "Refresh token
    /// lifetime".
    pub lifetime_secs: u64,
    /// Each token dies when not used this long after it was issued: the
    /// rule's "…but will expire if not used every".
    pub idle_secs: u64,
    /// A rotated token stays good this long, so that a client whose answer
    /// was lost can ask again: the app's "Grace period for token rotation".
    pub rotation_grace_secs: u64,
}

impl Client {
    /// Exact string match, as Okta and RFC 6749 §3.1.2.3 require: no
    /// prefix, case or trailing-slash leniency.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether every word of `response_type` is allowed, as Okta checks a
    /// request against the app's response types.
    pub fn allows_response_type(&self, response_type: ResponseType) -> bool {
        response_type
            .words()
            .iter()
            .all(|word| self.response_types.iter().any(|r| r == word))
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Its grant types, as Okta names them in "Configured grant types":
    /// `authorization_code` with `code`, `implicit` with `token` or
    /// `id_token`, `refresh_token` with refresh tokens.
    pub fn grant_types(&self) -> Vec<&'static str> {
        let has = |word: &str| self.response_types.iter().any(|r| r == word);
        let mut grants = Vec::new();
        if has("code") {
            grants.push("authorization_code");
        }
        if has("token") || has("id_token") {
            grants.push("implicit");
        }
        if self.refresh.is_some() {
            grants.push("refresh_token");
        }
        grants
    }
}

/// A user who can sign in.
#[derive(Debug, Clone)]
pub struct User {
    /// Okta's user id (`00u…`): `sub` of ID tokens, `uid` of access tokens.
    pub id: String,
    /// What is typed in the username field: `sub` of access tokens.
    pub login: String,
    pub name: String,
    pub email: String,
    pub password: PasswordHash,
    /// Shown on the sign-in page, so people can try the demo.
    pub demo_password: Option<String>,
    /// The scopes this user may be granted (always includes `openid`).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_token_secs: u64,
    pub id_token_secs: u64,
    pub session_secs: u64,
    pub authorization_code_secs: u64,
    pub jwks_max_age_secs: u64,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub app_client_id: String,
    pub audience: String,
    pub idp: String,
    pub scopes_supported: Vec<String>,
    pub lifetimes: Lifetimes,
    /// `trusted_origins`, as bare origins (`http://localhost:8080`).
    pub trusted_origins: Vec<String>,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
}

impl Config {
    /// The built-in demo configuration.
    pub fn demo() -> Result<Self, ConfigError> {
        Self::parse(DEMO_CONFIG, "the built-in dev authorization server config")
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(
            &text,
            &format!(
                "the dev authorization server config {} (DEV_IDP_CONFIG)",
                path.display()
            ),
        )
    }

    /// Parses and checks config text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            origin: origin.to_owned(),
            source,
        })?;
        file.check().map_err(|problem| ConfigError::Invalid {
            origin: origin.to_owned(),
            problem,
        })
    }

    /// Registers `{origin}/login/callback` and `{origin}/` for the app's
    /// client, on top of whatever the file lists, so the app works on
    /// whatever address it is served from. An empty origin adds nothing.
    pub fn register_app_origin(&mut self, origin: &str) -> Result<(), ConfigError> {
        if origin.is_empty() {
            return Ok(());
        }
        let origin =
            normalize_origin(origin).ok_or_else(|| ConfigError::AppOrigin(origin.into()))?;
        let app_client_id = self.app_client_id.clone();
        let Some(client) = self
            .clients
            .iter_mut()
            .find(|c| c.client_id == app_client_id)
        else {
            // `check` guarantees the app client exists.
            return Ok(());
        };
        push_unique(
            &mut client.redirect_uris,
            format!("{origin}/login/callback"),
        );
        push_unique(&mut client.post_logout_redirect_uris, format!("{origin}/"));
        Ok(())
    }

    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// Logins are compared without regard to ASCII case, as Okta does.
    pub fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.login.eq_ignore_ascii_case(login))
    }

    pub fn is_supported_scope(&self, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
    }

    /// Every origin that may read the CORS endpoints: `trusted_origins`,
    /// then the origins of the clients' redirect URIs (those that have an
    /// http(s) origin), each once.
    pub fn cors_origins(&self) -> Vec<String> {
        let mut origins = self.trusted_origins.clone();
        let redirect_origins = self
            .clients
            .iter()
            .flat_map(|c| &c.redirect_uris)
            .filter_map(|uri| url::Url::parse(uri).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .map(|url| url.origin().ascii_serialization());
        for origin in redirect_origins {
            push_unique(&mut origins, origin);
        }
        origins
    }
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// `http://localhost:3000/` → `http://localhost:3000`; `None` unless it is a
/// bare http(s) origin.
fn normalize_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    bare.then(|| url.origin().ascii_serialization())
}

/// A scope token per RFC 6749 §3.3 (printable ASCII but space, `"` and `\`).
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2).
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URI: {e}"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(format!("{uri:?} must not contain a fragment"));
    }
    Ok(())
}

/// The words of a client's `response_types` (default: all three). An
/// entry may name both implicit ones (`"id_token token"`); each word counts
/// alone.
fn client_response_types(listed: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let Some(listed) = listed else {
        return Ok(vec!["code".into(), "id_token".into(), "token".into()]);
    };
    let mut words: Vec<String> = Vec::new();
    for entry in &listed {
        let parsed = ResponseType::parse(entry).ok_or_else(|| {
            format!("{entry:?} is not a response type this server speaks (code, id_token, token)")
        })?;
        for word in parsed.words() {
            push_unique(&mut words, (*word).to_owned());
        }
    }
    Ok(words)
}

/// A client's `refresh_token_*` fields, as given.
#[derive(Debug, Clone, Copy)]
struct RefreshFields {
    lifetime_secs: Option<u64>,
    idle_secs: Option<u64>,
    rotation_grace_secs: Option<u64>,
}

/// The refresh token settings of a client, which may have refresh tokens
/// when `offline` (see the module's documentation).
fn client_refresh_policy(c: RefreshFields, offline: bool) -> Result<Option<RefreshPolicy>, String> {
    let given =
        c.lifetime_secs.is_some() || c.idle_secs.is_some() || c.rotation_grace_secs.is_some();
    if !offline {
        if given {
            return Err("refresh_token_* settings need \"code\" in response_types \
                        and \"offline_access\" in scopes"
                .into());
        }
        return Ok(None);
    }
    let lifetime_secs = check_range(
        "refresh_token_lifetime_secs",
        c.lifetime_secs.unwrap_or(DEFAULT_REFRESH_LIFETIME_SECS),
        60,
        MAX_REFRESH_LIFETIME_SECS,
    )?;
    let idle_secs = check_range(
        "refresh_token_idle_secs",
        c.idle_secs
            .unwrap_or(DEFAULT_REFRESH_IDLE_SECS.min(lifetime_secs)),
        60,
        lifetime_secs,
    )?;
    let rotation_grace_secs = check_range(
        "refresh_token_rotation_grace_secs",
        c.rotation_grace_secs.unwrap_or(DEFAULT_ROTATION_GRACE_SECS),
        0,
        MAX_ROTATION_GRACE_SECS,
    )?;
    Ok(Some(RefreshPolicy {
        lifetime_secs,
        idle_secs,
        rotation_grace_secs,
    }))
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be between {min} and {max}, not {value}"
        ))
    }
}

impl ConfigFile {
    fn check(self) -> Result<Config, String> {
        let lifetimes = Lifetimes {
            access_token_secs: check_range(
                "access_token_lifetime_secs",
                self.access_token_lifetime_secs,
                1,
                86_400,
            )?,
            id_token_secs: check_range(
                "id_token_lifetime_secs",
                self.id_token_lifetime_secs,
                1,
                86_400,
            )?,
            session_secs: check_range(
                "session_lifetime_secs",
                self.session_lifetime_secs,
                60,
                7 * 86_400,
            )?,
            authorization_code_secs: check_range(
                "authorization_code_lifetime_secs",
                self.authorization_code_lifetime_secs,
                1,
                600,
            )?,
            jwks_max_age_secs: check_range("jwks_max_age_secs", self.jwks_max_age_secs, 0, 86_400)?,
        };
        if self.audience.is_empty() {
            return Err("audience must not be empty".into());
        }
        if self.idp.is_empty() {
            return Err("idp must not be empty".into());
        }
        let mut trusted_origins = Vec::with_capacity(self.trusted_origins.len());
        for origin in &self.trusted_origins {
            let bare = normalize_origin(origin).ok_or_else(|| {
                format!(
                    "trusted_origins: {origin:?} is not a bare http(s) origin \
                     such as http://localhost:8080"
                )
            })?;
            push_unique(&mut trusted_origins, bare);
        }

        for scope in &self.scopes_supported {
            if !is_scope_token(scope) {
                return Err(format!("scopes_supported: {scope:?} is not a scope token"));
            }
        }
        if !self.scopes_supported.iter().any(|s| s == "openid") {
            return Err("scopes_supported must include openid".into());
        }
        let supported: HashSet<&str> = self.scopes_supported.iter().map(String::as_str).collect();

        let mut client_ids = HashSet::new();
        let mut clients = Vec::with_capacity(self.clients.len());
        for c in self.clients {
            if c.client_id.is_empty() || !client_ids.insert(c.client_id.clone()) {
                return Err(format!(
                    "client_id {:?} is empty or listed twice",
                    c.client_id
                ));
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                check_redirect_uri(uri).map_err(|e| format!("client {}: {e}", c.client_id))?;
            }
            let response_types = client_response_types(c.response_types)
                .map_err(|e| format!("client {}: response_types: {e}", c.client_id))?;
            let refresh_fields = RefreshFields {
                lifetime_secs: c.refresh_token_lifetime_secs,
                idle_secs: c.refresh_token_idle_secs,
                rotation_grace_secs: c.refresh_token_rotation_grace_secs,
            };
            let scopes = c.scopes.unwrap_or_else(|| self.scopes_supported.clone());
            if let Some(bad) = scopes.iter().find(|s| !supported.contains(s.as_str())) {
                return Err(format!(
                    "client {}: scope {bad:?} is not in scopes_supported",
                    c.client_id
                ));
            }
            let offline = response_types.iter().any(|r| r == "code")
                && scopes.iter().any(|s| s == OFFLINE_ACCESS);
            let refresh = client_refresh_policy(refresh_fields, offline)
                .map_err(|e| format!("client {}: {e}", c.client_id))?;
            clients.push(Client {
                name: c.name.unwrap_or_else(|| c.client_id.clone()),
                client_id: c.client_id,
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                response_types,
                scopes,
                refresh,
                dpop: ClientDpop {
                    required: c.dpop_bound_access_tokens,
                    nonce_required: c.dpop_nonce_required,
                },
            });
        }
        if !client_ids.contains(&self.app_client_id) {
            return Err(format!(
                "app_client_id {:?} is not one of the clients",
                self.app_client_id
            ));
        }

        let mut ids = HashSet::new();
        let mut logins = HashSet::new();
        let mut users = Vec::with_capacity(self.users.len());
        for u in self.users {
            if u.id.is_empty() || !ids.insert(u.id.clone()) {
                return Err(format!("user id {:?} is empty or listed twice", u.id));
            }
            if u.login.is_empty() || !logins.insert(u.login.to_ascii_lowercase()) {
                return Err(format!("login {:?} is empty or listed twice", u.login));
            }
            if u.name.is_empty() {
                return Err(format!("user {}: name must not be empty", u.login));
            }
            let password: PasswordHash = u
                .password_hash
                .parse()
                .map_err(|e: PasswordHashError| format!("user {}: password_hash: {e}", u.login))?;
            if let Some(demo) = &u.demo_password {
                // The sign-in page shows it: it had better be right.
                if !password.verify(demo) {
                    return Err(format!(
                        "user {}: demo_password does not match password_hash",
                        u.login
                    ));
                }
            }
            if let Some(bad) = u.scopes.iter().find(|s| !supported.contains(s.as_str())) {
                return Err(format!(
                    "user {}: scope {bad:?} is not in scopes_supported",
                    u.login
                ));
            }
            if !u.scopes.iter().any(|s| s == "openid") {
                return Err(format!("user {}: scopes must include openid", u.login));
            }
            users.push(User {
                email: u.email.unwrap_or_else(|| u.login.clone()),
                id: u.id,
                login: u.login,
                name: u.name,
                password,
                demo_password: u.demo_password,
                scopes: u.scopes,
            });
        }
        if users.is_empty() {
            return Err("there must be at least one user".into());
        }

        Ok(Config {
            app_client_id: self.app_client_id,
            audience: self.audience,
            idp: self.idp,
            scopes_supported: self.scopes_supported,
            lifetimes,
            trusted_origins,
            clients,
            users,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_has_the_demo_users() {
        let config = Config::demo().unwrap();
        assert_eq!(config.app_client_id, "0oa-dev-spa");
        assert_eq!(config.audience, "api://default");
        let alice = config.user_by_login("Alice@Example.com").unwrap();
        // Hashes made by Python's hashlib: an independent PBKDF2.
        assert!(alice.password.verify("alice-password"));
        assert!(alice.scopes.contains(&"reports:read".to_owned()));
        let bob = config.user_by_login("bob@example.com").unwrap();
        assert!(bob.password.verify("bob-password"));
        assert!(!bob.scopes.contains(&"reports:read".to_owned()));
        let carol = config.user_by_login("carol@example.com").unwrap();
        assert!(carol.password.verify("carol-password"));
        assert_eq!(carol.email, "carol@example.com");
    }

    #[test]
    fn app_origin_adds_the_callback_and_logout_uris() {
        let mut config = Config::demo().unwrap();
        config
            .register_app_origin("http://localhost:3000/")
            .unwrap();
        config.register_app_origin("http://localhost:3000").unwrap();
        let client = config.client("0oa-dev-spa").unwrap();
        assert_eq!(
            client.redirect_uris,
            ["http://localhost:3000/login/callback"]
        );
        assert_eq!(client.post_logout_redirect_uris, ["http://localhost:3000/"]);
        assert!(client.has_redirect_uri("http://localhost:3000/login/callback"));
        assert!(!client.has_redirect_uri("http://localhost:3000/login/callback/"));

        for bad in ["localhost:3000", "http://x/path", "ftp://x", "http://x/?q"] {
            assert!(
                matches!(
                    config.register_app_origin(bad),
                    Err(ConfigError::AppOrigin(_))
                ),
                "{bad}"
            );
        }
    }

    fn with(change: impl FnOnce(&mut serde_json::Value)) -> Result<Config, ConfigError> {
        let mut value: serde_json::Value = serde_json::from_str(DEMO_CONFIG).unwrap();
        change(&mut value);
        Config::parse(&value.to_string(), "test config")
    }

    #[test]
    fn rejects_inconsistent_files() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 10] = [
            ("unknown field", |v| v["colour"] = "red".into()),
            ("app client", |v| v["app_client_id"] = "nope".into()),
            ("no openid", |v| {
                v["scopes_supported"] = serde_json::json!(["profile"])
            }),
            ("user scope", |v| {
                v["users"][0]["scopes"] = serde_json::json!(["openid", "admin"])
            }),
            ("fragment", |v| {
                v["clients"][0]["redirect_uris"] = serde_json::json!(["http://a/cb#x"])
            }),
            ("relative uri", |v| {
                v["clients"][0]["redirect_uris"] = serde_json::json!(["/cb"])
            }),
            ("demo password", |v| {
                v["users"][0]["demo_password"] = "wrong".into()
            }),
            ("hash", |v| v["users"][0]["password_hash"] = "plain".into()),
            ("duplicate login", |v| {
                v["users"][1]["login"] = "ALICE@example.com".into()
            }),
            ("lifetime", |v| v["access_token_lifetime_secs"] = 0.into()),
        ];
        for (name, change) in cases {
            assert!(with(change).is_err(), "{name} should be rejected");
        }
    }

    #[test]
    fn cors_origins_are_the_trusted_ones_and_the_redirect_uris_origins() {
        let mut config = with(|v| {
            v["trusted_origins"] = serde_json::json!(["http://localhost:8080/", "https://a.test"]);
            v["clients"][0]["redirect_uris"] = serde_json::json!([
                "https://a.test/cb",
                "http://localhost:4000/login/callback",
                "com.example.app:/callback"
            ]);
        })
        .unwrap();
        config.register_app_origin("http://localhost:3000").unwrap();
        assert_eq!(
            config.cors_origins(),
            [
                "http://localhost:8080",
                "https://a.test",
                "http://localhost:4000",
                "http://localhost:3000"
            ]
        );
        for bad in ["localhost:8080", "http://a.test/path", "ftp://a.test", "*"] {
            assert!(
                with(|v| v["trusted_origins"] = serde_json::json!([bad])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refresh_tokens_need_code_and_offline_access_and_sane_lifetimes() {
        let demo = Config::demo().unwrap();
        assert_eq!(demo.lifetimes.authorization_code_secs, 60);
        let app = demo.client("0oa-dev-spa").unwrap();
        assert_eq!(
            app.refresh,
            Some(RefreshPolicy {
                lifetime_secs: 90 * 86_400,
                idle_secs: 7 * 86_400,
                rotation_grace_secs: 30,
            })
        );
        assert_eq!(
            app.grant_types(),
            ["authorization_code", "implicit", "refresh_token"]
        );

        let fields = [
            "refresh_token_lifetime_secs",
            "refresh_token_idle_secs",
            "refresh_token_rotation_grace_secs",
        ];
        let set = |pairs: &[(&str, u64)]| {
            with(|v| {
                let client = v["clients"][0].as_object_mut().unwrap();
                for field in fields {
                    client.remove(field);
                }
                for (k, n) in pairs {
                    client.insert((*k).to_owned(), (*n).into());
                }
            })
        };
        let defaults = set(&[]).unwrap();
        assert_eq!(defaults.clients[0].refresh, app.refresh);
        // A short lifetime shortens the default idle time with it.
        let short = set(&[("refresh_token_lifetime_secs", 3600)]).unwrap();
        assert_eq!(
            short.clients[0]
                .refresh
                .map(|p| (p.lifetime_secs, p.idle_secs)),
            Some((3600, 3600))
        );
        for bad in [
            &[("refresh_token_rotation_grace_secs", 61)][..],
            &[("refresh_token_lifetime_secs", 59)],
            &[
                ("refresh_token_lifetime_secs", 3600),
                ("refresh_token_idle_secs", 3601),
            ],
            &[("refresh_token_idle_secs", 0)],
        ] {
            assert!(set(bad).is_err(), "{bad:?}");
        }
        assert!(set(&[("refresh_token_rotation_grace_secs", 0)]).is_ok());

        // Without offline_access, or without code, no refresh tokens.
        let no_offline = with(|v| {
            let client = v["clients"][0].as_object_mut().unwrap();
            for field in fields {
                client.remove(field);
            }
            client.insert("scopes".into(), serde_json::json!(["openid"]));
        })
        .unwrap();
        assert_eq!(no_offline.clients[0].refresh, None);
        assert_eq!(
            no_offline.clients[0].grant_types(),
            ["authorization_code", "implicit"]
        );
        let implicit_only = with(|v| {
            v["clients"][0]["response_types"] = serde_json::json!(["id_token token"]);
        });
        assert!(implicit_only.is_err(), "refresh settings without code");
        for code_lifetime in [0, 601] {
            assert!(
                with(|v| v["authorization_code_lifetime_secs"] = code_lifetime.into()).is_err()
            );
        }
    }

    #[test]
    fn error_names_the_source() {
        let err = Config::parse("{", "the file x.json").unwrap_err();
        assert!(err.to_string().starts_with("the file x.json is not valid"));
    }
}
