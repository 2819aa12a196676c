//! The issuer's signing keys: the discovery document's `jwks_uri`, the
//! JWKS behind it (at least one RS256 key with a `kid`, the only kind the
//! server verifies with), and what its `Cache-Control` means for how often
//! the server refreshes them.

use std::time::Duration;

use url::Url;

use crate::bearer::fetch::{checked_url, HttpClient};
use crate::bearer::keys::KeySet;
use crate::bearer::CacheOptions;

use super::discovery::Metadata;
use super::report::{printable, Check};

/// The `jwks_uri` of `doc`, or the line that says why there is none to
/// fetch.
pub fn jwks_uri(doc: &Metadata) -> Result<Url, Check> {
    let raw = doc.jwks_uri.as_deref().ok_or_else(|| {
        Check::fail(
            "the discovery document has no jwks_uri, so no token can be validated",
            "ISSUER must be an OpenID Connect issuer that publishes its signing keys",
        )
    })?;
    checked_url("jwks_uri", raw).map_err(|err| {
        Check::fail(
            err.to_string(),
            "the issuer must publish its keys over https",
        )
    })
}

/// Fetches the JWKS at `jwks_uri` and checks it ([`jwks_checks`]).
pub async fn fetch(http: &HttpClient, jwks_uri: &Url) -> Vec<Check> {
    match http.get(jwks_uri).await {
        Ok(fetched) => jwks_checks(jwks_uri, &fetched.body, fetched.max_age),
        Err(err) => vec![Check::fail(
            format!("cannot fetch the JWKS at {jwks_uri}: {err}"),
            "the jwks_uri of the discovery document must be reachable from this server",
        )],
    }
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{statuses, ISS};
    use super::super::report::Status;
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

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
}
