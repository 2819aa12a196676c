//! The stub issuer the server under test trusts: an Okta-shaped discovery
//! document and a JWKS of the harness's own keys, served over plain
//! HTTP/1.1 on 127.0.0.1:0 by a few lines of hand-written HTTP, so a case
//! can publish a new key, count the server's JWKS fetches, and make the
//! JWKS endpoint fail on purpose: down (accepts and hangs up), hang
//! (accepts, never answers), 10 MiB of non-JSON without `Content-Length`,
//! or a truncated JSON document.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::tokens::Signer;

/// How the JWKS endpoint answers: normally, or with one of the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Accepts and closes at once: the JWKS endpoint is down.
    Down,
    /// Accepts, reads the request and never answers.
    Hang,
    /// 200 with 10 MB of non-JSON and no Content-Length.
    Garbage,
    /// 200 with a truncated JSON document.
    InvalidJson,
}

struct IssuerState {
    issuer: String,
    keys: Mutex<Vec<Value>>,
    fault: Mutex<Fault>,
    jwks_fetches: AtomicU64,
}

/// Discovery and JWKS at `http://127.0.0.1:<port>/oauth2/default`.
pub struct Issuer {
    state: Arc<IssuerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Issuer {
    pub async fn start() -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind issuer");
        let addr = listener.local_addr().expect("issuer addr");
        let state = Arc::new(IssuerState {
            issuer: format!("http://{addr}/oauth2/default"),
            keys: Mutex::new(Vec::new()),
            fault: Mutex::new(Fault::None),
            jwks_fetches: AtomicU64::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_issuer(stream, st.clone()));
            }
        });
        Issuer { state, task }
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn publish(&self, keys: &[&Signer]) {
        *self.state.keys.lock().expect("keys") = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().expect("fault") = fault;
    }

    pub fn fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_issuer(mut stream: TcpStream, st: Arc<IssuerState>) {
    // Read the request head, bounded in size and time.
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await;
    if head != Ok(true) {
        return;
    }
    let line = String::from_utf8_lossy(&buf);
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let base = st.issuer.clone();
    if path.ends_with("/.well-known/openid-configuration") {
        let doc = json!({
            "issuer": base,
            "jwks_uri": format!("{base}/v1/keys"),
            "authorization_endpoint": format!("{base}/v1/authorize"),
            "end_session_endpoint": format!("{base}/v1/logout"),
        });
        let _ = respond(&mut stream, "200 OK", &doc.to_string(), "").await;
        return;
    }
    if !path.ends_with("/v1/keys") {
        let _ = respond(&mut stream, "404 Not Found", "{}", "").await;
        return;
    }
    st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let fault = *st.fault.lock().expect("fault");
    match fault {
        Fault::None => {
            let keys = st.keys.lock().expect("keys").clone();
            let body = json!({ "keys": keys }).to_string();
            let _ = respond(
                &mut stream,
                "200 OK",
                &body,
                "cache-control: max-age=3600\r\n",
            )
            .await;
        }
        Fault::Down => {
            // Hang up without a word: the fetch fails at once, as it does
            // when nothing listens on the port.
            drop(stream);
        }
        Fault::Hang => {
            // Bounded: the server gives up long before.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Fault::Garbage => {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| b'!' + (i % 90) as u8).collect();
            for _ in 0..160 {
                // 160 × 64 KiB = 10 MiB; the server hangs up at its cap.
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Fault::InvalidJson => {
            let _ = respond(&mut stream, "200 OK", r#"{"keys":[{"kty":"RSA","kid":"#, "").await;
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    extra: &str,
) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}
