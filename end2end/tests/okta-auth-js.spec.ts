import * as fs from 'node:fs';
import * as path from 'node:path';
import { type APIRequestContext, type BrowserContext, type Page } from '@playwright/test';
import { test, expect } from './fixtures';
import { users, submitLogin } from './helpers';

// Okta's own browser SDK, @okta/okta-auth-js (the version end2end/package.json
// pins), against the embedded authorization server, used as its README says:
// a plain page, the SDK's browser build from its package's dist/, the
// issuer, the client and a redirect URI, once with the implicit flow and
// once with the authorization code flow (PKCE, refresh tokens). The page is served by the test itself on
// http://localhost:3999, an origin nothing listens on: every request to it
// is answered here. end2end/dev-idp.json registers it for the app's client,
// which makes it a trusted CORS origin of the authorization server. The
// cases run in order, in one tab, as one person's session would.
//
// One seam: Playwright routes the requests a page makes, but not the
// targets of HTTP redirects, which the browser's network stack follows on
// its own. So the authorization server's two redirects to the test page
// (after the sign-in form, after logout) are fetched by the test (with the
// context's cookies, whose jar the answer updates) and answered with a
// page that navigates to the same Location, which the test serves. The
// SDK sees the same URL either way; everything else is real HTTP.

const SDK_ORIGIN = 'http://localhost:3999';
const REDIRECT_URI = `${SDK_ORIGIN}/callback`;
const CLIENT_ID = '0oa-dev-spa';
const SDK_PACKAGE = path.join(__dirname, '..', 'node_modules', '@okta', 'okta-auth-js');
const SDK_BUNDLE = path.join(SDK_PACKAGE, 'dist', 'okta-auth-js.min.js');
const user = users.bob;
const USER_ID = '00ubobdev00000000002';

type Flow = 'implicit' | 'code';

/** The test page: the SDK, and an `OktaAuth` for `issuer` in `window.authClient`. */
function testPage(issuer: string, flow: Flow): string {
  const config = flow === 'implicit'
    ? { issuer, clientId: CLIENT_ID, redirectUri: REDIRECT_URI, responseType: ['id_token', 'token'], pkce: false }
    // The SDK's defaults for a SPA: code with PKCE; offline_access for a
    // refresh token, which its token manager then renews with.
    : { issuer, clientId: CLIENT_ID, redirectUri: REDIRECT_URI, scopes: ['openid', 'email', 'offline_access'] };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>okta-auth-js</title>
<script src="/okta-auth-js.min.js"></script>
<script>window.authClient = new OktaAuth(${JSON.stringify(config)});</script>
</head><body><p id="ready">ready</p></body></html>`;
}

/**
 * Serves the test page and the SDK on SDK_ORIGIN, in `context`, and turns
 * the authorization server's redirects to SDK_ORIGIN into navigations (see
 * the top of the file). Returns the redirects it turned, in order.
 */
async function serveTestPage(context: BrowserContext, issuer: string, flow: Flow = 'implicit'): Promise<URL[]> {
  const bundle = fs.readFileSync(SDK_BUNDLE);
  await context.route(`${SDK_ORIGIN}/**`, (route) => {
    const { pathname } = new URL(route.request().url());
    if (pathname === '/okta-auth-js.min.js') {
      return route.fulfill({ status: 200, contentType: 'application/javascript', body: bundle });
    }
    return route.fulfill({ status: 200, contentType: 'text/html', body: testPage(issuer, flow) });
  });
  const redirects: URL[] = [];
  const redirectsToTestPage = (url: URL) =>
    url.href.startsWith(`${issuer}/`) && ['/v1/sign-in', '/v1/logout'].some((p) => url.pathname.endsWith(p));
  await context.route(redirectsToTestPage, async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    const location = response.headers()['location'];
    if (response.status() !== 302 || !location || new URL(location).origin !== SDK_ORIGIN) {
      return route.fulfill({ response });
    }
    redirects.push(new URL(location));
    // A URL has no `<`, so it cannot end the script.
    return route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<!doctype html><script>location.replace(${JSON.stringify(location)})</script>`,
    });
  });
  return redirects;
}

/** Waits until the page at `pathname` of SDK_ORIGIN has its client. */
async function onTestPage(page: Page, pathname: string) {
  await page.waitForURL((url) => url.origin === SDK_ORIGIN && url.pathname === pathname);
  await expect(page.locator('#ready')).toHaveText('ready');
}

/** Claims of a JWT, unverified (the SDK and the servers verify). */
function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

async function whoami(request: APIRequestContext, baseURL: string, accessToken: string) {
  return request.post(`${baseURL}/api/whoami`, {
    headers: { Authorization: `Bearer ${accessToken}` },
  });
}

async function introspect(request: APIRequestContext, idp: string, token: string) {
  const res = await request.post(`${idp}/v1/introspect`, {
    form: { token, client_id: CLIENT_ID },
  });
  expect(res.status()).toBe(200);
  return res.json();
}

// The SDK as the page sees it; typed loosely, the tests read what they need.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sdk = any;
declare global {
  interface Window { authClient: Sdk }
}

test.describe.configure({ mode: 'serial' });

test.describe('okta-auth-js against the embedded authorization server', () => {
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  /** Every authorize request the tab or its iframes send. */
  let authorizeRequests: URL[];
  /** The authorization server's redirects to the test page. */
  let redirects: URL[];
  /** The access token of each stage, in order. */
  const accessTokens: string[] = [];

  test.beforeAll(async ({ browser }) => {
    context = await browser.newContext();
    // Chromium asks a page before it may reach loopback addresses (Local
    // Network Access) unless the page itself came from one; this page
    // comes from the test, so Chromium cannot tell, and asks. A page on a
    // real localhost server would not be asked.
    await context.grantPermissions(['local-network-access'], { origin: SDK_ORIGIN });
    page = await context.newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    authorizeRequests = [];
    context.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname.endsWith('/v1/authorize')) authorizeRequests.push(url);
    });
  });

  test.afterAll(async () => {
    await context.close();
  });

  test('the pinned SDK is version 8', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(SDK_PACKAGE, 'package.json'), 'utf8'));
    expect(pkg.version).toMatch(/^8\./);
  });

  test('signs in with token.getWithRedirect() and token.parseFromUrl()', async ({ idp }) => {
    redirects = await serveTestPage(context, idp);
    await page.goto(`${SDK_ORIGIN}/`);
    await expect(page.locator('#ready')).toHaveText('ready');

    // Without PKCE it navigates at once; discovery and the keys are read
    // (cross-origin, each after a preflight) when the answer is parsed.
    await page.evaluate(() => { void window.authClient.token.getWithRedirect(); });
    await submitLogin(page, user);
    await onTestPage(page, '/callback');

    // parseFromUrl checks the ID token (signature against /v1/keys,
    // issuer, audience, nonce, at_hash) and removes the fragment.
    const result = await page.evaluate(async () => {
      const { tokens, state } = await window.authClient.token.parseFromUrl();
      window.authClient.tokenManager.setTokens(tokens);
      return {
        state,
        hash: window.location.hash,
        idClaims: tokens.idToken.claims,
        accessToken: tokens.accessToken.accessToken,
        tokenType: tokens.accessToken.tokenType,
        scopes: tokens.accessToken.scopes,
      };
    });
    expect(result.hash).toBe('');
    expect(result.tokenType).toBe('Bearer');
    expect(result.scopes).toEqual(['openid', 'email']);
    expect(result.idClaims.sub).toBe(USER_ID);
    expect(result.idClaims.iss).toBe(idp);
    expect(result.idClaims.aud).toBe(CLIENT_ID);
    expect(result.idClaims.email).toBe(user.login);
    expect(claimsOf(result.accessToken).sub).toBe(user.login);

    expect(redirects.map((u) => u.pathname)).toEqual(['/callback']);
    const [first] = authorizeRequests;
    expect(first.searchParams.get('response_type')).toBe('id_token token');
    expect(first.searchParams.get('client_id')).toBe(CLIENT_ID);
    expect(first.searchParams.get('code_challenge')).toBeNull();
    accessTokens.push(result.accessToken);
  });

  test("the SDK's access token is accepted by the app's protected API", async ({ request, baseURL }) => {
    const res = await whoami(request, baseURL!, accessTokens[0]);
    expect(res.status(), await res.text()).toBe(200);
    const claims = await res.json();
    expect(claims.sub).toBe(user.login);
    expect(claims.uid).toBe(USER_ID);
    expect(claims.cid).toBe(CLIENT_ID);
  });

  test('getUser() reads /v1/userinfo with the access token', async () => {
    const info = await page.evaluate(async () => {
      // The SDK adds the response headers to the object; the claims are
      // the rest.
      // eslint-disable-next-line @typescript-eslint/no-unused-vars
      const { headers, ...claims } = await window.authClient.getUser();
      return claims;
    });
    // The SDK's default scopes are openid and email.
    expect(info).toEqual({ sub: USER_ID, email: user.login, email_verified: true });
  });

  test('getWithoutPrompt() and tokenManager.renew() renew silently (okta_post_message in an iframe)', async ({ request, baseURL }) => {
    const before = authorizeRequests.length;
    const silent = await page.evaluate(async () => {
      const { tokens } = await window.authClient.token.getWithoutPrompt();
      return { accessToken: tokens.accessToken.accessToken, sub: tokens.idToken.claims.sub };
    });
    expect(silent.sub).toBe(USER_ID);
    expect(silent.accessToken).not.toBe(accessTokens[0]);

    const renewed = await page.evaluate(async () => {
      const token = await window.authClient.tokenManager.renew('accessToken');
      const stored = await window.authClient.tokenManager.getTokens();
      return { accessToken: token.accessToken, stored: stored.accessToken.accessToken };
    });
    expect(renewed.accessToken).toBe(renewed.stored);
    expect([accessTokens[0], silent.accessToken]).not.toContain(renewed.accessToken);

    // Both went to the authorization server in a hidden iframe, asking
    // for the answer as a posted message, with no sign-in page.
    const renewals = authorizeRequests.slice(before);
    expect(renewals).toHaveLength(2);
    for (const url of renewals) {
      expect(url.searchParams.get('prompt')).toBe('none');
      expect(url.searchParams.get('response_mode')).toBe('okta_post_message');
      expect(url.searchParams.get('redirect_uri')).toBe(REDIRECT_URI);
    }
    const res = await whoami(request, baseURL!, renewed.accessToken);
    expect(res.status()).toBe(200);
    accessTokens.push(silent.accessToken, renewed.accessToken);
  });

  test('signOut() revokes the access token, then ends the session at the issuer', async ({ idp, request, baseURL }) => {
    const current = accessTokens[accessTokens.length - 1];
    const revoke = page.waitForRequest((r) => r.url() === `${idp}/v1/revoke` && r.method() === 'POST');
    await page.evaluate(() => { void window.authClient.signOut(); });
    const revokeRequest = await revoke;
    const revokeResponse = await revokeRequest.response();
    expect(revokeResponse?.status()).toBe(200);
    // As the SDK sends it: the client in Basic (btoa(clientId)), the token
    // and its type in the form.
    expect(await revokeRequest.headerValue('authorization')).toBe(
      `Basic ${Buffer.from(CLIENT_ID).toString('base64')}`,
    );
    const form = new URLSearchParams(revokeRequest.postData() ?? '');
    expect(form.get('token_type_hint')).toBe('access_token');
    expect(form.get('token')).toBe(current);

    // Then /v1/logout with the ID token, and back to the SDK's default
    // post-logout URI, the page's origin.
    await onTestPage(page, '/');
    expect(redirects.map((u) => u.href)).toEqual([expect.stringMatching(/\/callback#/), `${SDK_ORIGIN}/`]);

    // The revoked token is dead at the authorization server...
    expect(await introspect(request, idp, current)).toEqual({ active: false });
    const userinfo = await request.get(`${idp}/v1/userinfo`, {
      headers: { Authorization: `Bearer ${current}` },
    });
    expect(userinfo.status()).toBe(401);
    expect(userinfo.headers()['www-authenticate']).toContain('error="invalid_token"');
    // ...and only that token: an earlier one of the same session was not
    // revoked.
    expect((await introspect(request, idp, accessTokens[0])).active).toBe(true);
    // The app's resource server validates offline, against the JWKS: it
    // cannot see a revocation, and accepts the token until it expires
    // (see the README).
    expect((await whoami(request, baseURL!, current)).status()).toBe(200);

    // The session at the issuer is gone: a silent renewal hears
    // login_required.
    const failure = await page.evaluate(async () => {
      try {
        await window.authClient.token.getWithoutPrompt();
        return null;
      } catch (e) {
        const err = e as { name: string; errorCode: string };
        return { name: err.name, errorCode: err.errorCode };
      }
    });
    expect(failure).toEqual({ name: 'OAuthError', errorCode: 'login_required' });
    expect(errors).toEqual([]);
  });
});

test.describe('okta-auth-js with the authorization code flow, PKCE and refresh tokens', () => {
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let redirects: URL[];
  /** Every POST to the token endpoint, with its form. */
  let tokenRequests: URLSearchParams[];
  let signedIn: { accessToken: string; refreshToken: string };

  test.beforeAll(async ({ browser }) => {
    context = await browser.newContext();
    await context.grantPermissions(['local-network-access'], { origin: SDK_ORIGIN });
    page = await context.newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    tokenRequests = [];
    context.on('request', (r) => {
      if (new URL(r.url()).pathname.endsWith('/v1/token') && r.method() === 'POST') {
        tokenRequests.push(new URLSearchParams(r.postData() ?? ''));
      }
    });
  });

  test.afterAll(async () => {
    await context.close();
  });

  test('signs in with getWithRedirect() and parseFromUrl(): the code, with its verifier, exchanged at /v1/token', async ({ idp, request, baseURL }) => {
    redirects = await serveTestPage(context, idp, 'code');
    await page.goto(`${SDK_ORIGIN}/`);
    await expect(page.locator('#ready')).toHaveText('ready');
    const authorize = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith('/v1/authorize'));
    await page.evaluate(() => { void window.authClient.token.getWithRedirect(); });
    const authorizeUrl = new URL((await authorize).url());
    expect(authorizeUrl.searchParams.get('response_type')).toBe('code');
    expect(authorizeUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizeUrl.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    await submitLogin(page, user);
    await onTestPage(page, '/callback');
    expect(redirects[0].searchParams.get('code')).toBeTruthy();

    const result = await page.evaluate(async () => {
      const { tokens } = await window.authClient.token.parseFromUrl();
      window.authClient.tokenManager.setTokens(tokens);
      return {
        sub: tokens.idToken.claims.sub,
        accessToken: tokens.accessToken.accessToken,
        refreshToken: tokens.refreshToken?.refreshToken,
        scopes: tokens.accessToken.scopes,
      };
    });
    expect(result.sub).toBe(USER_ID);
    expect(result.refreshToken).toBeTruthy();
    expect(result.scopes).toEqual(['openid', 'email', 'offline_access']);
    // One exchange, with the verifier whose S256 the authorize request sent.
    expect(tokenRequests).toHaveLength(1);
    const exchange = tokenRequests[0];
    expect(exchange.get('grant_type')).toBe('authorization_code');
    expect(exchange.get('code')).toBe(redirects[0].searchParams.get('code'));
    const verifier = exchange.get('code_verifier')!;
    const crypto = await import('node:crypto');
    expect(crypto.createHash('sha256').update(verifier).digest('base64url'))
      .toBe(authorizeUrl.searchParams.get('code_challenge'));

    // The app's API takes the SDK's access token.
    const res = await whoami(request, baseURL!, result.accessToken);
    expect(res.status(), await res.text()).toBe(200);
    expect((await res.json()).sub).toBe(user.login);
    signedIn = { accessToken: result.accessToken, refreshToken: result.refreshToken };
  });

  test('tokenManager.renew() renews with the refresh token, which rotates', async ({ request, baseURL }) => {
    const before = tokenRequests.length;
    const renewed = await page.evaluate(async () => {
      await window.authClient.tokenManager.renew('accessToken');
      const tokens = await window.authClient.tokenManager.getTokens();
      return { accessToken: tokens.accessToken.accessToken, refreshToken: tokens.refreshToken.refreshToken };
    });
    const refreshes = tokenRequests.slice(before);
    expect(refreshes.map((f) => f.get('grant_type'))).toEqual(['refresh_token']);
    expect(refreshes[0].get('refresh_token')).toBe(signedIn.refreshToken);
    expect(renewed.accessToken).not.toBe(signedIn.accessToken);
    expect(renewed.refreshToken).not.toBe(signedIn.refreshToken);
    expect((await whoami(request, baseURL!, renewed.accessToken)).status()).toBe(200);
    signedIn = renewed;
  });

  test('signOut() revokes the tokens and ends the session at the issuer', async ({ idp, request }) => {
    const revoked: URLSearchParams[] = [];
    page.on('request', (r) => {
      if (r.url() === `${idp}/v1/revoke` && r.method() === 'POST') revoked.push(new URLSearchParams(r.postData() ?? ''));
    });
    await page.evaluate(() => { void window.authClient.signOut(); });
    await onTestPage(page, '/');
    expect(revoked.map((f) => f.get('token_type_hint')).sort()).toEqual(['access_token', 'refresh_token']);
    expect(await introspect(request, idp, signedIn.refreshToken)).toEqual({ active: false });
    expect(await introspect(request, idp, signedIn.accessToken)).toEqual({ active: false });
    const failure = await page.evaluate(async () => {
      try {
        await window.authClient.token.getWithoutPrompt();
        return null;
      } catch (e) {
        const err = e as { name: string; errorCode: string };
        return { name: err.name, errorCode: err.errorCode };
      }
    });
    expect(failure).toEqual({ name: 'OAuthError', errorCode: 'login_required' });
    expect(errors).toEqual([]);
  });
});
