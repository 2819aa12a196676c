//! The authorization code flow with PKCE (`RESPONSE_TYPE=code`, RFC 6749
//! §4.1 and RFC 7636): the callback gets a code (in the query, Okta's
//! default, or the fragment), which the browser exchanges at the issuer's
//! token endpoint with the attempt's `code_verifier`; with
//! `offline_access`, the session is renewed with the refresh token, which
//! the issuer replaces at every use. Compare `implicit.rs`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use super::super::callback::{
    check_tokens, token_answer, AtHash, CallbackError, Expect, HttpAnswer, Platform, Tokens,
};
use super::super::config::PublicAuthConfig;
use super::super::fragment::{split_answer, FragmentParams};
use super::super::request::PendingSignIn;
use super::super::session::Session;
use super::same_person;

/// The ID token comes from the token endpoint, not with the access token
/// in one answer: `at_hash` is checked when present (Core §3.1.3.8).
pub const AT_HASH: AtHash = AtHash::IfPresent;

/// A PKCE `code_verifier` from 32 random bytes: 43 characters of
/// base64url, the shortest RFC 7636 §4.1 allows, with 256 bits of entropy.
pub fn verifier_of(random: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// `code_challenge` for `S256`: base64url of the SHA-256 of the verifier
/// (RFC 7636 §4.2).
pub fn challenge_of(verifier_sha256: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(verifier_sha256)
}

/// The challenge of `pending`'s verifier.
pub async fn challenge(
    pending: &PendingSignIn,
    platform: &impl Platform,
) -> Result<String, CallbackError> {
    let verifier = pending
        .code_verifier
        .as_deref()
        .ok_or(CallbackError::NoVerifier)?;
    Ok(challenge_of(&platform.sha256(verifier.as_bytes()).await?))
}

/// The answer is where `RESPONSE_MODE` put it.
pub fn answer<'a>(cfg: &PublicAuthConfig, tail: &'a str) -> &'a str {
    let (query, fragment) = split_answer(tail);
    if cfg.response_mode == "fragment" {
        fragment
    } else {
        query
    }
}

/// The code exchanged at the token endpoint (RFC 6749 §4.1.3, from the
/// browser: a public client names itself with `client_id`, and proves it
/// started this attempt with the verifier). With DPoP, the proof is signed
/// with the key `dpop_jkt` names (a renewal's), or a new key.
pub async fn tokens(
    cfg: &PublicAuthConfig,
    answer: FragmentParams,
    pending: &PendingSignIn,
    dpop_jkt: Option<&str>,
    platform: &impl Platform,
) -> Result<Tokens, CallbackError> {
    let code = answer.code.ok_or(CallbackError::Missing("code"))?;
    let verifier = pending
        .code_verifier
        .as_deref()
        .ok_or(CallbackError::NoVerifier)?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("client_id", &cfg.client_id)
        .append_pair("code_verifier", verifier)
        .finish();
    post(cfg, &form, dpop_jkt, platform).await
}

/// Renews `current` with its refresh token (RFC 6749 §6): the new tokens,
/// checked as a sign-in's are (but an ID token answers no authorize
/// request here, so it has no nonce to match), for the same person. The
/// answer's refresh token replaces the one used; a refresh that brings no
/// ID token or no refresh token keeps the session's.
pub async fn refresh(
    cfg: &PublicAuthConfig,
    current: &Session,
    now_ms: i64,
    platform: &impl Platform,
) -> Result<Session, CallbackError> {
    let refresh_token = current
        .refresh_token
        .as_deref()
        .ok_or(CallbackError::Missing("refresh_token"))?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .append_pair("client_id", &cfg.client_id)
        .finish();
    // A DPoP-bound refresh token only works with the key it is bound to.
    let tokens = post(cfg, &form, current.dpop_jkt.as_deref(), platform).await?;
    let expect = Expect {
        nonce: None,
        at_hash: AT_HASH,
        carry_over: Some(current),
    };
    same_person(
        check_tokens(tokens, cfg, expect, now_ms, platform).await?,
        current,
    )
}

/// The form to revoke `refresh_token` at the revocation endpoint (RFC
/// 7009 §2.1), as a public client.
pub fn revocation_form(cfg: &PublicAuthConfig, refresh_token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("token", refresh_token)
        .append_pair("token_type_hint", "refresh_token")
        .append_pair("client_id", &cfg.client_id)
        .finish()
}

/// Posts `form` to the token endpoint. With DPoP, with a proof signed by
/// the key `dpop_jkt` names (a new one with `None`); an answer of
/// `use_dpop_nonce` is tried once more with the nonce it came with (RFC
/// 9449 §8), and the tokens are the key's.
async fn post(
    cfg: &PublicAuthConfig,
    form: &str,
    dpop_jkt: Option<&str>,
    platform: &impl Platform,
) -> Result<Tokens, CallbackError> {
    let endpoint = cfg.token_endpoint.as_deref().ok_or_else(|| {
        CallbackError::TokenEndpointUnusable("is not known: discovery named none".into())
    })?;
    if !cfg.dpop {
        let HttpAnswer { status, body, .. } = platform.post_form(endpoint, form, None).await?;
        return token_answer(status, &body);
    }
    let mut key = dpop_jkt.map(str::to_string);
    let mut tried_nonce = false;
    loop {
        let (proof, jkt) = platform
            .dpop_proof(key.as_deref(), "POST", endpoint, None)
            .await?;
        key = Some(jkt);
        let answer = platform.post_form(endpoint, form, Some(&proof)).await?;
        match token_answer(answer.status, &answer.body) {
            Err(CallbackError::TokenEndpoint { error, .. })
                if error == "use_dpop_nonce" && answer.dpop_nonce.is_some() && !tried_nonce =>
            {
                tried_nonce = true;
            }
            Ok(tokens) => {
                return Ok(Tokens {
                    dpop_jkt: key,
                    ..tokens
                })
            }
            Err(err) => return Err(err),
        }
    }
}
