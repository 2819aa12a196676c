//! The embedded Okta-compatible development authorization server.
//!
//! It behaves like Okta's custom authorization server for the implicit
//! flow and for the authorization code flow with PKCE and rotating refresh
//! tokens, so the app signs in on a fresh machine with no Okta account, the
//! browser tests sign in over real HTTP redirects, and Okta's own browser
//! SDK (okta-auth-js) works against it unchanged. The app's server starts
//! it with [`start`] when `ISSUER` is unset; `cargo run -p server --bin
//! dev-idp` runs it on its own. Under the issuer
//! `http://{DEV_IDP_ADDR}/oauth2/default` it serves:
//!
//! | path | what |
//! |---|---|
//! | `/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server` | discovery ([`discovery`]) |
//! | `/v1/authorize` (GET) | the authorization endpoint ([`authorize`]), answering in a [`response_mode`] ([`post_message`] for `okta_post_message`) |
//! | `/v1/sign-in` (POST) | the sign-in form's target ([`sign_in`]) |
//! | `/v1/token` (POST) | the token endpoint: codes and refresh tokens, Bearer or DPoP-bound ([`token_endpoint`], [`dpop`]) |
//! | `/v1/keys` | the JWKS ([`keys`]) |
//! | `/v1/userinfo` (GET, POST) | the OpenID Connect UserInfo endpoint ([`userinfo`]) |
//! | `/v1/revoke` (POST) | token revocation, RFC 7009 ([`revoke`]) |
//! | `/v1/introspect` (POST) | token introspection, RFC 7662 ([`introspect`]) |
//! | `/v1/logout` (GET) | RP-initiated logout ([`logout`]) |
//! | `/dev/…` (POST) | test controls, only with `enable_control` ([`control`]) |
//!
//! The files, in the order a sign-in passes through them (the code flow's
//! steps are marked *code*):
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the clients, users, scopes and lifetimes (`dev-idp.json`) |
//! | [`cors`] | CORS for the trusted origins, around every fetch endpoint |
//! | [`discovery`] | the discovery documents and the JWKS document |
//! | [`params`] | strict reading of query strings and form bodies |
//! | [`authorize`] | checking an authorization request |
//! | [`response_type`] | what `response_type` asks for: `code`, or tokens |
//! | [`pkce`] | *code*: the S256 challenge and its verifier |
//! | [`request`] | the checked request, and the error redirect that answers it |
//! | [`sign_in`] | the sign-in form and its post |
//! | [`html`] | the sign-in, error and signed-out pages |
//! | [`password`] | the users' password hashes |
//! | [`session`] | sessions and pending sign-ins, by random id, bounded |
//! | [`answer`] | answering a request for a signed-in session: a code, or tokens |
//! | [`codes`] | *code*: the authorization codes, single use, bounded |
//! | [`tokens`] | the access and ID tokens, signed |
//! | [`keys`] | the signing keys, their rotation and the JWKS |
//! | [`response_mode`] | how the answer reaches the client: a query or fragment redirect, or [`post_message`] |
//! | [`post_message`] | the `okta_post_message` page |
//! | [`token_endpoint`] | *code*: exchanging the code, and refreshing |
//! | [`dpop`] | *code*: DPoP proofs at the token endpoint, its nonces and replay cache |
//! | [`client_auth`] | which client calls the token, revoke or introspect endpoint |
//! | [`oauth_error`] | the JSON errors of the endpoints a client calls |
//! | [`refresh`] | *code*: refresh token families: rotation, grace, reuse, bounded |
//! | [`token_check`] | is this a live access token of ours? (and the revoked ones) |
//! | [`userinfo`] | the claims an access token releases |
//! | [`introspect`] | what a token is (RFC 7662) |
//! | [`revoke`] | revoking a token (RFC 7009) |
//! | [`logout`] | ending the session, and its refresh tokens |
//! | [`control`] | the test controls |
//!
//! It is for development only: it shows its demo users' passwords on the
//! sign-in page, keeps everything in memory and speaks plain HTTP.

mod answer;
mod authorize;
mod client_auth;
mod codes;
mod config;
mod control;
mod cors;
mod discovery;
mod dpop;
mod html;
mod introspect;
mod keys;
mod logout;
mod oauth_error;
mod params;
mod password;
mod pkce;
mod post_message;
mod refresh;
mod request;
mod response_mode;
mod response_type;
mod revoke;
mod session;
mod sign_in;
mod token_check;
mod token_endpoint;
mod tokens;
mod userinfo;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEPALIVE_IDLE,
    DEFAULT_SEND_TIMEOUT,
};
use crate::edge::serve::{
    bind as listen, default_max_connections, descriptor_limit, ServeOptions, Server,
};

pub use config::{Client, Config, ConfigError, Lifetimes, RefreshPolicy, User, DEMO_CONFIG};
pub use keys::KeyError;
pub use password::hash_password;
pub use tokens::{AccessTokenClaims, IdTokenClaims};

use codes::CodeStore;
use cors::TrustedOrigins;
use keys::{KeyStore, SigningKey};
use refresh::RefreshStore;
use session::{ExpiringMap, Session};
use sign_in::PendingSignIn;
use token_check::RevokedTokens;

/// The path of the issuer under the server's origin, as Okta's `default`
/// custom authorization server.
pub const ISSUER_PATH: &str = "/oauth2/default";

/// How long a sign-in page stays usable.
const PENDING_SIGN_IN_TTL: Duration = Duration::from_secs(10 * 60);
/// At most this many sessions are kept.
const MAX_SESSIONS: usize = 10_000;
/// At most this many sign-in pages are open at once; each holds a request
/// of up to 8 KiB, so this bounds their memory to a few MiB.
const MAX_PENDING_SIGN_INS: usize = 1_000;
/// At most this many authorization codes are kept, live or recently spent;
/// each holds a request's worth of text, like a pending sign-in.
const MAX_CODES: usize = 10_000;
/// At most this many refresh token families are live: a few hundred bytes
/// each, and a few KiB with their access tokens.
const MAX_REFRESH_FAMILIES: usize = 10_000;

/// How to run the dev authorization server.
#[derive(Debug, Clone)]
pub struct DevIdpOptions {
    /// `HOST:PORT` to listen on (`DEV_IDP_ADDR`), also the issuer's
    /// authority. `localhost` listens on 127.0.0.1 and, if it can, on ::1.
    /// Port 0 picks a free port.
    pub addr: String,
    /// The config file (`DEV_IDP_CONFIG`); `None` uses the built-in demo.
    pub config_path: Option<PathBuf>,
    /// The app's public origin, e.g. `http://localhost:3000`: its
    /// `/login/callback` and `/` are registered for the app's client.
    /// Empty registers nothing.
    pub app_origin: String,
    /// Serve the `/dev/…` test controls (`DEV_IDP_CONTROL=1`).
    pub enable_control: bool,
}

impl Default for DevIdpOptions {
    fn default() -> Self {
        Self {
            addr: "localhost:3100".into(),
            config_path: None,
            app_origin: "http://localhost:3000".into(),
            enable_control: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("DEV_IDP_ADDR {0:?} is not HOST:PORT (for example localhost:3100)")]
    Addr(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} (DEV_IDP_ADDR): {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the dev authorization server's signing key: {0}")]
    Key(#[from] KeyError),
    #[error("the dev authorization server's public origin {0:?} is not an http(s) origin")]
    Origin(String),
    #[error("the dev authorization server's start-up task failed: {0}")]
    Task(String),
    #[error("the system random generator failed")]
    Random,
}

/// What the dev server counts, for the app's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevIdpEvent {
    /// A password sign-in that succeeded.
    SignedIn,
    /// A sign-in with a wrong username or password.
    WrongCredentials,
    /// An authorization request or sign-in form refused as invalid (an
    /// error page or an error redirect).
    InvalidRequest,
    /// `prompt=none` without a session: `login_required`.
    LoginRequired,
    /// A sign-in form posted from another site or browser.
    Refused,
    /// The server could not issue tokens or start a session.
    ServerError,
}

impl DevIdpEvent {
    pub const ALL: [DevIdpEvent; 6] = [
        DevIdpEvent::SignedIn,
        DevIdpEvent::WrongCredentials,
        DevIdpEvent::InvalidRequest,
        DevIdpEvent::LoginRequired,
        DevIdpEvent::Refused,
        DevIdpEvent::ServerError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DevIdpEvent::SignedIn => "ok",
            DevIdpEvent::WrongCredentials => "wrong_credentials",
            DevIdpEvent::InvalidRequest => "invalid_request",
            DevIdpEvent::LoginRequired => "login_required",
            DevIdpEvent::Refused => "refused",
            DevIdpEvent::ServerError => "server_error",
        }
    }

    /// The metric it is counted in.
    pub fn metric(self) -> &'static str {
        match self {
            DevIdpEvent::SignedIn | DevIdpEvent::WrongCredentials => "dev_idp_sign_ins_total",
            _ => "dev_idp_errors_total",
        }
    }
}

/// The dev server's counts of [`DevIdpEvent`]s; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DevIdpStats(Arc<[AtomicU64; 6]>);

impl DevIdpStats {
    pub fn record(&self, event: DevIdpEvent) {
        self.0[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, event: DevIdpEvent) -> u64 {
        self.0[event as usize].load(Ordering::Relaxed)
    }
}

/// The shared state of the handlers.
#[derive(Clone)]
pub struct DevIdpState {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    /// `http://host:port`, what a same-origin form post sends as `Origin`.
    origin: String,
    config: Config,
    keys: KeyStore,
    sessions: ExpiringMap<Session>,
    pending: ExpiringMap<PendingSignIn>,
    /// Authorization codes, live and recently spent.
    codes: CodeStore,
    /// Refresh token families.
    refresh: RefreshStore,
    /// Token lifetimes set through the control, by login.
    lifetime_overrides: Mutex<HashMap<String, u64>>,
    /// Refresh token lifetimes set through the control, by login.
    refresh_overrides: Mutex<HashMap<String, RefreshOverride>>,
    /// The origins the CORS endpoints answer.
    cors: TrustedOrigins,
    /// Access tokens revoked before their expiry.
    revoked: RevokedTokens,
    /// The token endpoint's DPoP nonces and replay cache.
    dpop: dpop::TokenEndpointDpop,
    enable_control: bool,
    /// Cookie names carry the port: cookies ignore ports, and two dev
    /// servers on one host must not read each other's cookies.
    session_cookie: String,
    binding_cookie: String,
    /// The session cookie's `SameSite` (and `Secure`), as Okta's: see
    /// [`session::session_same_site`].
    session_same_site: &'static str,
    stats: DevIdpStats,
}

impl DevIdpState {
    /// State for a server reached at `origin` (`http://localhost:3100`),
    /// with a freshly generated signing key. Generating the key takes a
    /// moment: call this off the async executor.
    pub fn new(origin: &str, config: Config, enable_control: bool) -> Result<Self, DevIdpError> {
        let url = url::Url::parse(origin).map_err(|_| DevIdpError::Origin(origin.into()))?;
        let port = url
            .port_or_known_default()
            .filter(|_| matches!(url.scheme(), "http" | "https") && url.path() == "/")
            .ok_or_else(|| DevIdpError::Origin(origin.into()))?;
        let origin = url.origin().ascii_serialization();
        let key = SigningKey::generate()?;
        let session_ttl = Duration::from_secs(config.lifetimes.session_secs);
        let code_ttl = Duration::from_secs(config.lifetimes.authorization_code_secs);
        let refresh = RefreshStore::new(MAX_REFRESH_FAMILIES).ok_or(DevIdpError::Random)?;
        let issuer = format!("{origin}{ISSUER_PATH}");
        let dpop = dpop::TokenEndpointDpop::new(&issuer).ok_or(DevIdpError::Random)?;
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                dpop,
                origin,
                keys: KeyStore::new(key),
                sessions: ExpiringMap::new(session_ttl, MAX_SESSIONS),
                pending: ExpiringMap::new(PENDING_SIGN_IN_TTL, MAX_PENDING_SIGN_INS),
                codes: CodeStore::new(code_ttl, MAX_CODES),
                refresh,
                lifetime_overrides: Mutex::new(HashMap::new()),
                refresh_overrides: Mutex::new(HashMap::new()),
                cors: TrustedOrigins::from_config(&config),
                revoked: RevokedTokens::new(token_check::MAX_REVOKED),
                enable_control,
                session_cookie: format!("dev_idp_session_{port}"),
                binding_cookie: format!("dev_idp_signin_{port}"),
                session_same_site: session::session_same_site(&url),
                stats: DevIdpStats::default(),
                config,
            }),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Its counts of sign-ins and errors.
    pub fn stats(&self) -> &DevIdpStats {
        &self.inner.stats
    }

    fn record(&self, event: DevIdpEvent) {
        self.inner.stats.record(event);
    }

    /// Whether `origin` (an `Origin` header) is this server's own: its
    /// configured origin, or the name the request reached it by (127.0.0.1
    /// rather than localhost), which the browser also counts as same-origin.
    fn is_own_origin(&self, origin: &str, headers: &HeaderMap) -> bool {
        if origin == self.inner.origin {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        !host.is_empty() && origin.strip_prefix("http://") == Some(host)
    }

    /// The browser's live session and its id, if its cookie names one.
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = session::read_cookie(headers, &self.inner.session_cookie)?;
        let session = self.inner.sessions.get(id)?;
        Some((id.to_owned(), session))
    }

    /// Ends the session `id` (a sign-out): its codes not yet exchanged and
    /// its refresh tokens die with it.
    fn end_session(&self, id: &str) {
        self.inner.sessions.remove(id);
        self.inner.codes.spend_where(|g| g.session_id == id);
        let revoked = self.inner.refresh.revoke_where(|g| g.session_id == id);
        if revoked > 0 {
            tracing::info!(
                families = revoked,
                "refresh tokens revoked with their session"
            );
        }
    }

    /// Ends every session of `login`, as an expired or revoked Okta
    /// session, with the user's codes not yet exchanged and refresh tokens;
    /// returns how many sessions there were.
    fn end_sessions_of(&self, login: &str) -> usize {
        let ended = self.inner.sessions.remove_where(|s| s.login == login);
        self.inner.codes.spend_where(|g| g.login == login);
        let revoked = self.inner.refresh.revoke_where(|g| g.login == login);
        if revoked > 0 {
            tracing::info!(%login, families = revoked, "refresh tokens revoked with their sessions");
        }
        ended
    }

    /// The refresh token policy for `login`'s tokens of a client whose
    /// policy is `configured`: with what the control set for the user on
    /// top.
    fn refresh_policy(&self, configured: RefreshPolicy, login: &str) -> RefreshPolicy {
        let overrides = self
            .inner
            .refresh_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match overrides.get(login) {
            Some(o) => o.apply(configured),
            None => configured,
        }
    }

    /// Revokes access tokens (`jti`, `exp`) before their expiry, as a
    /// revoked refresh token's family takes its access tokens with it.
    fn revoke_access_tokens(&self, tokens: &[(String, u64)]) {
        let now = tokens::now();
        for (jti, exp) in tokens {
            if let Err(err) = self.inner.revoked.revoke(jti, *exp, now) {
                // The token stays valid until its `exp`; the list frees up
                // as the revoked tokens expire.
                tracing::error!(%err, %jti, "cannot record a revocation");
            }
        }
    }

    fn set_refresh_override(&self, login: &str, value: RefreshOverride) {
        let mut overrides = self
            .inner
            .refresh_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if value == RefreshOverride::default() {
            overrides.remove(login);
        } else {
            overrides.insert(login.to_owned(), value);
        }
    }

    /// (access token, ID token) lifetimes in seconds for `login`.
    fn token_lifetimes(&self, login: &str) -> (u64, u64) {
        let overrides = self
            .inner
            .lifetime_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match overrides.get(login) {
            Some(&secs) => (secs, secs),
            None => (
                self.inner.config.lifetimes.access_token_secs,
                self.inner.config.lifetimes.id_token_secs,
            ),
        }
    }

    fn set_token_lifetime(&self, login: &str, seconds: Option<u64>) {
        let mut overrides = self
            .inner
            .lifetime_overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match seconds {
            Some(secs) => overrides.insert(login.to_owned(), secs),
            None => overrides.remove(login),
        };
    }
}

/// Refresh token lifetimes the test control sets for one user's tokens;
/// `None` keeps the client's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RefreshOverride {
    lifetime_secs: Option<u64>,
    idle_secs: Option<u64>,
    rotation_grace_secs: Option<u64>,
}

impl RefreshOverride {
    fn apply(self, policy: RefreshPolicy) -> RefreshPolicy {
        RefreshPolicy {
            lifetime_secs: self.lifetime_secs.unwrap_or(policy.lifetime_secs),
            idle_secs: self.idle_secs.unwrap_or(policy.idle_secs),
            rotation_grace_secs: self
                .rotation_grace_secs
                .unwrap_or(policy.rotation_grace_secs),
        }
    }
}

/// The routes, for [`start`] or to drive with `tower::ServiceExt::oneshot`.
pub fn router(state: DevIdpState) -> Router {
    let mut issuer_routes = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::authorization_server_metadata),
        )
        .route("/v1/keys", get(discovery::keys))
        .route("/v1/authorize", get(authorize::authorize))
        .route(
            sign_in::SIGN_IN_PATH,
            post(sign_in::submit).layer(DefaultBodyLimit::max(params::MAX_INPUT_BYTES)),
        )
        .route(
            "/v1/userinfo",
            get(userinfo::userinfo)
                .post(userinfo::userinfo)
                .layer(DefaultBodyLimit::max(params::MAX_INPUT_BYTES)),
        )
        .route(
            "/v1/token",
            post(token_endpoint::token).layer(DefaultBodyLimit::max(params::MAX_INPUT_BYTES)),
        )
        .route(
            "/v1/revoke",
            post(revoke::revoke).layer(DefaultBodyLimit::max(params::MAX_INPUT_BYTES)),
        )
        .route(
            "/v1/introspect",
            post(introspect::introspect).layer(DefaultBodyLimit::max(params::MAX_INPUT_BYTES)),
        )
        .route("/v1/logout", get(logout::logout));
    if state.inner.enable_control {
        issuer_routes = issuer_routes.merge(control::routes());
    }
    Router::new()
        .nest(ISSUER_PATH, issuer_routes)
        .fallback(|| async { html::not_found() })
        // Around everything, so that it answers preflights before the
        // routes (which know no OPTIONS) would answer 405.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::cors,
        ))
        .with_state(state)
}

/// A running dev authorization server. Dropping this handle leaves the
/// server running; [`RunningDevIdp::shutdown`] stops it.
#[derive(Debug)]
pub struct RunningDevIdp {
    /// `http://{host}:{port}/oauth2/default`.
    pub issuer: String,
    /// The app's client (`0oa-dev-spa` in the demo config).
    pub client_id: String,
    /// The `aud` of the access tokens it issues.
    pub audience: String,
    /// The first address it listens on (127.0.0.1 for `localhost`).
    pub local_addr: SocketAddr,
    /// Its counts of sign-ins and errors.
    pub stats: DevIdpStats,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningDevIdp {
    /// Stops accepting connections and waits for open ones to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (only if it fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads the config, listens on `opts.addr`, and serves in the background.
/// Returns once the server is listening.
pub async fn start(opts: DevIdpOptions) -> Result<RunningDevIdp, DevIdpError> {
    let (host, port) =
        split_host_port(&opts.addr).ok_or_else(|| DevIdpError::Addr(opts.addr.clone()))?;

    // Checking the demo passwords against their hashes is CPU work.
    let config_path = opts.config_path.clone();
    let mut config = tokio::task::spawn_blocking(move || match config_path {
        Some(path) => Config::load(&path),
        None => Config::demo(),
    })
    .await
    .map_err(|e| DevIdpError::Task(e.to_string()))??;
    config.register_app_origin(&opts.app_origin)?;
    let client_id = config.app_client_id.clone();
    let audience = config.audience.clone();

    let listeners = bind(&host, port)
        .await
        .map_err(|source| DevIdpError::Bind {
            addr: opts.addr.clone(),
            source,
        })?;
    let local_addr = listeners[0]
        .local_addr()
        .map_err(|source| DevIdpError::Bind {
            addr: opts.addr.clone(),
            source,
        })?;
    let origin = format!("http://{host}:{}", local_addr.port());
    let enable_control = opts.enable_control;
    let state =
        tokio::task::spawn_blocking(move || DevIdpState::new(&origin, config, enable_control))
            .await
            .map_err(|e| DevIdpError::Task(e.to_string()))??;
    let issuer = state.issuer().to_owned();
    let stats = state.stats().clone();
    let app = router(state);

    let (shutdown, shutdown_rx) = watch::channel(false);
    let options = serve_options(listeners.len());
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let server = Server::new(listener, options.clone());
            let (app, rx) = (app.clone(), shutdown_rx.clone());
            tokio::spawn(server.run(app, shutdown_requested(rx)))
        })
        .collect();
    let task = tokio::spawn(async move {
        for server in servers {
            let _ = server.await;
        }
    });

    tracing::info!(%issuer, %client_id, control = enable_control, "dev authorization server listening");
    Ok(RunningDevIdp {
        issuer,
        client_id,
        audience,
        local_addr,
        stats,
        shutdown,
        task,
    })
}

/// The app's connection loop (`crate::edge::serve`) with its default deadlines
/// and a quarter of its default cap, shared among the `listeners`: the dev
/// server shares the process's descriptors with the app, and under
/// `axum::serve` a flood of half-open connections against it (reachable by
/// others with `DEV_IDP=1`) took them all, the app's listener's included.
fn serve_options(listeners: usize) -> ServeOptions {
    let app_cap = default_max_connections(descriptor_limit().unwrap_or(1024));
    ServeOptions {
        header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        keepalive_idle: DEFAULT_KEEPALIVE_IDLE,
        body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        send_timeout: DEFAULT_SEND_TIMEOUT,
        max_connections: app_cap / 4 / listeners.max(1),
        shutdown_grace: None,
    }
}

/// Resolves when `true` is sent; never, if the sender is dropped.
async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `localhost:3100` → (`localhost`, 3100); `[::1]:0` → (`[::1]`, 0). The
/// host is kept as written, since it becomes the issuer's authority.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let valid = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    valid.then(|| (host.to_owned(), port))
}

async fn bind(host: &str, port: u16) -> std::io::Result<Vec<TcpListener>> {
    if host.eq_ignore_ascii_case("localhost") {
        // Browsers may resolve localhost to ::1 and reqwest to 127.0.0.1:
        // answer on both, on the port the first one got.
        let v4 = listen((Ipv4Addr::LOCALHOST, port).into())?;
        let port = v4.local_addr()?.port();
        let mut listeners = vec![v4];
        match listen((Ipv6Addr::LOCALHOST, port).into()) {
            Ok(v6) => listeners.push(v6),
            Err(err) => tracing::debug!(%err, "dev authorization server: not listening on [::1]"),
        }
        return Ok(listeners);
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![listen((ip, port).into())?]);
    }
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    Ok(vec![listen(addr)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        assert_eq!(
            split_host_port("localhost:3100"),
            Some(("localhost".into(), 3100))
        );
        assert_eq!(split_host_port("[::1]:0"), Some(("[::1]".into(), 0)));
        assert_eq!(
            split_host_port("127.0.0.1:80"),
            Some(("127.0.0.1".into(), 80))
        );
        for bad in [
            "localhost",
            ":3100",
            "::1:3100",
            "[nope]:1",
            "host:99999",
            "a b:1",
            "x/y:1",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }
}
