//! The implicit flow (`RESPONSE_TYPE=id_token token`, `token`, `id_token`):
//! the tokens come in the callback's fragment, and renewal is a hidden
//! `prompt=none` iframe (`silent.rs`). Compare `code.rs`.

use super::super::callback::{AtHash, CallbackError, Tokens};
use super::super::fragment::{split_answer, FragmentParams};

/// With both tokens in one answer, `at_hash` ties them together and must
/// be there (OpenID Connect Core §3.2.2.10).
pub const AT_HASH: AtHash = AtHash::Required;

/// The answer is always in the fragment.
pub fn answer(tail: &str) -> &str {
    split_answer(tail).1
}

/// The tokens are in the answer itself.
pub fn tokens(answer: FragmentParams) -> Result<Tokens, CallbackError> {
    let expires_in = match answer.expires_in.as_deref() {
        Some(s) => Some(i64::from(
            s.parse::<u32>().map_err(|_| CallbackError::ExpiresIn)?,
        )),
        None => None,
    };
    Ok(Tokens {
        access_token: answer.access_token,
        token_type: answer.token_type,
        expires_in,
        scope: answer.scope,
        id_token: answer.id_token,
        refresh_token: None,
        dpop_jkt: None,
    })
}
