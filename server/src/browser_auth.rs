//! What the server hands the browser so it can sign in by itself: the
//! issuer settings (from configuration and discovery, never compiled into
//! the wasm) and the issuer's public keys out of the JWKS cache, for the
//! ID-token signature check done in the browser.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use app::auth::config::ssr::{IssuerKeys, SharedIssuerKeys};
use app::auth::config::{PublicAuthConfig, PublicJwk};
use app::error::ApiError;

use crate::bearer::discovery::Discovery;
use crate::bearer::Validator;
use crate::config::Config;

/// Everything the pages and the public server functions get as context.
#[derive(Clone)]
pub struct BrowserAuth {
    pub config: PublicAuthConfig,
    pub keys: SharedIssuerKeys,
}

impl BrowserAuth {
    /// The settings the browser gets, from the configuration and what
    /// discovery said about the issuer. Fails when the issuer publishes no
    /// `authorization_endpoint`, without which no browser can sign in.
    pub fn public_config(
        config: &Config,
        client_id: String,
        discovery: &Discovery,
    ) -> Result<PublicAuthConfig, String> {
        let authorization_endpoint = discovery.authorization_endpoint.clone().ok_or_else(|| {
            format!(
                "ISSUER {}: discovery has no authorization_endpoint, so browsers cannot sign in",
                discovery.issuer
            )
        })?;
        if config.response_type.is_code() && discovery.token_endpoint.is_none() {
            return Err(format!(
                "ISSUER {}: discovery has no token_endpoint, which RESPONSE_TYPE=code needs to exchange the code",
                discovery.issuer
            ));
        }
        Ok(PublicAuthConfig {
            issuer: discovery.issuer.clone(),
            authorization_endpoint,
            end_session_endpoint: discovery.end_session_endpoint.clone(),
            token_endpoint: discovery.token_endpoint.clone(),
            revocation_endpoint: discovery.revocation_endpoint.clone(),
            client_id,
            scopes: config.scopes.clone(),
            response_type: config.response_type.as_str().to_string(),
            response_mode: config.response_mode.as_str().to_string(),
            redirect_uri: config.redirect_uri.clone(),
            post_logout_redirect_uri: config.post_logout_redirect_uri.clone(),
            renew_before_secs: config.renew_before_secs as i64,
            token_storage: config.token_storage,
            dpop: config.dpop.browser,
            // Filled in when a page is rendered, from the keys of the moment.
            keys: Vec::new(),
        })
    }

    /// `config` for the pages, and keys served from `validator`'s cache.
    pub fn new(config: PublicAuthConfig, validator: Validator) -> Self {
        BrowserAuth {
            config,
            keys: Arc::new(ValidatorKeys(validator)),
        }
    }

    /// Provides both values as Leptos context (pages and server functions).
    pub fn provide(&self) {
        leptos::prelude::provide_context(self.config.clone());
        leptos::prelude::provide_context(self.keys.clone());
    }
}

/// The validator's JWKS cache seen as a source of public keys: an unknown
/// `kid` goes through the same shared, rate-limited refetch as the API's.
struct ValidatorKeys(Validator);

impl IssuerKeys for ValidatorKeys {
    fn key(
        &self,
        kid: String,
    ) -> Pin<Box<dyn Future<Output = Result<PublicJwk, ApiError>> + Send + '_>> {
        Box::pin(async move {
            let key = self.0.jwks().key_for(&kid).await.map_err(ApiError::from)?;
            let (n, e) = key.jwk_components();
            Ok(PublicJwk {
                kid,
                n: n.to_string(),
                e: e.to_string(),
            })
        })
    }

    fn current(&self) -> Vec<PublicJwk> {
        let jwks = self.0.jwks();
        jwks.kids()
            .into_iter()
            .filter_map(|kid| {
                let key = jwks.key(&kid)?;
                let (n, e) = key.jwk_components();
                Some(PublicJwk {
                    kid,
                    n: n.to_string(),
                    e: e.to_string(),
                })
            })
            .collect()
    }
}
