//! Case 10 (issue 27): what DPoP (RFC 9449) adds to a protected request,
//! in server CPU per request, next to one raw P-256 (ES256) verification
//! made in this process during the same run.
//!
//! One server, three kinds of window, in rounds whose order reverses every
//! round (a d v, v d a, ...), as cases 1 to 3 are measured, so all three
//! see the same conditions on the shared machine:
//!
//! - **a**: whoami with one repeated Bearer token, answered from the
//!   verified-token cache: the baseline;
//! - **d**: whoami as DPoP: one token bound to this process's P-256 key
//!   (`cnf.jkt`), also answered from the cache after its first use, each
//!   request with a proof of its own (fresh `jti`, `htm`, `htu`, `iat`,
//!   `ath`), minted before the window opens, so the server parses the
//!   proof's key, checks its signature and claims, and records its `jti`
//!   every time, as it does for a browser;
//! - **v**: no traffic; this process verifies one proof's ES256 signature
//!   in a loop on one thread, with aws-lc-rs and the key parsed once: the
//!   one step of a DPoP request that cannot be avoided.
//!
//! So (d − a) ÷ v is what DPoP adds to a request, counted in raw
//! verifies, and d ÷ a what a DPoP request costs next to a Bearer one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::json;

use crate::cases::{boot, valid_req, Ctx, WORKERS};
use crate::cold::thread_cpu_secs;
use crate::driver::{drive, Class, Expect, Plan, Req, Stats, Stop};
use crate::rng::Rng;
use crate::server_process::cpu_secs;
use crate::tokens::{bound_token, unix_now};

/// Proofs minted for each DPoP window: more than one window can send.
pub const PROOFS_PER_WINDOW: usize = 30_000;

/// The harness's DPoP key, as a browser's would be: a P-256 pair whose
/// public half travels in every proof.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    header: String,
    pub jkt: String,
    public: Vec<u8>,
}

impl DpopKey {
    pub fn generate() -> DpopKey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("the key just made");
        // The uncompressed point: 0x04, x, y.
        let public = pair.public_key().as_ref().to_vec();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&public[1..33]),
            URL_SAFE_NO_PAD.encode(&public[33..65]),
        );
        // RFC 7638: the required members, in lexicographic order, no spaces.
        let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = URL_SAFE_NO_PAD.encode(digest(&SHA256, members.as_bytes()));
        let header = json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y},
        });
        DpopKey {
            pair,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            jkt,
            public,
        }
    }

    /// A proof for `POST htu` with the access token's hash `ath`; returns
    /// the compact JWS and, apart, its signing input and signature.
    pub fn proof(&self, htu: &str, ath: &str, jti: &str, iat: i64) -> (String, String, Vec<u8>) {
        let claims = json!({"jti": jti, "htm": "POST", "htu": htu, "iat": iat, "ath": ath});
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ES256 signing");
        let sig = signature.as_ref().to_vec();
        let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        (jws, input, sig)
    }
}

/// What the DPoP windows send: the bound token, and proofs to take in
/// order, each once.
pub struct Proofs {
    pub authorization: HeaderValue,
    pub sub: Arc<str>,
    pub pool: Vec<HeaderValue>,
    pub next: AtomicUsize,
}

impl Plan for Proofs {
    fn next(&self, _: usize, _: &mut Rng) -> Req {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Req {
            path: "/api/whoami",
            auth: Some(self.authorization.clone()),
            // Past the pool the proofs repeat, the server refuses them as
            // replayed, and the case reports those answers as wrong.
            dpop: Some(self.pool[i % self.pool.len()].clone()),
            expect: Expect::Valid(self.sub.clone()),
            class: Class::Valid,
        }
    }
}

/// [`PROOFS_PER_WINDOW`] proofs for `POST htu` with `ath`, their `jti`s
/// numbered from `from`, minted on a blocking thread.
pub async fn mint_proofs(
    key: Arc<DpopKey>,
    htu: String,
    ath: String,
    from: usize,
) -> Vec<HeaderValue> {
    tokio::task::spawn_blocking(move || {
        let iat = unix_now();
        (from..from + PROOFS_PER_WINDOW)
            .map(|i| {
                let (jws, _, _) = key.proof(&htu, &ath, &format!("load-{i}"), iat);
                HeaderValue::from_str(&jws).expect("ascii")
            })
            .collect()
    })
    .await
    .expect("minting proofs")
}

/// Case 10; see the module doc.
pub async fn case10_dpop(ctx: &Ctx, run: usize) {
    const ROUNDS: usize = 10;
    let Some(server) = boot(ctx, &format!("case10-run{run}")).await else {
        return;
    };
    let key = Arc::new(DpopKey::generate());
    let sub: Arc<str> = Arc::from("dpop-user");
    let token = bound_token(&ctx.tokens, &sub, &key.jkt);
    let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
    let authorization =
        HeaderValue::from_maybe_shared(Bytes::from(format!("DPoP {token}"))).expect("b64token");
    // The server's public origin, derived from its loopback address.
    let htu = format!("http://localhost:{}/api/whoami", server.addr.port());
    let (_, input, sig) = key.proof(&htu, &ath, "raw", unix_now());
    let raw = Arc::new(
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.public).expect("the public key"),
    );
    assert!(raw.verify_sig(input.as_bytes(), &sig).is_ok());

    let mut minted = 0usize;
    let mut proofs = |key: Arc<DpopKey>| {
        let from = minted;
        minted += PROOFS_PER_WINDOW;
        mint_proofs(key, htu.clone(), ath.clone(), from)
    };
    let dpop_plan = |pool: Vec<HeaderValue>| -> Arc<dyn Plan> {
        Arc::new(Proofs {
            authorization: authorization.clone(),
            sub: sub.clone(),
            pool,
            next: AtomicUsize::new(0),
        })
    };
    let bearer = ctx.tokens.fresh[0].clone();
    let bearer_plan = || -> Arc<dyn Plan> {
        let bearer = bearer.clone();
        Arc::new(move |_: usize, _: &mut Rng| valid_req(&bearer))
    };

    // A warm-up of each: connection set-up, first allocations, the one
    // RSA check of each token.
    drive(
        server.addr,
        WORKERS,
        bearer_plan(),
        Stop::after(ctx.args.secs(1)),
        None,
        1,
    )
    .await;
    let pool = proofs(key.clone()).await;
    drive(
        server.addr,
        WORKERS,
        dpop_plan(pool),
        Stop::after(ctx.args.secs(1)),
        None,
        1,
    )
    .await;

    let (mut bearer_stats, mut dpop_stats) = (Stats::default(), Stats::default());
    let (mut bearer_cpu, mut dpop_cpu) = (0.0f64, 0.0f64);
    let (mut verifies, mut verify_cpu) = (0u64, 0.0f64);
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for kind in order {
            let wall = ctx.args.secs(1);
            match kind {
                0 => {
                    let cpu0 = cpu_secs(server.pid());
                    let window = drive(
                        server.addr,
                        WORKERS,
                        bearer_plan(),
                        Stop::after(wall),
                        None,
                        2,
                    )
                    .await;
                    bearer_cpu += cpu_secs(server.pid()) - cpu0;
                    bearer_stats.elapsed += window.elapsed;
                    bearer_stats.merge(window);
                }
                1 => {
                    let pool = proofs(key.clone()).await;
                    let cpu0 = cpu_secs(server.pid());
                    let window = drive(
                        server.addr,
                        WORKERS,
                        dpop_plan(pool),
                        Stop::after(wall),
                        None,
                        2,
                    )
                    .await;
                    dpop_cpu += cpu_secs(server.pid()) - cpu0;
                    dpop_stats.elapsed += window.elapsed;
                    dpop_stats.merge(window);
                }
                _ => {
                    let raw = raw.clone();
                    let (input, sig) = (input.clone(), sig.clone());
                    let (n, cpu) = tokio::task::spawn_blocking(move || {
                        let (t0, cpu0) = (Instant::now(), thread_cpu_secs());
                        let mut n = 0u64;
                        while t0.elapsed() < wall {
                            for _ in 0..64 {
                                assert!(raw.verify_sig(input.as_bytes(), &sig).is_ok());
                            }
                            n += 64;
                        }
                        (n, thread_cpu_secs() - cpu0)
                    })
                    .await
                    .expect("the verify loop");
                    verifies += n;
                    verify_cpu += cpu;
                }
            }
        }
    }
    let r = &ctx.results;
    let a = r.report_cpu_per_request(
        "10a whoami, one repeated Bearer token",
        Class::Valid,
        &mut bearer_stats,
        bearer_cpu,
    );
    let d = r.report_cpu_per_request(
        "10d whoami as DPoP, a fresh proof each",
        Class::Valid,
        &mut dpop_stats,
        dpop_cpu,
    );
    let v = 1e6 * verify_cpu / verifies.max(1) as f64;
    r.add(
        "10v one raw ES256 verify (aws-lc-rs, key parsed)",
        v,
        "µs",
        "",
    );
    r.add(
        "10 (d − a) ÷ v: DPoP's extra CPU in raw verifies",
        (d - a) / v,
        "×",
        "",
    );
    r.add(
        "10 d ÷ a: a DPoP request next to a Bearer one",
        d / a,
        "×",
        "",
    );
    drop(server);
}
