// The app's protected call, `POST /api/whoami`, on Node: the peers the load
// harness measures this server against (issue 28, `load --cases 11`).
// PEER picks the verifier:
//   jose      fastify + jose's jwtVerify with createRemoteJWKSet
//   jose-lru  the same behind an LRU cache of verified tokens (10,000, as
//             the server's), each kept until its exp
//   okta      fastify + Okta's own @okta/jwt-verifier
// Every peer checks what the server checks (RS256 by the issuer's JWKS,
// iss, aud, exp, cid) and answers in the same RFC 6750 terms, so the
// harness checks each answer the same way: 200 with the claims, 401 with
// `Bearer realm="api"` and no error for a missing token, with
// `error="invalid_token"` for a bad one.
//
// The jose peers also take DPoP-bound tokens (RFC 9449 §7), as the server
// does, with jose verifying each proof: `Authorization: DPoP <token>` and a
// `DPoP` proof whose ES256 signature verifies by its own `jwk`, with `typ`
// dpop+jwt, `htm` and `htu` of this request, `iat` within 60 s either way,
// a `jti` not seen before (kept until it is stale), `ath` the token's
// SHA-256, and a token whose `cnf.jkt` is the proof key's thumbprint. A
// bound token sent as Bearer is refused. Okta's verifier has no DPoP.
//
// Environment: PEER, ISSUER, AUDIENCE, CLIENT_ID, PORT, and ORIGIN (the
// public origin proofs name in `htu`; http://localhost:PORT by default).
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import OktaJwtVerifier from '@okta/jwt-verifier';

const { PEER, ISSUER, AUDIENCE, CLIENT_ID, PORT } = process.env;
const ORIGIN = process.env.ORIGIN ?? `http://localhost:${PORT}`;
const CACHE_SIZE = 10_000;
// As the server's DPOP_IAT_WINDOW_SECS and its replay cache's size.
const IAT_WINDOW_SECS = 60;
const seenProofs = new LRUCache({ max: 500_000, ttl: 2 * IAT_WINDOW_SECS * 1000 + 1000 });

function joseVerifier() {
  const keys = createRemoteJWKSet(new URL(`${ISSUER}/v1/keys`));
  return async (token) => {
    const { payload } = await jwtVerify(token, keys, {
      issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'],
    });
    if (payload.cid !== CLIENT_ID) throw new Error('cid');
    return payload;
  };
}

function cached(verify) {
  const cache = new LRUCache({ max: CACHE_SIZE });
  return async (token) => {
    const hit = cache.get(token);
    if (hit && hit.exp * 1000 > Date.now()) return hit;
    const payload = await verify(token);
    cache.set(token, payload);
    return payload;
  };
}

function oktaVerifier() {
  const verifier = new OktaJwtVerifier({
    issuer: ISSUER,
    clientId: CLIENT_ID,
    assertClaims: { cid: CLIENT_ID },
    // The harness's issuer is on loopback over http.
    testing: { disableHttpsCheck: true },
  });
  return async (token) => (await verifier.verifyAccessToken(token, AUDIENCE)).claims;
}

const verifiers = { jose: joseVerifier, 'jose-lru': () => cached(joseVerifier()), okta: oktaVerifier };
if (!verifiers[PEER]) {
  console.error(`PEER must be one of ${Object.keys(verifiers).join(', ')}`);
  process.exit(2);
}
const verify = verifiers[PEER]();
const dpop = PEER !== 'okta';

class ProofError extends Error {}

// The proof of a DPoP request for `token`, checked (RFC 9449 §4.3); the
// thumbprint of its key, or a ProofError.
async function checkProof(proof, token, method, path) {
  let payload, protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms: ['ES256'],
    }));
  } catch {
    throw new ProofError('proof');
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.jti !== 'string' || payload.htm !== method
      || typeof payload.iat !== 'number' || Math.abs(payload.iat - now) > IAT_WINDOW_SECS) {
    throw new ProofError('claims');
  }
  let htu;
  try {
    htu = new URL(payload.htu);
  } catch {
    throw new ProofError('htu');
  }
  if (htu.origin !== ORIGIN || htu.pathname !== path) throw new ProofError('htu');
  if (payload.ath !== createHash('sha256').update(token).digest('base64url')) throw new ProofError('ath');
  if (seenProofs.has(payload.jti)) throw new ProofError('replayed');
  seenProofs.set(payload.jti, true);
  return calculateJwkThumbprint(protectedHeader.jwk);
}

const app = Fastify({ logger: false });
// Server-function calls are empty forms.
app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));

function refuse(reply, error) {
  reply.code(401).header('cache-control', 'no-store');
  if (!error) {
    reply.header('www-authenticate', 'Bearer realm="api"');
    return { error: 'unauthorized', error_description: 'this call needs an access token' };
  }
  reply.header('www-authenticate', `Bearer realm="api", error="${error}", error_description="the access token is not valid"`);
  return { error, error_description: 'the access token is not valid' };
}

function refuseDpop(reply, error) {
  reply.code(401).header('cache-control', 'no-store')
    .header('www-authenticate', `DPoP algs="ES256", error="${error}", error_description="the DPoP proof or token is not valid"`);
  return { error, error_description: 'the DPoP proof or token is not valid' };
}

app.post('/api/health', async (_request, reply) => {
  reply.type('application/json');
  return '"ok"';
});
app.post('/api/whoami', async (request, reply) => {
  const header = request.headers.authorization;
  if (!header) return refuse(reply, null);
  const [scheme, token] = header.split(' ');
  if (!token || !(scheme === 'Bearer' || (dpop && scheme === 'DPoP'))) return refuse(reply, 'invalid_request');
  let jkt;
  if (scheme === 'DPoP') {
    const proof = request.headers.dpop;
    if (typeof proof !== 'string') return refuseDpop(reply, 'invalid_dpop_proof');
    try {
      jkt = await checkProof(proof, token, request.method, request.url.split('?')[0]);
    } catch {
      return refuseDpop(reply, 'invalid_dpop_proof');
    }
  }
  let claims;
  try {
    claims = await verify(token);
  } catch {
    return jkt ? refuseDpop(reply, 'invalid_token') : refuse(reply, 'invalid_token');
  }
  // A bound token only with a proof by its key; a proof only with one.
  if (claims.cnf?.jkt !== jkt) return jkt ? refuseDpop(reply, 'invalid_token') : refuse(reply, 'invalid_token');
  reply.header('cache-control', 'no-store');
  return { sub: claims.sub, scopes: claims.scp ?? [], expires_at: claims.exp };
});

await app.listen({ host: '127.0.0.1', port: Number(PORT) });
