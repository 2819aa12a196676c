//! One run: which issuer is checked (`ISSUER`, or an embedded development
//! authorization server started for the run when it is unset), and the
//! checks in the order `mod.rs` lists, each line printed as it is made.
//!
//! The order matters only where a later check reads what an earlier one
//! fetched: without the discovery document nothing else can be checked, so
//! the run stops there; without the keys a token cannot be validated, and
//! its line says so.

use std::fmt;
use std::io::Write;

use url::Url;

use crate::bearer::fetch::HttpClient;
use crate::bearer::HttpOptions;
use crate::config::Config;
use crate::dev_idp::{self, DevIdpOptions};

use super::authorize::asks_offline_access;
use super::report::{Check, Report, Sink};
use super::{authorize, code_flow, discovery, keys, settings, token};

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
    let mut sink = Sink::new(out);
    match &config.issuer {
        Some(issuer) => {
            let client_id = config
                .client_id
                .clone()
                .ok_or("CLIENT_ID must be set: ISSUER is set, so the app's client id at that issuer is needed")?;
            sink.push(settings::issuer_setting(issuer));
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
            sink.push(settings::embedded_issuer(
                &config.dev_idp.addr,
                &running.issuer,
            ));
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
    Ok(sink.into_report())
}

/// `DEV_IDP_ADDR`'s host with port 0, so the check never collides with a
/// running server.
fn any_port(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    format!("{host}:0")
}

/// The checks of one issuer, in order.
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
        .is_some_and(settings::is_okta_host);
    if let Some(issuer_url) = &issuer_url {
        sink.push_all(settings::org_authorization_server(issuer_url, None));
        sink.push_all(settings::okta_client_id(issuer_url, &target.client_id));
    }

    // Discovery; nothing else can be checked without it.
    let doc = match discovery::fetch(&http, &target.issuer).await {
        Ok(doc) => doc,
        Err(check) => {
            sink.push(check);
            return;
        }
    };
    sink.push(discovery::issuer_matches(&target.issuer, &doc.issuer));
    // An org server elsewhere (a custom domain) shows itself by its layout.
    if let Some(issuer_url) = issuer_url.as_ref().filter(|_| !okta_host) {
        sink.push_all(settings::org_authorization_server(issuer_url, Some(&doc)));
    }
    sink.push_all(discovery::metadata_checks(&doc, config));

    // The code flow's own endpoints, which its browser calls by itself.
    let code = config.response_type.is_code();
    let token_endpoint = if code {
        let (check, token_endpoint) = code_flow::token_endpoint(&doc);
        sink.push(check);
        sink.push(code_flow::revocation_endpoint(
            &doc,
            asks_offline_access(&config.scopes),
        ));
        token_endpoint
    } else {
        None
    };

    // Keys.
    let jwks_uri = match keys::jwks_uri(&doc) {
        Ok(url) => Some(url),
        Err(check) => {
            sink.push(check);
            None
        }
    };
    if let Some(jwks_uri) = &jwks_uri {
        sink.push_all(keys::fetch(&http, jwks_uri).await);
    }

    // The token endpoint, from the app's origin.
    if code {
        let dpop = config.dpop.browser;
        sink.push(match &token_endpoint {
            Some(endpoint) => {
                code_flow::cors(endpoint, &config.public_origin, dpop, &options.http).await
            }
            None => code_flow::cors_not_checked(),
        });
        if let (true, Some(endpoint)) = (dpop, &token_endpoint) {
            sink.push(
                code_flow::dpop_required(
                    endpoint,
                    &target.client_id,
                    &config.redirect_uri,
                    &options.http,
                )
                .await,
            );
        }
    }

    // The authorize endpoint.
    sink.push_all(authorize::checks(&doc, &target.client_id, config, &options.http).await);

    // Audience, and the token if there is one.
    sink.push(settings::audience_check(
        &config.audience,
        target.known_audience.as_deref(),
        okta_host,
        options.token.is_some(),
    ));
    if let Some(token) = &options.token {
        sink.push_all(
            token::checks(
                token,
                &target.issuer,
                &target.client_id,
                config,
                jwks_uri,
                &options.http,
            )
            .await,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_show_the_token() {
        let options = Options {
            token: Some("eyJ.secret.sig".into()),
            ..Options::default()
        };
        assert!(!format!("{options:?}").contains("secret"));
    }

    #[test]
    fn the_dev_server_is_checked_on_a_free_port() {
        assert_eq!(any_port("localhost:3100"), "localhost:0");
        assert_eq!(any_port("[::1]:3100"), "[::1]:0");
    }
}
