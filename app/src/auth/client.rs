//! The one server-function client that adds the access token to the
//! protected calls: `Authorization: Bearer`, or with DPoP `Authorization:
//! DPoP` and a fresh proof of the session's key (RFC 9449 §7). Tokens are
//! never passed as server-function arguments.

use server_fn::client::{browser::BrowserClient, Client};
use server_fn::error::FromServerFnError;
use server_fn::request::browser::BrowserRequest;
use server_fn::response::browser::BrowserResponse;
use server_fn::Bytes;
use std::future::Future;

/// `BrowserClient` plus the tab's access token, when it has a live one.
pub struct AuthClient;

impl<E, IS, OS> Client<E, IS, OS> for AuthClient
where
    E: FromServerFnError,
    IS: FromServerFnError,
    OS: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
        // The proof is signed with WebCrypto, which is asynchronous, and
        // the browser's futures are not Send: wrapped as the browser
        // client's own are.
        send_wrapper::SendWrapper::new(async move {
            #[cfg(feature = "hydrate")]
            authorize(&req).await;
            let response = <BrowserClient as Client<E, IS, OS>>::send(req).await;
            #[cfg(feature = "hydrate")]
            if let Ok(response) = &response {
                // The server's latest DPoP nonce, for the next proof.
                let headers = response.generate_headers();
                if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
                    super::dpop::browser::remember_nonce(&page_origin(), nonce);
                }
            }
            response
        })
    }

    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl futures::Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
                impl futures::Sink<Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, IS, OS>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, IS, OS>>::spawn(future)
    }
}

/// Adds the tab's live access token to `req`: as a Bearer token, or bound
/// to the session's key with a proof naming this request. An expired token
/// is never sent (`live_access_token` checks expiry); without a proof the
/// server refuses a DPoP-bound token, so the call fails closed.
#[cfg(feature = "hydrate")]
async fn authorize(req: &BrowserRequest) {
    let Some(token) = super::current::live_access_token() else {
        return;
    };
    let jkt = super::current::session().and_then(|s| s.dpop_jkt);
    let Some(jkt) = jkt else {
        req.headers()
            .set("Authorization", &format!("Bearer {token}"));
        return;
    };
    let url = req.url();
    let htu = super::dpop::htu(&url);
    let nonce = super::dpop::browser::nonce_for(htu);
    match super::dpop::browser::proof(
        Some(&jkt),
        req.method().as_str(),
        htu,
        Some(&token),
        nonce.as_deref(),
    )
    .await
    {
        Ok((proof, _)) => {
            req.headers().set("Authorization", &format!("DPoP {token}"));
            req.headers().set("DPoP", &proof);
        }
        Err(err) => leptos::logging::warn!("no DPoP proof for the call: {err}"),
    }
}

/// The app's own origin, which the server functions' nonces are kept by.
#[cfg(feature = "hydrate")]
fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}
