//! `server doctor` (`./dev.sh doctor`): checks the configuration against the
//! live issuer before anyone signs in, and says what to change.
//!
//! It reads the same settings as the server ([`Config`]), then fetches the
//! issuer's discovery document and JWKS, and sends the authorize endpoint
//! one `prompt=none` request with the configured client, redirect URI,
//! response type and scopes (following no redirect and sending no cookie),
//! the request a signed-out browser's silent renewal would send. Each check
//! is a [`Check`]: a line with ✓ (passes), ! (a warning), · (for
//! information) or ✗ (fails, with the fix in one sentence). With
//! `--token <access token>` (or `--token -`, read from standard input) it
//! also validates that token exactly as the server would and prints its
//! claims and the rule, if any, that refuses it. The token itself is never
//! printed. With `ISSUER` unset it starts the embedded development
//! authorization server on a free port and checks that.
//!
//! Exit status: 0 when no check fails (warnings allowed), 1 when one does,
//! 2 with one line on standard error for a bad setting or bad arguments, as
//! the server does. The checks are plain functions of the fetched documents
//! and answers, unit-tested below; `server/tests/doctor.rs` runs the whole
//! thing against the dev server and stub issuers over loopback.

use std::fmt;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::bearer::discovery::discovery_url;
use crate::bearer::fetch::{checked_url, error_chain, HttpClient};
use crate::bearer::keys::KeySet;
use crate::bearer::{
    jws, AuthError, CacheOptions, FetchError, HttpOptions, Policy, TokenError, Validator,
    ValidatorOptions,
};
use crate::config::Config;
use crate::dev_idp::{self, DevIdpOptions};

const USAGE: &str =
    "usage: server doctor [--token <access token> | --token -]  (- reads the token from standard input)";

/// Exit status when a check fails.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for a bad setting or bad arguments.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// Most bytes of an authorize answer read (error pages are a few KiB).
const MAX_PAGE_BYTES: usize = 64 * 1024;
/// Most bytes read from standard input for `--token -`.
const MAX_TOKEN_INPUT: u64 = 64 * 1024;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Worth knowing; does not fail the run.
    Warn,
    /// A report (claims, cache lifetime), neither good nor bad.
    Info,
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    pub line: String,
    /// For a failure or a warning: what to do, in one sentence.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(line: impl Into<String>) -> Self {
        Check {
            status: Status::Pass,
            line: line.into(),
            fix: None,
        }
    }

    pub fn info(line: impl Into<String>) -> Self {
        Check {
            status: Status::Info,
            line: line.into(),
            fix: None,
        }
    }

    pub fn warn(line: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Warn,
            line: line.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(line: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Fail,
            line: line.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Info => "·",
            Status::Fail => "✗",
        };
        write!(f, "{mark} {}", self.line)?;
        match (&self.fix, self.status) {
            (Some(fix), Status::Fail) => write!(f, " — fix: {fix}"),
            (Some(fix), _) => write!(f, " — {fix}"),
            (None, _) => Ok(()),
        }
    }
}

/// Every check of one run, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// 0 when nothing failed, else [`EXIT_FAILED`].
    pub fn exit_code(&self) -> u8 {
        if self.failed() {
            EXIT_FAILED
        } else {
            0
        }
    }

    /// The lines as printed.
    pub fn lines(&self) -> Vec<String> {
        self.checks.iter().map(ToString::to_string).collect()
    }
}

/// Prints each check as it is made (a slow issuer shows where it is slow)
/// and keeps it for the report.
struct Sink<'a> {
    out: &'a mut dyn Write,
    report: Report,
}

impl Sink<'_> {
    fn push(&mut self, check: Check) {
        // A closed stdout must not stop the checks; the exit status still
        // tells.
        let _ = writeln!(self.out, "{check}");
        let _ = self.out.flush();
        self.report.checks.push(check);
    }
}

/// What a run needs besides the configuration.
#[derive(Clone, Default)]
pub struct Options {
    /// An access token to validate (`--token`). Never printed.
    pub token: Option<String>,
    pub http: HttpOptions,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("http", &self.http)
            .finish()
    }
}

/// `server doctor [args]`: reads the configuration the server reads, runs
/// the checks, prints them on standard output.
pub async fn main(args: &[String]) -> ExitCode {
    let token = match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Check { token }) => token,
        Err(message) => return bad_config(&format!("{message}; {USAGE}")),
    };
    let token = match token {
        None => None,
        Some(TokenArg::Value(token)) => Some(token),
        Some(TokenArg::Stdin) => match read_token(std::io::stdin().lock()) {
            Ok(token) => Some(token),
            Err(message) => return bad_config(&message),
        },
    };
    // The one Leptos setting the configuration depends on, read as Leptos
    // reads it (its get_configuration also wants the build's output name,
    // which a doctor run has no use for and would complain about).
    let site_addr = match std::env::var("LEPTOS_SITE_ADDR") {
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        Ok(value) => match value.parse() {
            Ok(addr) => addr,
            Err(_) => {
                return bad_config(&format!(
                    "LEPTOS_SITE_ADDR is not valid: {:?} is not an address such as 127.0.0.1:3000",
                    printable(&value)
                ))
            }
        },
    };
    let config = match Config::from_env(site_addr) {
        Ok(config) => config,
        Err(err) => return bad_config(&err.to_string()),
    };
    let options = Options {
        token,
        http: HttpOptions::default(),
    };
    match run(&config, &options, &mut std::io::stdout()).await {
        Ok(report) => ExitCode::from(report.exit_code()),
        Err(line) => bad_config(&line),
    }
}

fn bad_config(line: &str) -> ExitCode {
    eprintln!("error: {line}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Check { token: Option<TokenArg> },
    Help,
}

#[derive(Debug, PartialEq, Eq)]
enum TokenArg {
    Value(String),
    Stdin,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut token = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--token" => args.next().ok_or("--token needs a value")?.clone(),
            other => match other.strip_prefix("--token=") {
                Some(value) => value.to_owned(),
                // Not echoed: it may be a token pasted in the wrong place.
                None => return Err("unknown argument".into()),
            },
        };
        if token.is_some() {
            return Err("--token is given twice".into());
        }
        token = Some(if value == "-" {
            TokenArg::Stdin
        } else {
            TokenArg::Value(clean_token(&value).ok_or("--token is empty")?)
        });
    }
    Ok(Command::Check { token })
}

/// The token on `input`, without surrounding white space or a `Bearer `
/// prefix.
fn read_token(input: impl Read) -> Result<String, String> {
    let mut text = String::new();
    input
        .take(MAX_TOKEN_INPUT)
        .read_to_string(&mut text)
        .map_err(|err| format!("cannot read the token from standard input: {err}"))?;
    clean_token(&text).ok_or_else(|| "--token -: standard input holds no token".into())
}

fn clean_token(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .unwrap_or(text)
        .trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The issuer under check.
struct Target {
    issuer: String,
    client_id: String,
    /// The `aud` its access tokens carry, when it can be known without
    /// signing in (the embedded dev server).
    known_audience: Option<String>,
}

/// Runs every check for `config`, printing each line to `out` as it is
/// made. `Err` is a one-line reason the checks could not start (the embedded
/// dev server failed to start), for exit status 2.
pub async fn run(
    config: &Config,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Report, String> {
    let mut sink = Sink {
        out,
        report: Report::default(),
    };
    match &config.issuer {
        Some(issuer) => {
            let client_id = config
                .client_id
                .clone()
                .ok_or("CLIENT_ID must be set: ISSUER is set, so the app's client id at that issuer is needed")?;
            sink.push(issuer_setting(issuer));
            let target = Target {
                issuer: issuer.clone(),
                client_id,
                known_audience: None,
            };
            check_issuer(&target, config, options, &mut sink).await;
        }
        None => {
            let running = dev_idp::start(DevIdpOptions {
                addr: any_port(&config.dev_idp.addr),
                config_path: config.dev_idp.config_path.clone(),
                app_origin: config.public_origin.clone(),
                enable_control: false,
            })
            .await
            .map_err(|err| {
                format!(
                    "cannot start the development authorization server (ISSUER is not set): {err}"
                )
            })?;
            sink.push(Check::pass(format!(
                "ISSUER is not set: the server uses the embedded development authorization server \
                 (on {}); checking one started for this check at {}",
                config.dev_idp.addr, running.issuer
            )));
            let target = Target {
                issuer: running.issuer.clone(),
                client_id: config
                    .client_id
                    .clone()
                    .unwrap_or_else(|| running.client_id.clone()),
                known_audience: Some(running.audience.clone()),
            };
            check_issuer(&target, config, options, &mut sink).await;
            running.shutdown().await;
        }
    }
    Ok(sink.report)
}

/// `DEV_IDP_ADDR`'s host with port 0, so the check never collides with a
/// running server.
fn any_port(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    format!("{host}:0")
}

async fn check_issuer(target: &Target, config: &Config, options: &Options, sink: &mut Sink<'_>) {
    let http = match HttpClient::new(&options.http) {
        Ok(http) => http,
        Err(err) => {
            sink.push(Check::fail(
                format!("cannot build an HTTP client: {err}"),
                "this machine's TLS set-up is broken; reinstall its CA certificates",
            ));
            return;
        }
    };

    // What the issuer URL alone tells (on an Okta domain).
    let issuer_url = Url::parse(&target.issuer).ok();
    let okta_host = issuer_url
        .as_ref()
        .and_then(Url::host_str)
        .is_some_and(is_okta_host);
    if let Some(issuer_url) = &issuer_url {
        if let Some(check) = org_authorization_server(issuer_url, None) {
            sink.push(check);
        }
        if let Some(check) = okta_client_id(issuer_url, &target.client_id) {
            sink.push(check);
        }
    }

    // Discovery.
    let url = match discovery_url(&target.issuer) {
        Ok(url) => url,
        Err(err) => {
            sink.push(Check::fail(
                err.to_string(),
                "set ISSUER to the authorization server's issuer URL",
            ));
            return;
        }
    };
    let body = match http.get(&url).await {
        Ok(fetched) => fetched.body,
        Err(err) => {
            sink.push(discovery_unreachable(&url, &err));
            return;
        }
    };
    let doc = match Metadata::parse(&body) {
        Ok(doc) => doc,
        Err(reason) => {
            sink.push(Check::fail(
                format!("{url} is not an OpenID Connect discovery document: {reason}"),
                "set ISSUER to the authorization server's issuer (Okta: its Issuer URI, e.g. https://<org>.okta.com/oauth2/default)",
            ));
            return;
        }
    };
    sink.push(issuer_matches(&target.issuer, &doc.issuer));
    // An org server elsewhere (a custom domain) shows itself by its layout.
    if let Some(issuer_url) = issuer_url.as_ref().filter(|_| !okta_host) {
        if let Some(check) = org_authorization_server(issuer_url, Some(&doc)) {
            sink.push(check);
        }
    }
    for check in metadata_checks(&doc, config) {
        sink.push(check);
    }

    // Keys.
    let jwks_uri = match doc.jwks_uri.as_deref() {
        None => {
            sink.push(Check::fail(
                "the discovery document has no jwks_uri, so no token can be validated",
                "ISSUER must be an OpenID Connect issuer that publishes its signing keys",
            ));
            None
        }
        Some(raw) => match checked_url("jwks_uri", raw) {
            Ok(url) => Some(url),
            Err(err) => {
                sink.push(Check::fail(
                    err.to_string(),
                    "the issuer must publish its keys over https",
                ));
                None
            }
        },
    };
    if let Some(jwks_uri) = &jwks_uri {
        match http.get(jwks_uri).await {
            Ok(fetched) => {
                for check in jwks_checks(jwks_uri, &fetched.body, fetched.max_age) {
                    sink.push(check);
                }
            }
            Err(err) => sink.push(Check::fail(
                format!("cannot fetch the JWKS at {jwks_uri}: {err}"),
                "the jwks_uri of the discovery document must be reachable from this server",
            )),
        }
    }

    // The authorize endpoint.
    sink.push(probe(target, config, &doc, &options.http).await);

    // Audience, and the token if there is one.
    sink.push(audience_check(
        &config.audience,
        target.known_audience.as_deref(),
        okta_host,
        options.token.is_some(),
    ));
    if let Some(token) = &options.token {
        if let Some(claims) = describe_claims(token, now_secs()) {
            sink.push(Check::info(format!(
                "the token's claims (as sent, before any check): {claims}"
            )));
        }
        sink.push(check_token(token, target, config, jwks_uri, &options.http).await);
    }
}

fn issuer_setting(issuer: &str) -> Check {
    match checked_url("ISSUER", issuer) {
        Ok(url) if url.scheme() == "https" => {
            Check::pass(format!("ISSUER {issuer} is an https URL"))
        }
        Ok(_) => Check::pass(format!(
            "ISSUER {issuer} is an http URL on a loopback host (allowed for development)"
        )),
        // Config refuses these before the checks start.
        Err(err) => Check::fail(
            err.to_string(),
            "set ISSUER to an https URL (http only for localhost)",
        ),
    }
}

fn discovery_unreachable(url: &Url, err: &FetchError) -> Check {
    match err {
        FetchError::Status(404) => Check::fail(
            format!("{url} answered HTTP 404: there is no authorization server at ISSUER's path"),
            "copy the authorization server's issuer exactly into ISSUER (Okta: Security > API > Authorization Servers > Issuer URI, e.g. https://<org>.okta.com/oauth2/default)",
        ),
        FetchError::Status(status @ (401 | 403)) => Check::fail(
            format!("{url} answered HTTP {status}"),
            "at Okta this means the org has no API Access Management (E0000015): use an org that has it, such as an Integrator Free Plan org (docs/okta.md § 1)",
        ),
        FetchError::Status(status) => Check::fail(
            format!("{url} answered HTTP {status}"),
            "check ISSUER, and retry if the issuer is having trouble",
        ),
        FetchError::Transport(reason) | FetchError::Timeout(reason) => Check::fail(
            format!("cannot reach the issuer: GET {url} failed: {reason}"),
            "check ISSUER's host and port, and that this machine can reach it (proxy, firewall, VPN)",
        ),
        FetchError::TooLarge(_) => Check::fail(
            format!("{url}: {err}"),
            "ISSUER must be an authorization server's issuer; this URL serves something else",
        ),
    }
}

/// The fields of the discovery document the checks read; anything may be
/// missing except `issuer`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub response_types_supported: Option<Vec<String>>,
    pub response_modes_supported: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
}

impl Metadata {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|err| err.to_string())
    }
}

/// The document's `issuer` must be `ISSUER`, character for character
/// (OpenID Connect Discovery §4.3), as the server requires.
pub fn issuer_matches(configured: &str, found: &str) -> Check {
    if configured == found {
        Check::pass("the discovery document's issuer is exactly ISSUER")
    } else {
        Check::fail(
            format!("the discovery document says the issuer is {found:?}, but ISSUER is {configured:?}"),
            "set ISSUER to the document's issuer character for character (trailing slash, http/https, host); with an Okta custom domain, make the authorization server's Issuer the URL you use",
        )
    }
}

/// Okta's own domains.
pub fn is_okta_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    ["okta.com", "oktapreview.com", "okta-emea.com"]
        .iter()
        .any(|domain| host.ends_with(&format!(".{domain}")))
}

/// Whether `path` names a custom authorization server: `/oauth2/<id>`.
fn names_custom_server(path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "oauth2" {
            return segments.next().is_some_and(|id| id != "v1");
        }
    }
    false
}

/// Warns when `ISSUER` is an Okta org authorization server: on an Okta
/// domain, or laid out as one according to its discovery document `doc`
/// (its endpoints under `{issuer}/oauth2/v1/`, which is how an org server
/// behind a custom domain shows itself), and with no `/oauth2/<id>` in its
/// path. `None` for any other issuer.
pub fn org_authorization_server(issuer: &Url, doc: Option<&Metadata>) -> Option<Check> {
    let okta_host = issuer.host_str().is_some_and(is_okta_host);
    let org_layout = doc.is_some_and(|doc| {
        let org_base = format!("{}/oauth2/v1/", doc.issuer.trim_end_matches('/'));
        [&doc.authorization_endpoint, &doc.jwks_uri]
            .into_iter()
            .flatten()
            .any(|endpoint| endpoint.starts_with(&org_base))
    });
    if !(okta_host || org_layout) {
        return None;
    }
    Some(if names_custom_server(issuer.path()) {
        Check::pass("ISSUER is an Okta custom authorization server (/oauth2/<id>), whose access tokens are meant for your API")
    } else {
        Check::warn(
            "ISSUER is an Okta org authorization server: its access tokens are for Okta's own APIs and cannot be validated by your API",
            "use a custom authorization server, e.g. ISSUER=https://<org>.okta.com/oauth2/default (docs/okta.md § 1)",
        )
    })
}

/// On an Okta domain, `CLIENT_ID` should look like Okta's client ids:
/// `0oa` and 17 letters or digits.
pub fn okta_client_id(issuer: &Url, client_id: &str) -> Option<Check> {
    if !issuer.host_str().is_some_and(is_okta_host) {
        return None;
    }
    let rest = client_id.strip_prefix("0oa").unwrap_or("");
    Some(
        if rest.len() == 17 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Check::pass("CLIENT_ID looks like an Okta client id")
        } else {
            Check::warn(
                format!(
                    "CLIENT_ID {:?} does not look like an Okta client id (0oa and 17 letters or digits)",
                    printable(client_id)
                ),
                "copy the Client ID from the app's General tab (Client Credentials), not its name or the app's URL",
            )
        },
    )
}

/// What the discovery document says about the configured response type,
/// response mode, scopes, sign-out and ID token signatures.
pub fn metadata_checks(doc: &Metadata, config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let response_type = config.response_type.as_str();

    checks.push(match &doc.response_types_supported {
        None => Check::warn(
            "the discovery document lists no response_types_supported",
            "the authorize probe below tells whether RESPONSE_TYPE is accepted",
        ),
        Some(listed) if listed.iter().any(|t| same_words(t, response_type)) => {
            Check::pass(format!("the issuer supports RESPONSE_TYPE {response_type:?}"))
        }
        Some(listed) => Check::fail(
            format!(
                "the issuer does not support RESPONSE_TYPE {response_type:?} (it lists {})",
                list(listed)
            ),
            "set RESPONSE_TYPE to one the issuer lists (\"id_token token\", \"token\" or \"id_token\")",
        ),
    });

    checks.push(match &doc.response_modes_supported {
        // The default is ["query", "fragment"] (OpenID Connect Discovery).
        None => Check::pass("response_mode fragment (the default; the issuer lists no response_modes_supported)"),
        Some(listed) if listed.iter().any(|m| m == "fragment") => {
            Check::pass("the issuer supports response_mode fragment")
        }
        Some(listed) => Check::fail(
            format!("the issuer does not support response_mode fragment (it lists {})", list(listed)),
            "this app receives the tokens in the URL fragment: use an issuer that supports response_mode=fragment",
        ),
    });

    let asked: Vec<&str> = config.scopes.split(' ').filter(|s| !s.is_empty()).collect();
    checks.push(match &doc.scopes_supported {
        None => Check::info("the issuer publishes no scopes_supported: SCOPES are checked by the authorize probe only"),
        Some(published) => {
            let missing: Vec<&str> = asked
                .iter()
                .copied()
                .filter(|s| !published.iter().any(|p| p == s))
                .collect();
            if missing.is_empty() {
                Check::pass(format!("the issuer publishes every scope in SCOPES ({})", config.scopes))
            } else {
                Check::warn(
                    format!("SCOPES {:?} not in the issuer's scopes_supported", missing.join(" ")),
                    "an issuer may define scopes it does not publish (Okta: the scope's \"Include in public metadata\"); the authorize probe below tells whether they are accepted",
                )
            }
        }
    });

    checks.push(match &doc.end_session_endpoint {
        Some(endpoint) => Check::pass(format!("end_session_endpoint {endpoint}: sign-out also ends the session at the issuer")),
        None => Check::warn(
            "the issuer has no end_session_endpoint: sign-out will be local, the session at the issuer stays",
            "nothing to change in the app; Okta's authorization servers publish one",
        ),
    });

    let rs256 = doc
        .id_token_signing_alg_values_supported
        .as_ref()
        .is_some_and(|algs| algs.iter().any(|a| a == "RS256"));
    checks.push(if rs256 {
        Check::pass("the issuer signs ID tokens with RS256")
    } else if config.response_type.wants_id_token() {
        Check::fail(
            "id_token_signing_alg_values_supported does not list RS256, the only algorithm the app checks ID tokens with",
            "configure the issuer to sign ID tokens with RS256, or set RESPONSE_TYPE=token",
        )
    } else {
        Check::info("the issuer does not list RS256 for ID tokens; RESPONSE_TYPE token asks for none")
    });
    checks
}

/// `"token id_token"` and `"id_token token"` are the same response type.
fn same_words(a: &str, b: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        let mut words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
        words.sort_unstable();
        words
    }
    words(a) == words(b)
}

fn list(items: &[String]) -> String {
    let shown: Vec<String> = items
        .iter()
        .map(|i| format!("{:?}", printable(i)))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// The JWKS must parse and hold at least one RS256 signing key; its cache
/// lifetime is reported with what the server makes of it.
pub fn jwks_checks(url: &Url, body: &[u8], max_age: Option<Duration>) -> Vec<Check> {
    let keys = match KeySet::from_jwks_json(body) {
        Ok(keys) => keys,
        Err(reason) => {
            return vec![Check::fail(
                format!("the JWKS at {url} is not a JSON Web Key Set: {reason}"),
                "the jwks_uri of the discovery document must serve {\"keys\": [...]}; check ISSUER",
            )]
        }
    };
    let mut checks = Vec::new();
    if keys.is_empty() {
        checks.push(Check::fail(
            format!("the JWKS at {url} holds no RS256 signing key with a kid, so no token can be validated"),
            "the issuer must publish its signing keys as RSA keys (kty RSA, use sig, alg RS256) with a kid",
        ));
    } else {
        let mut kids: Vec<&str> = keys.kids().collect();
        kids.sort_unstable();
        checks.push(Check::pass(format!(
            "the JWKS at {url} holds {} RS256 signing key{} (kid {})",
            kids.len(),
            if kids.len() == 1 { "" } else { "s" },
            kids.iter()
                .map(|k| printable(k))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    checks.push(Check::info(cache_control_report(max_age)));
    checks
}

/// What the JWKS's `Cache-Control` means for the server's key refresh.
pub fn cache_control_report(max_age: Option<Duration>) -> String {
    let options = CacheOptions::default();
    let every = match max_age {
        None => options.default_refresh,
        Some(age) => age.clamp(options.min_refresh, options.max_refresh),
    };
    let said = match max_age {
        None => "no max-age".to_owned(),
        Some(Duration::ZERO) => "no-store, no-cache or max-age=0".to_owned(),
        Some(age) => format!("max-age={}", age.as_secs()),
    };
    format!(
        "the JWKS's Cache-Control says {said}: the server refreshes the keys every {}",
        human_duration(every)
    )
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 3600 == 0 && s >= 3600 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// What the authorize endpoint answered, as far as the checks need it.
#[derive(Clone, Debug, Default)]
pub struct ProbeAnswer {
    pub status: u16,
    pub location: Option<String>,
    /// The start of the body, for telling error pages apart.
    pub body: String,
}

/// What the probe asked for.
#[derive(Clone, Debug)]
pub struct ProbeRequest<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub client_id: &'a str,
    pub response_type: &'a str,
    pub scopes: &'a str,
}

/// The `prompt=none` authorization request a signed-out browser's silent
/// renewal sends.
pub fn probe_url(endpoint: &Url, request: &ProbeRequest<'_>, nonce: &str) -> Url {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("client_id", request.client_id)
        .append_pair("response_type", request.response_type)
        .append_pair("response_mode", "fragment")
        .append_pair("scope", request.scopes)
        .append_pair("redirect_uri", request.redirect_uri)
        .append_pair("state", request.state)
        .append_pair("nonce", nonce)
        .append_pair("prompt", "none");
    url
}

async fn probe(target: &Target, config: &Config, doc: &Metadata, http: &HttpOptions) -> Check {
    let Some(raw) = doc.authorization_endpoint.as_deref() else {
        return Check::fail(
            "the discovery document has no authorization_endpoint, so browsers cannot sign in",
            "ISSUER must be an authorization server that signs people in with a browser",
        );
    };
    let endpoint = match checked_url("authorization_endpoint", raw) {
        Ok(url) => url,
        Err(err) => {
            return Check::fail(
                err.to_string(),
                "the issuer must serve its authorize endpoint over https",
            )
        }
    };
    let state = format!("doctor-{:032x}", rand::random::<u128>());
    let nonce = format!("{:032x}", rand::random::<u128>());
    let request = ProbeRequest {
        redirect_uri: &config.redirect_uri,
        state: &state,
        client_id: &target.client_id,
        response_type: config.response_type.as_str(),
        scopes: &config.scopes,
    };
    let url = probe_url(&endpoint, &request, &nonce);
    match send_probe(url, http).await {
        Ok(answer) => interpret_probe(&answer, &request),
        Err(reason) => Check::fail(
            format!("cannot reach the authorize endpoint {endpoint}: {reason}"),
            "the authorization_endpoint of the discovery document must be reachable",
        ),
    }
}

/// One GET, no redirect followed, no cookie sent.
async fn send_probe(url: Url, http: &HttpOptions) -> Result<ProbeAnswer, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(http.connect_timeout)
        .timeout(http.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("okta-implicit-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| err.to_string())?;
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "text/html")
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while body.len() < MAX_PAGE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => return Err(error_chain(&err)),
        }
    }
    body.truncate(MAX_PAGE_BYTES);
    Ok(ProbeAnswer {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// What the answer to the `prompt=none` probe says about the client, its
/// redirect URI, grant and scopes.
pub fn interpret_probe(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Check {
    if !(300..400).contains(&answer.status) {
        return error_page(answer, request);
    }
    let Some(location) = answer.location.as_deref() else {
        return Check::fail(
            format!(
                "the authorize endpoint answered HTTP {} without a Location",
                answer.status
            ),
            "the issuer is misbehaving; check ISSUER",
        );
    };
    let Some(params) = callback_params(location, request.redirect_uri) else {
        return Check::fail(
            format!(
                "the authorize endpoint sent the browser to {} instead of back to REDIRECT_URI",
                without_query(location)
            ),
            "a prompt=none request must come back to REDIRECT_URI; check that ISSUER is the authorization server itself (Okta: /oauth2/<id>)",
        );
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let description = get("error_description").map(printable).unwrap_or_default();
    let said = |error: &str| {
        if description.is_empty() {
            error.to_owned()
        } else {
            format!("{error} ({description})")
        }
    };
    let scopes = request.scopes;
    let response_type = request.response_type;
    let accepted = |what: &str| {
        if get("state") != Some(request.state) {
            return Check::fail(
                "the issuer answered the authorization request without sending its state back",
                "the issuer must return state unchanged (RFC 6749 §4.2.2); the app refuses answers without it",
            );
        }
        Check::pass(format!(
            "the authorize endpoint accepts CLIENT_ID, REDIRECT_URI, RESPONSE_TYPE {response_type:?} and SCOPES {scopes:?} (a prompt=none request came back with {what})"
        ))
    };
    let tokens = get("access_token").is_some() || get("id_token").is_some();
    match get("error") {
        Some(error @ ("login_required" | "interaction_required")) => accepted(error),
        None if tokens => accepted("tokens"),
        None => Check::fail(
            "the authorize endpoint came back to REDIRECT_URI with neither tokens nor an error",
            "the issuer is misbehaving; check ISSUER",
        ),
        Some("consent_required") => Check::warn(
            format!("the issuer wants the user's consent: {}", said("consent_required")),
            "silent renewal cannot show a consent screen; turn consent off for this app's scopes (Okta: the app's User consent, the scopes' Require user consent)",
        ),
        Some("access_denied") if description.contains("Policy evaluation failed") => Check::fail(
            format!("no access policy rule of the authorization server lets CLIENT_ID have SCOPES {scopes:?} with the implicit grant: {}", said("access_denied")),
            "add a rule for this client that allows the Implicit grant and every scope in SCOPES (Okta: Security > API > Authorization Servers > Access Policies, docs/okta.md § 2.5), or ask for fewer SCOPES",
        ),
        Some("access_denied") => Check::fail(
            format!("the issuer refused the request: {}", said("access_denied")),
            "the issuer's log gives the reason (Okta: Reports > System Log)",
        ),
        Some(error @ ("unsupported_response_type" | "unauthorized_client")) => Check::fail(
            format!("the client may not use RESPONSE_TYPE {response_type:?}: {}", said(error)),
            "allow it on the client (Okta: the app's General tab, Grant type Implicit (hybrid) with Allow ID Token and Allow Access Token with implicit grant type), or set RESPONSE_TYPE to what the client allows",
        ),
        Some("invalid_scope") => Check::fail(
            format!("the authorization server refuses SCOPES {scopes:?}: {}", said("invalid_scope")),
            "create the missing scope on the authorization server (Okta: Authorization Servers > Scopes > Add Scope) or remove it from SCOPES",
        ),
        Some(error) => Check::fail(
            format!("the authorize endpoint answered {}", said(&printable(error))),
            "docs/okta.md § 6 says what each error means and which setting to change",
        ),
    }
}

/// The parameters of `location` if it leads back to `redirect_uri`: from
/// the fragment, else from the query.
fn callback_params(location: &str, redirect_uri: &str) -> Option<Vec<(String, String)>> {
    let rest = location.strip_prefix(redirect_uri)?;
    let (base_extra, fragment) = match rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (rest, None),
    };
    // Only the redirect URI itself, or it plus a query the issuer added.
    let query = match base_extra {
        "" => None,
        extra
            if extra.starts_with('?') || (redirect_uri.contains('?') && extra.starts_with('&')) =>
        {
            Some(&extra[1..])
        }
        _ => return None,
    };
    let encoded = fragment.or(query).unwrap_or("");
    Some(
        url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect(),
    )
}

/// `scheme://host/path` of `location`, without what follows.
fn without_query(location: &str) -> String {
    let end = location.find(['?', '#']).unwrap_or(location.len());
    printable(&location[..end])
}

/// Which setting an error page of the authorize endpoint blames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    ClientId,
    RedirectUri,
    Either,
}

/// Reads an error page: Okta's "Invalid value for 'client_id' parameter."
/// and "The 'redirect_uri' parameter must be a Login redirect URI…", the
/// dev server's "The client_id is not registered…" and "The redirect_uri
/// is not registered…", else whichever of the two names it mentions.
pub fn blame(page: &str) -> Blame {
    let text = page.to_ascii_lowercase();
    let client = text.contains("client_id");
    let redirect = text.contains("redirect_uri");
    if text.contains("must be a login redirect uri")
        || text.contains("redirect_uri is not registered")
    {
        Blame::RedirectUri
    } else if text.contains("invalid value for 'client_id'")
        || text.contains("client_id is not registered")
    {
        Blame::ClientId
    } else if redirect && !client {
        Blame::RedirectUri
    } else if client && !redirect {
        Blame::ClientId
    } else {
        Blame::Either
    }
}

fn error_page(answer: &ProbeAnswer, request: &ProbeRequest<'_>) -> Check {
    let status = answer.status;
    if answer.body.contains("E0000015") {
        return Check::fail(
            format!("the authorize endpoint answered HTTP {status} E0000015: the org has no API Access Management"),
            "use an Okta org with API Access Management, such as an Integrator Free Plan org (docs/okta.md § 1)",
        );
    }
    if (200..300).contains(&status) {
        return Check::fail(
            format!("the authorize endpoint showed a page (HTTP {status}) instead of answering a prompt=none request"),
            "the issuer ignores prompt=none, so silent renewal cannot work; use an authorization server that supports it (Okta's do)",
        );
    }
    if status >= 500 {
        return Check::fail(
            format!("the authorize endpoint answered HTTP {status}"),
            "the issuer is having trouble; try again later",
        );
    }
    let says = alert_text(&answer.body)
        .map(|text| format!(" (the page says: {text})"))
        .unwrap_or_default();
    let client_id = printable(request.client_id);
    let redirect_uri = printable(request.redirect_uri);
    match blame(&answer.body) {
        Blame::ClientId => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): CLIENT_ID {client_id:?} is unknown{says}"),
            "set CLIENT_ID to the client id of the app at this issuer (Okta: the app's General tab, Client Credentials)",
        ),
        Blame::RedirectUri => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): REDIRECT_URI {redirect_uri:?} is not registered for CLIENT_ID{says}"),
            "add REDIRECT_URI exactly to the app's sign-in redirect URIs (Okta: the app's General tab, Sign-in redirect URIs), or set REDIRECT_URI or PUBLIC_ORIGIN to a registered one",
        ),
        Blame::Either => Check::fail(
            format!("the issuer shows an error page (HTTP {status}): CLIENT_ID {client_id:?} unknown or REDIRECT_URI {redirect_uri:?} not registered{says}"),
            "check CLIENT_ID against the app's client id and add REDIRECT_URI exactly to its sign-in redirect URIs",
        ),
    }
}

/// The text of the dev server's `role="alert"` element, if any.
fn alert_text(page: &str) -> Option<String> {
    let start = page.find("role=\"alert\"")?;
    let open_end = start + page[start..].find('>')? + 1;
    let close = open_end + page[open_end..].find('<')?;
    let text = page[open_end..close]
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let text = printable(text.trim());
    (!text.is_empty()).then_some(text)
}

/// Whether `AUDIENCE` is what the issuer puts in access tokens, as far as
/// that can be known without signing in.
pub fn audience_check(
    audience: &str,
    known: Option<&str>,
    okta_host: bool,
    token_given: bool,
) -> Check {
    match known {
        Some(known) if known == audience => Check::pass(format!(
            "AUDIENCE {audience:?} is the aud of this issuer's access tokens"
        )),
        Some(known) => Check::fail(
            format!("the issuer puts aud {known:?} in its access tokens, but AUDIENCE is {audience:?}"),
            format!("set AUDIENCE to {known:?} (or leave it unset for api://default)"),
        ),
        None if token_given => Check::info(format!(
            "AUDIENCE {audience:?} is checked against the token's aud below"
        )),
        None if okta_host => Check::warn(
            format!("AUDIENCE {audience:?} cannot be checked without a token: Okta publishes an authorization server's audience nowhere public"),
            "compare it with the Audience column of Security > API > Authorization Servers in the Admin Console (api://default for default), or run doctor with --token -",
        ),
        None => Check::warn(
            format!("AUDIENCE {audience:?} cannot be checked without a token: the issuer does not publish the audience of its access tokens"),
            "run doctor with --token - and an access token from a sign-in to check it",
        ),
    }
}

/// The claims of `token` the report shows, read without any check: `sub`,
/// `cid`, `scp`, `aud`, `iss`, `exp` (as a time). `None` if it is not a
/// JWS with a JSON object payload.
pub fn describe_claims(token: &str, now: i64) -> Option<String> {
    let parts = jws::split(token).ok()?;
    let payload = jws::decode_part(parts.payload)?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    let claims = claims.as_object()?;
    let text = |name: &str| match claims.get(name) {
        None => "(none)".to_owned(),
        Some(Value::String(s)) => printable(s),
        Some(Value::Array(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| i
                    .as_str()
                    .map_or_else(|| printable(&i.to_string()), printable))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(other) => printable(&other.to_string()),
    };
    let exp = match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp.is_finite() && exp.abs() < 1e13 => {
            let exp = exp.floor() as i64;
            format!("{} ({})", utc(exp), relative(exp - now))
        }
        Some(_) => "(not a time)".to_owned(),
        None => "(none)".to_owned(),
    };
    Some(format!(
        "sub {}, cid {}, scp {}, aud {}, iss {}, exp {exp}",
        text("sub"),
        text("cid"),
        text("scp"),
        text("aud"),
        text("iss"),
    ))
}

async fn check_token(
    token: &str,
    target: &Target,
    config: &Config,
    jwks_uri: Option<Url>,
    http: &HttpOptions,
) -> Check {
    let Some(jwks_uri) = jwks_uri else {
        return Check::fail(
            "the token cannot be checked: the issuer's keys cannot be had",
            "fix the JWKS first (above)",
        );
    };
    let policy = match Policy::new(
        target.issuer.clone(),
        config.audience.clone(),
        Some(target.client_id.clone()),
        config.leeway,
    ) {
        Ok(policy) => policy,
        Err(err) => return Check::fail(err.to_string(), "fix TOKEN_LEEWAY_SECS"),
    };
    let options = ValidatorOptions {
        http: http.clone(),
        verified_cache_capacity: 0,
        ..ValidatorOptions::default()
    };
    let validator = match Validator::new(policy, jwks_uri, options).await {
        Ok(validator) => validator,
        Err(err) => {
            return Check::fail(
                format!("the token cannot be checked: {err}"),
                "fix the JWKS first (above)",
            )
        }
    };
    match validator.validate_uncached(token).await {
        Ok(claims) => Check::pass(format!(
            "the access token is valid for this API: sub {}, scopes [{}]",
            printable(&claims.sub),
            printable(&claims.scopes.join(" "))
        )),
        Err(err) => token_refusal(&err),
    }
}

/// The rule that refuses a token, and what to change.
pub fn token_refusal(err: &AuthError) -> Check {
    let AuthError::InvalidToken(problem) = err else {
        return Check::fail(
            format!("the server would refuse the token: {err}"),
            "fix the issuer's keys (above) and try again",
        );
    };
    let (rule, fix) = match problem {
        TokenError::WrongAudience => ("aud", "if the token comes from the right authorization server, set AUDIENCE to its audience (Okta: the server's Audience), else use a token of ISSUER"),
        TokenError::WrongIssuer => ("iss", "use a token from ISSUER, or set ISSUER to the authorization server that issued it"),
        TokenError::WrongClient => ("cid", "use a token issued to CLIENT_ID, or set CLIENT_ID to the app that got it"),
        TokenError::IdToken => ("aud", "pass the access token (access_token), not the ID token"),
        TokenError::Expired => ("exp", "sign in again and pass a fresh token"),
        TokenError::NotYetValid | TokenError::IssuedInFuture => ("nbf/iat", "check this machine's clock; TOKEN_LEEWAY_SECS forgives up to 120 s of skew"),
        TokenError::UnknownKid => ("kid", "the token was signed by a key ISSUER does not publish: it comes from another issuer (for example Okta's org authorization server)"),
        TokenError::AlgorithmNotAllowed => ("alg", "the issuer must sign access tokens with RS256"),
        TokenError::BadSignature => ("signature", "the token was changed or comes from another issuer; pass it exactly as the issuer sent it"),
        TokenError::MissingClaim(_) => ("claims", "the issuer must put iss, aud, exp and sub in its access tokens (Okta's custom authorization servers do)"),
        TokenError::TooLarge
        | TokenError::NotCompactJws
        | TokenError::BadHeader
        | TokenError::UnsupportedCrit
        | TokenError::BadKid
        | TokenError::BadClaims => ("format", "pass the access token exactly as the issuer sent it (a JWT in three parts)"),
    };
    Check::fail(
        format!("the server would refuse this token (rule: {rule}): {problem}"),
        fix,
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-07-01 12:00:00 UTC` for Unix seconds.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn relative(delta: i64) -> String {
    let amount = |secs: i64| {
        if secs < 120 {
            format!("{secs} s")
        } else if secs < 2 * 3600 {
            format!("{} min", secs / 60)
        } else {
            format!("{} h", secs / 3600)
        }
    };
    if delta >= 0 {
        format!("in {}", amount(delta))
    } else {
        format!("expired {} ago", amount(-delta))
    }
}

/// `text` safe for one terminal line: control characters replaced, at most
/// 200 characters.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

    const ISS: &str = "https://integrator-1234567.okta.com/oauth2/default";
    const CB: &str = "http://localhost:3000/login/callback";

    fn config(vars: &[(&str, &str)]) -> Config {
        let mut all = vec![("ISSUER", ISS), ("CLIENT_ID", "0oa1b2c3d4e5f6g7h8i9")];
        all.extend_from_slice(vars);
        Config::from_lookup(
            |name| {
                all.iter()
                    .rev()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
            "127.0.0.1:3000".parse().unwrap(),
        )
        .unwrap()
    }

    fn okta_doc() -> Metadata {
        Metadata::parse(
            json!({
                "issuer": ISS,
                "authorization_endpoint": format!("{ISS}/v1/authorize"),
                "jwks_uri": format!("{ISS}/v1/keys"),
                "end_session_endpoint": format!("{ISS}/v1/logout"),
                "response_types_supported": ["code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"],
                "response_modes_supported": ["query", "fragment", "form_post", "okta_post_message"],
                "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn statuses(checks: &[Check]) -> Vec<Status> {
        checks.iter().map(|c| c.status).collect()
    }

    #[test]
    fn lines_carry_the_mark_and_the_fix() {
        assert_eq!(Check::pass("fine").to_string(), "✓ fine");
        assert_eq!(Check::info("note").to_string(), "· note");
        assert_eq!(Check::warn("odd", "look").to_string(), "! odd — look");
        assert_eq!(
            Check::fail("broken", "mend it").to_string(),
            "✗ broken — fix: mend it"
        );
        let report = Report {
            checks: vec![Check::pass("a"), Check::warn("b", "c")],
        };
        assert_eq!(report.exit_code(), 0);
        let report = Report {
            checks: vec![Check::pass("a"), Check::fail("b", "c")],
        };
        assert_eq!(report.exit_code(), EXIT_FAILED);
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]), Ok(Command::Check { token: None }));
        assert_eq!(
            args(&["--token", "-"]),
            Ok(Command::Check {
                token: Some(TokenArg::Stdin)
            })
        );
        assert_eq!(
            args(&["--token=Bearer abc"]),
            Ok(Command::Check {
                token: Some(TokenArg::Value("abc".into()))
            })
        );
        assert_eq!(args(&["--help"]), Ok(Command::Help));
        assert!(args(&["--token"]).is_err());
        assert!(args(&["--token", " "]).is_err());
        assert!(args(&["--token", "a", "--token", "b"]).is_err());
        // An unknown argument is not echoed: it may be a misplaced token.
        let err = args(&["eyJsecret"]).unwrap_err();
        assert!(!err.contains("eyJsecret"), "{err}");
    }

    #[test]
    fn reads_the_token_from_input() {
        assert_eq!(read_token(&b"  abc.def.ghi\n"[..]).unwrap(), "abc.def.ghi");
        assert_eq!(read_token(&b"Bearer abc\n"[..]).unwrap(), "abc");
        assert!(read_token(&b"\n"[..]).is_err());
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert_eq!(issuer_matches(ISS, ISS).status, Status::Pass);
        let check = issuer_matches(&format!("{ISS}/"), ISS);
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("ISSUER"), "{check}");
    }

    #[test]
    fn okta_hosts() {
        for host in [
            "dev-1.okta.com",
            "x.OKTAPREVIEW.com",
            "integrator-1.okta-emea.com",
        ] {
            assert!(is_okta_host(host), "{host}");
        }
        for host in ["okta.com.evil.test", "login.example.com", "localhost"] {
            assert!(!is_okta_host(host), "{host}");
        }
    }

    #[test]
    fn org_authorization_server_is_warned_about() {
        let url = |u: &str| Url::parse(u).unwrap();
        let custom = org_authorization_server(&url(ISS), None).unwrap();
        assert_eq!(custom.status, Status::Pass);

        // An Okta domain is enough, before discovery.
        let org = "https://integrator-1234567.okta.com";
        let check = org_authorization_server(&url(org), None).unwrap();
        assert_eq!(check.status, Status::Warn);
        assert!(check.line.contains("org authorization server"), "{check}");
        assert!(check.fix.unwrap().contains("/oauth2/default"));

        // An org server behind a custom domain shows itself by its layout.
        let custom_domain = "https://login.example.com";
        let mut doc = okta_doc();
        doc.issuer = custom_domain.into();
        doc.authorization_endpoint = Some(format!("{custom_domain}/oauth2/v1/authorize"));
        doc.jwks_uri = Some(format!("{custom_domain}/oauth2/v1/keys"));
        assert_eq!(org_authorization_server(&url(custom_domain), None), None);
        let check = org_authorization_server(&url(custom_domain), Some(&doc)).unwrap();
        assert_eq!(check.status, Status::Warn);

        // Any other OpenID Connect issuer is none of this check's business.
        let other = "https://accounts.example.com";
        doc.issuer = other.into();
        doc.authorization_endpoint = Some(format!("{other}/o/oauth2/v2/auth"));
        doc.jwks_uri = Some(format!("{other}/oauth2/v3/certs"));
        assert_eq!(org_authorization_server(&url(other), Some(&doc)), None);
        assert!(names_custom_server("/oauth2/aus1a2b3c4"));
        assert!(!names_custom_server("/oauth2/v1"));
        assert!(!names_custom_server("/"));
    }

    #[test]
    fn okta_client_ids() {
        let okta = Url::parse(ISS).unwrap();
        assert_eq!(
            okta_client_id(&okta, "0oa1b2c3d4e5f6g7h8i9")
                .unwrap()
                .status,
            Status::Pass
        );
        for bad in ["0oa1b2c3", "my-app", "0oa1b2c3d4e5f6g7h8i-"] {
            assert_eq!(
                okta_client_id(&okta, bad).unwrap().status,
                Status::Warn,
                "{bad}"
            );
        }
        let other = Url::parse("http://localhost:3100/oauth2/default").unwrap();
        assert_eq!(okta_client_id(&other, "0oa-dev-spa"), None);
    }

    #[test]
    fn okta_metadata_passes() {
        let checks = metadata_checks(&okta_doc(), &config(&[]));
        assert_eq!(statuses(&checks), [Status::Pass; 5], "{checks:#?}");
    }

    #[test]
    fn metadata_problems() {
        let c = config(&[("RESPONSE_TYPE", "token id_token")]);
        let mut doc = okta_doc();
        doc.response_types_supported = Some(vec!["code".into()]);
        doc.response_modes_supported = Some(vec!["query".into()]);
        doc.scopes_supported = Some(vec!["openid".into()]);
        doc.end_session_endpoint = None;
        doc.id_token_signing_alg_values_supported = Some(vec!["ES256".into()]);
        let checks = metadata_checks(&doc, &c);
        assert_eq!(
            statuses(&checks),
            [
                Status::Fail,
                Status::Fail,
                Status::Warn,
                Status::Warn,
                Status::Fail
            ],
            "{checks:#?}"
        );
        assert!(checks[0].line.contains("RESPONSE_TYPE"));
        assert!(checks[2].line.contains("profile email"), "{}", checks[2]);

        // Absent lists: defaults, or left to the probe.
        let bare = Metadata::parse(br#"{"issuer": "https://x.test"}"#).unwrap();
        let checks = metadata_checks(&bare, &config(&[("RESPONSE_TYPE", "token")]));
        assert_eq!(
            statuses(&checks),
            [
                Status::Warn,
                Status::Pass,
                Status::Info,
                Status::Warn,
                Status::Info
            ],
            "{checks:#?}"
        );
    }

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        let mut n = vec![0xc5u8; 256];
        n[255] = 1;
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"})
    }

    #[test]
    fn jwks_needs_an_rs256_key() {
        let url = Url::parse(&format!("{ISS}/v1/keys")).unwrap();
        let good = json!({"keys": [rsa_jwk("k1")]}).to_string();
        let checks = jwks_checks(&url, good.as_bytes(), Some(Duration::from_secs(300)));
        assert_eq!(statuses(&checks), [Status::Pass, Status::Info]);
        assert!(checks[0].line.contains("1 RS256 signing key (kid k1)"));
        assert!(checks[1].line.contains("max-age=300"), "{}", checks[1]);

        let ec =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AAAA", "y": "AAAA"}]});
        let checks = jwks_checks(&url, ec.to_string().as_bytes(), None);
        assert_eq!(statuses(&checks), [Status::Fail, Status::Info]);
        assert!(checks[0].line.contains("no RS256 signing key"));

        let checks = jwks_checks(&url, b"<html>", None);
        assert_eq!(statuses(&checks), [Status::Fail]);
    }

    #[test]
    fn cache_control_is_reported_as_the_server_uses_it() {
        assert!(cache_control_report(Some(Duration::from_secs(300))).ends_with("every 5 min"));
        assert!(cache_control_report(Some(Duration::from_secs(10))).ends_with("every 5 min"));
        assert!(cache_control_report(Some(Duration::from_secs(7 * 86_400))).ends_with("every 24 h"));
        assert!(cache_control_report(Some(Duration::ZERO)).contains("no-store"));
        assert!(cache_control_report(None)
            .ends_with("no max-age: the server refreshes the keys every 1 h"));
    }

    fn request() -> ProbeRequest<'static> {
        ProbeRequest {
            redirect_uri: CB,
            state: "doctor-1",
            client_id: "0oa1b2c3d4e5f6g7h8i9",
            response_type: "id_token token",
            scopes: "openid profile email",
        }
    }

    fn redirect(fragment: &str) -> ProbeAnswer {
        ProbeAnswer {
            status: 302,
            location: Some(format!("{CB}#{fragment}")),
            body: String::new(),
        }
    }

    fn page(status: u16, body: &str) -> ProbeAnswer {
        ProbeAnswer {
            status,
            location: None,
            body: body.into(),
        }
    }

    #[test]
    fn the_probe_url_is_a_silent_renewal() {
        let endpoint = Url::parse(&format!("{ISS}/v1/authorize")).unwrap();
        let url = probe_url(&endpoint, &request(), "n1");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("prompt"), Some("none"));
        assert_eq!(get("response_mode"), Some("fragment"));
        assert_eq!(get("response_type"), Some("id_token token"));
        assert_eq!(get("redirect_uri"), Some(CB));
        assert_eq!(get("state"), Some("doctor-1"));
        assert_eq!(get("nonce"), Some("n1"));
    }

    #[test]
    fn login_required_means_everything_is_accepted() {
        let ok = interpret_probe(&redirect("error=login_required&state=doctor-1"), &request());
        assert_eq!(ok.status, Status::Pass, "{ok}");
        let wrong_state =
            interpret_probe(&redirect("error=login_required&state=other"), &request());
        assert_eq!(wrong_state.status, Status::Fail);
        // Tokens (a browser with a session) pass too, and are never shown.
        let tokens = interpret_probe(
            &redirect("access_token=SECRET.TOKEN.X&token_type=Bearer&state=doctor-1"),
            &request(),
        );
        assert_eq!(tokens.status, Status::Pass);
        assert!(!tokens.to_string().contains("SECRET"));
        // In the query, as some issuers send errors.
        let query = ProbeAnswer {
            location: Some(format!("{CB}?error=login_required&state=doctor-1")),
            ..redirect("")
        };
        assert_eq!(interpret_probe(&query, &request()).status, Status::Pass);
    }

    #[test]
    fn refusals_name_the_setting() {
        let cases = [
            (
                "error=access_denied&error_description=Policy+evaluation+failed+for+this+request%2C+please+check+the+policy+configurations.&state=doctor-1",
                "access policy",
            ),
            (
                "error=unsupported_response_type&error_description=The+response+type+is+not+supported+by+the+authorization+server.+Configured+response+types%3A+%5Bcode%5D.&state=doctor-1",
                "RESPONSE_TYPE",
            ),
            ("error=unauthorized_client&state=doctor-1", "RESPONSE_TYPE"),
            (
                "error=invalid_scope&error_description=One+or+more+scopes+are+not+configured.&state=doctor-1",
                "SCOPES",
            ),
            ("error=server_error&state=doctor-1", "server_error"),
        ];
        for (fragment, named) in cases {
            let check = interpret_probe(&redirect(fragment), &request());
            assert_eq!(check.status, Status::Fail, "{fragment}");
            assert!(check.line.contains(named), "{check}");
        }
        let elsewhere = ProbeAnswer {
            location: Some("https://integrator-1234567.okta.com/login/login.htm?fromURI=x".into()),
            ..redirect("")
        };
        let check = interpret_probe(&elsewhere, &request());
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("/login/login.htm instead"), "{check}");
        // A longer path that merely starts with the redirect URI is not it.
        let longer = ProbeAnswer {
            location: Some(format!("{CB}2#error=login_required&state=doctor-1")),
            ..redirect("")
        };
        assert_eq!(interpret_probe(&longer, &request()).status, Status::Fail);
    }

    #[test]
    fn error_pages_blame_the_client_or_the_redirect_uri() {
        let okta_client = "<h1>400 Bad Request</h1><p>Error Code: invalid_client</p><p>Description: Invalid value for 'client_id' parameter.</p>";
        let okta_redirect = "<p>Error Code: invalid_request</p><p>Description: The 'redirect_uri' parameter must be a Login redirect URI in the client app settings: https://x-admin.okta.com/admin/app/oidc_client/instance/0oa1#tab-general</p>";
        assert_eq!(blame(okta_client), Blame::ClientId);
        assert_eq!(blame(okta_redirect), Blame::RedirectUri);
        assert_eq!(blame("<p>Something went wrong</p>"), Blame::Either);
        let dev = r#"<p id="error" role="alert" class="error">The redirect_uri is not registered for this client.</p>"#;
        let check = interpret_probe(&page(400, dev), &request());
        assert!(check.line.contains("REDIRECT_URI"), "{check}");
        assert!(
            check
                .line
                .contains("the page says: The redirect_uri is not registered"),
            "{check}"
        );
        let check = interpret_probe(&page(400, okta_client), &request());
        assert!(
            check
                .line
                .contains("CLIENT_ID \"0oa1b2c3d4e5f6g7h8i9\" is unknown"),
            "{check}"
        );
        let check = interpret_probe(&page(401, r#"{"errorCode":"E0000015"}"#), &request());
        assert!(check.line.contains("API Access Management"), "{check}");
    }

    #[test]
    fn a_page_instead_of_an_answer_is_a_failure() {
        let check = interpret_probe(&page(200, "<form>Sign in</form>"), &request());
        assert_eq!(check.status, Status::Fail);
        assert!(check.line.contains("prompt=none"), "{check}");
        let check = interpret_probe(&page(503, ""), &request());
        assert!(check.line.contains("HTTP 503"), "{check}");
    }

    #[test]
    fn options_never_show_the_token() {
        let options = Options {
            token: Some("eyJ.secret.sig".into()),
            ..Options::default()
        };
        assert!(!format!("{options:?}").contains("secret"));
    }

    #[test]
    fn audience() {
        assert_eq!(
            audience_check("api://default", Some("api://default"), false, false).status,
            Status::Pass
        );
        let wrong = audience_check("api://mine", Some("api://default"), false, false);
        assert_eq!(wrong.status, Status::Fail);
        assert!(wrong.fix.unwrap().contains("api://default"));
        let okta = audience_check("api://default", None, true, false);
        assert_eq!(okta.status, Status::Warn);
        assert!(okta.fix.unwrap().contains("Admin Console"));
        assert_eq!(
            audience_check("api://default", None, false, true).status,
            Status::Info
        );
    }

    fn unsigned(claims: serde_json::Value) -> String {
        let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2ln",
            part(json!({"alg": "RS256", "kid": "k"})),
            part(claims)
        )
    }

    #[test]
    fn claims_are_described_never_the_token() {
        let token = unsigned(json!({
            "sub": "alice@example.com", "cid": "0oa1", "scp": ["openid", "profile"],
            "aud": "api://default", "iss": ISS, "exp": 1_700_003_600,
        }));
        let text = describe_claims(&token, 1_700_000_000).unwrap();
        assert_eq!(
            text,
            format!("sub alice@example.com, cid 0oa1, scp [openid profile], aud api://default, iss {ISS}, exp 2023-11-14 23:13:20 UTC (in 60 min)")
        );
        assert!(!text.contains(token.split('.').nth(1).unwrap()));
        let text = describe_claims(
            &unsigned(json!({"sub": "a\nb", "exp": 1_699_999_000})),
            1_700_000_000,
        )
        .unwrap();
        assert!(text.contains("sub a?b, cid (none)"), "{text}");
        assert!(text.ends_with("(expired 16 min ago)"), "{text}");
        assert_eq!(describe_claims("not-a-jwt", 0), None);
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn refusals_name_the_rule() {
        let check = token_refusal(&AuthError::InvalidToken(TokenError::WrongAudience));
        assert!(check.line.contains("rule: aud"), "{check}");
        assert!(check.fix.unwrap().contains("AUDIENCE"));
        let check = token_refusal(&AuthError::InvalidToken(TokenError::WrongClient));
        assert!(check.fix.unwrap().contains("CLIENT_ID"));
    }

    #[test]
    fn the_dev_server_is_checked_on_a_free_port() {
        assert_eq!(any_port("localhost:3100"), "localhost:0");
        assert_eq!(any_port("[::1]:3100"), "[::1]:0");
    }
}
