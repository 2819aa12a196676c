//! An access token given with `--token`: its claims as sent (read before
//! any check, so a refused token still shows what it carries), then the
//! server's own validation of it, and the rule that refuses it with the
//! setting to change. The token itself is never printed.

use serde_json::Value;
use url::Url;

use crate::bearer::{jws, AuthError, HttpOptions, Policy, TokenError, Validator, ValidatorOptions};
use crate::config::Config;

use super::report::{printable, Check};

/// The token's claims line (when it can be read), then whether the server
/// would accept it from `issuer` for `client_id`, with the keys at
/// `jwks_uri` (`None`: they could not be had).
pub async fn checks(
    token: &str,
    issuer: &str,
    client_id: &str,
    config: &Config,
    jwks_uri: Option<Url>,
    http: &HttpOptions,
) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(claims) = describe_claims(token, now_secs()) {
        checks.push(Check::info(format!(
            "the token's claims (as sent, before any check): {claims}"
        )));
    }
    checks.push(check_token(token, issuer, client_id, config, jwks_uri, http).await);
    checks
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

/// Validates `token` exactly as the server would, without its caches.
async fn check_token(
    token: &str,
    issuer: &str,
    client_id: &str,
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
        issuer.to_owned(),
        config.audience.clone(),
        Some(client_id.to_owned()),
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
        TokenError::DpopBound | TokenError::NotDpopBound | TokenError::DpopKeyMismatch => ("cnf", "DPoP-bound tokens are checked with their proof on each request; the token itself is fine"),
        TokenError::UnsupportedConfirmation => ("cnf", "the token is bound to a key by a method other than DPoP's jkt, which this server cannot check; use a Bearer or DPoP token"),
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::ISS;
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

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
}
