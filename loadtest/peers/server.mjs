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
// Environment: PEER, ISSUER, AUDIENCE, CLIENT_ID, PORT.
import Fastify from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import OktaJwtVerifier from '@okta/jwt-verifier';

const { PEER, ISSUER, AUDIENCE, CLIENT_ID, PORT } = process.env;
const CACHE_SIZE = 10_000;

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

app.post('/api/health', async (_request, reply) => {
  reply.type('application/json');
  return '"ok"';
});
app.post('/api/whoami', async (request, reply) => {
  const header = request.headers.authorization;
  if (!header) return refuse(reply, null);
  const [scheme, token] = header.split(' ');
  if (scheme !== 'Bearer' || !token) return refuse(reply, 'invalid_request');
  let claims;
  try {
    claims = await verify(token);
  } catch {
    return refuse(reply, 'invalid_token');
  }
  reply.header('cache-control', 'no-store');
  return { sub: claims.sub, scopes: claims.scp ?? [], expires_at: claims.exp };
});

await app.listen({ host: '127.0.0.1', port: Number(PORT) });
