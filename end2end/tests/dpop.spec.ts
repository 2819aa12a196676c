import * as crypto from 'node:crypto';
import { type Page } from '@playwright/test';
import { test, expect } from './fixtures';
import {
  users, signIn, storedSession, refuseWhoami, jwtClaims, CLIENT_ID,
} from './helpers';

// DPoP (RFC 9449), the `dpop` project: RESPONSE_TYPE=code with
// offline_access, DPOP=1 and REQUIRE_DPOP=1 (port 3080). The tokens are
// bound to a key the browser made and cannot export; every call proves it.

const DB = `okta-implicit.db.${CLIENT_ID}`;

/** The JSON of a JWS's header and claims, read (not checked). */
function jws(token: string): { header: Record<string, any>; claims: Record<string, any> } {
  const [h, c] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(c, 'base64url').toString()),
  };
}

/** RFC 7638 thumbprint of a P-256 JWK. */
function thumbprint(jwk: { crv: string; kty: string; x: string; y: string }): string {
  const input = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return crypto.createHash('sha256').update(input).digest('base64url');
}

/** The DPoP keys the app keeps in IndexedDB: thumbprint → whether the private key can be exported. */
async function storedKeys(page: Page): Promise<Record<string, string>> {
  return page.evaluate((name) => new Promise<Record<string, string>>((resolve, reject) => {
    const open = indexedDB.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('dpop-keys')) { db.close(); resolve({}); return; }
      const store = db.transaction('dpop-keys').objectStore('dpop-keys');
      const keys = store.getAllKeys();
      const values = store.getAll();
      values.onsuccess = async () => {
        const out: Record<string, string> = {};
        for (let i = 0; i < keys.result.length; i++) {
          const key = values.result[i].privateKey as CryptoKey;
          try {
            await crypto.subtle.exportKey('jwk', key);
            out[String(keys.result[i])] = 'exported!';
          } catch (e) {
            out[String(keys.result[i])] = `${(e as Error).name}; extractable=${key.extractable}`;
          }
        }
        db.close();
        resolve(out);
      };
    };
  }), DB);
}

test('protected calls carry Authorization: DPoP and a proof of the session key, which cannot be exported', async ({ page, baseURL }) => {
  const calls: { authorization: string; proof: string; url: string }[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/whoami') {
      calls.push({ authorization: r.headers()['authorization'] ?? '', proof: r.headers()['dpop'] ?? '', url: r.url() });
    }
  });
  await signIn(page, users.alice);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  const session = JSON.parse((await storedSession(page))!);
  expect(session.dpop_jkt).toBeTruthy();
  expect(jwtClaims(session.access_token).cnf).toEqual({ jkt: session.dpop_jkt });

  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) {
    expect(call.authorization).toBe(`DPoP ${session.access_token}`);
    const proof = jws(call.proof);
    expect(proof.header.typ).toBe('dpop+jwt');
    expect(proof.header.alg).toBe('ES256');
    expect(proof.header.jwk.d).toBeUndefined();
    expect(thumbprint(proof.header.jwk)).toBe(session.dpop_jkt);
    expect(proof.claims.htm).toBe('POST');
    expect(proof.claims.htu).toBe(`${new URL(baseURL!).origin}/api/whoami`);
    expect(proof.claims.ath).toBe(crypto.createHash('sha256').update(session.access_token).digest('base64url'));
    expect(Math.abs(proof.claims.iat - Date.now() / 1000)).toBeLessThan(60);
  }
  expect(new Set(calls.map((c) => jws(c.proof).claims.jti)).size).toBe(calls.length);

  // The key is in IndexedDB under its thumbprint, and the page cannot read it.
  const keys = await storedKeys(page);
  expect(Object.keys(keys)).toEqual([session.dpop_jkt]);
  expect(keys[session.dpop_jkt]).toBe('InvalidAccessError; extractable=false');
});

test('a reload and a second tab prove the same key; a refresh proves it too', async ({ page, context }) => {
  await signIn(page, users.bob);
  const session = JSON.parse((await storedSession(page))!);
  await page.reload();
  await expect(page.locator('#whoami-sub')).toHaveText(users.bob.login);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(users.bob.login);

  // A refused call renews with the bound refresh token: the refresh
  // carries a proof of the same key, and the new token is bound to it.
  const refresh = page.waitForRequest((r) => r.url().endsWith('/v1/token') && r.method() === 'POST'
    && new URLSearchParams(r.postData() ?? '').get('grant_type') === 'refresh_token');
  await refuseWhoami(page, 1);
  await page.locator('#refresh').click();
  const proof = jws((await refresh).headers()['dpop']);
  expect(thumbprint(proof.header.jwk)).toBe(session.dpop_jkt);
  expect(proof.claims.htm).toBe('POST');
  expect(proof.claims.htu).toMatch(/\/oauth2\/default\/v1\/token$/);
  await expect(page.locator('#whoami-sub')).toHaveText(users.bob.login);
  // The refresh's answer is stored a moment after its request: wait for it.
  await expect.poll(async () => JSON.parse((await storedSession(page))!).access_token)
    .not.toBe(session.access_token);
  const renewed = JSON.parse((await storedSession(page))!);
  expect(jwtClaims(renewed.access_token).cnf).toEqual({ jkt: session.dpop_jkt });
  await other.locator('#refresh').click();
  await expect(other.locator('#whoami-sub')).toHaveText(users.bob.login);
});

test('a token copied out of the page is refused from outside the browser', async ({ page, request, baseURL }) => {
  await signIn(page, users.carol);
  const session = JSON.parse((await storedSession(page))!);
  const whoami = `${baseURL}/api/whoami`;
  // As a Bearer token.
  const asBearer = await request.post(whoami, { headers: { Authorization: `Bearer ${session.access_token}` } });
  expect(asBearer.status()).toBe(401);
  // As a DPoP token without a proof.
  const noProof = await request.post(whoami, { headers: { Authorization: `DPoP ${session.access_token}` } });
  expect([400, 401]).toContain(noProof.status());
  // With a proof of another key.
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk })).toString('base64url');
  const claims = Buffer.from(JSON.stringify({
    jti: crypto.randomUUID(), htm: 'POST', htu: `${new URL(baseURL!).origin}/api/whoami`, iat: Math.floor(Date.now() / 1000),
    ath: crypto.createHash('sha256').update(session.access_token).digest('base64url'),
  })).toString('base64url');
  const signature = crypto.sign('sha256', Buffer.from(`${header}.${claims}`), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const otherKey = await request.post(whoami, {
    headers: { Authorization: `DPoP ${session.access_token}`, DPoP: `${header}.${claims}.${signature.toString('base64url')}` },
  });
  expect(otherKey.status()).toBe(401);
  expect(otherKey.headers()['www-authenticate']).toMatch(/^DPoP /);
  // The page itself still gets in.
  await page.locator('#refresh').click();
  await expect(page.locator('#whoami-sub')).toHaveText(users.carol.login);
});

test('sign-out deletes the key', async ({ page }) => {
  await signIn(page, users.alice);
  expect(Object.keys(await storedKeys(page))).toHaveLength(1);
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/' && url.search === '');
  await expect(page.locator('#notice')).toHaveText('You are signed out.');
  await expect.poll(async () => Object.keys(await storedKeys(page))).toEqual([]);
});

test('with DPOP_NONCE the server functions hand out a nonce and the page retries once with it', async ({ page }, testInfo) => {
  test.skip(testInfo.project.name !== 'dpop-nonce', 'the dpop-nonce project runs the server with DPOP_NONCE=1');
  const claimsOf = (proof: string | undefined) => (proof ? jws(proof).claims : {});
  const api: { status: number; nonce?: string; handedOut?: string; challenge?: string }[] = [];
  const token: { status: number; nonce?: string }[] = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    const nonce = claimsOf(r.request().headers()['dpop']).nonce;
    if (path === '/api/whoami') {
      api.push({
        status: r.status(), nonce, handedOut: r.headers()['dpop-nonce'], challenge: r.headers()['www-authenticate'],
      });
    } else if (path.endsWith('/v1/token')) {
      token.push({ status: r.status(), nonce });
    }
  });
  await signIn(page, users.alice);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);

  // The token endpoint (as Okta's does) refuses the first proof for want
  // of its nonce; the retry carries it.
  expect(token[0]).toEqual({ status: 400, nonce: undefined });
  expect(token[1].status).toBe(200);
  expect(token[1].nonce).toBeTruthy();
  // The server functions do the same with their own nonce.
  expect(api[0].status).toBe(401);
  expect(api[0].nonce).toBeUndefined();
  expect(api[0].challenge).toMatch(/^DPoP .*error="use_dpop_nonce"/);
  expect(api[0].handedOut).toBeTruthy();
  expect(api[1].status).toBe(200);
  expect(api[1].nonce).toBe(api[0].handedOut);
  // Later calls carry the nonce they were given: no second refusal.
  const seen = api.length;
  await page.locator('#refresh').click();
  await expect.poll(() => api.length).toBeGreaterThan(seen);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  for (const call of api.slice(seen)) {
    expect(call.status).toBe(200);
    expect(call.nonce).toBeTruthy();
  }
});
