import { type Request } from '@playwright/test';
import { test, expect } from './fixtures';
import {
  PENDING_KEY, SESSION_KEY, users, testUser, submitLogin, signIn, storedSession, historyUrls,
  setTokenLifetime, endSessions, hydrated, captureCallback, withParam, expectRefused,
} from './helpers';

const TOKEN_IN_URL = /(access_token|id_token)=/;

test('alice signs in, sees her profile and messages; no token in any URL or history entry', async ({ page, context }) => {
  await signIn(page, users.alice);
  await expect(page.locator('#claim-name')).toHaveText(users.alice.name);
  await expect(page.locator('#claim-email')).toHaveText(users.alice.login);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  await expect(page.locator('#whoami-scopes')).toContainText('reports:read');
  await expect(page.locator('#expires-in')).toHaveText(/^(59|60) min left$/);
  await expect(page.locator('#nav-user')).toHaveText(users.alice.name);

  await page.locator('nav').getByRole('link', { name: 'Messages' }).click();
  await expect(page.locator('#messages li')).toHaveCount(2);
  await expect(page.locator('#messages')).toContainText('Welcome, alice@example.com');

  expect(page.url()).not.toMatch(TOKEN_IN_URL);
  const urls = await historyUrls(context, page);
  expect(urls.length).toBeGreaterThan(2);
  for (const url of urls) expect(url).not.toMatch(TOKEN_IN_URL);

  const session = JSON.parse((await storedSession(page))!);
  expect(session.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(session.id_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(await page.evaluate((k) => sessionStorage.getItem(k), PENDING_KEY)).toBeNull();
});

test('a reload keeps the session', async ({ page }) => {
  await signIn(page, users.alice);
  await page.reload();
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  await expect(page.locator('#nav-user')).toHaveText(users.alice.name);
});

test('with a session at the authorization server, signing in again skips the form', async ({ page }) => {
  await signIn(page, users.alice);
  // Forget the app's tokens only; the authorization server's cookie stays.
  await page.evaluate(() => localStorage.clear());
  await page.goto('/');
  await hydrated(page);

  const documents: string[] = [];
  page.on('response', (r) => {
    if (r.request().resourceType() === 'document') documents.push(`${r.status()} ${r.url()}`);
  });
  await page.locator('#sign-in').click();
  await page.waitForURL('**/profile');
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  const idpPages = documents.filter((d) => d.includes('/oauth2/default/') && d.startsWith('200'));
  expect(idpPages).toEqual([]);
});

test('a wrong password is refused by the form and nothing is stored', async ({ page, idp }) => {
  await page.goto('/');
  await hydrated(page);
  await page.locator('#sign-in').click();
  await submitLogin(page, { login: users.alice.login, password: 'not-her-password' });
  await expect(page.getByRole('alert')).toHaveText('The username or password is incorrect.');
  expect(new URL(page.url()).origin).toBe(new URL(idp).origin);
  await page.goto('/');
  expect(await storedSession(page)).toBeNull();
});

test('cancel at the authorization server shows access_denied and offers to try again', async ({ page }) => {
  await page.goto('/messages');
  await expect(page.getByLabel('Username')).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForURL('**/login/callback');
  await expect(page.locator('#sign-in-error')).toContainText('access_denied');
  expect(page.url()).not.toContain('#');
  expect(await storedSession(page)).toBeNull();
  await page.locator('#try-again').click();
  await submitLogin(page, users.bob);
  await page.waitForURL('**/messages');
  await expect(page.locator('#messages li')).toHaveCount(2);
});

// State changed, nonce changed, signature broken and at_hash broken run for
// every response type in response-types.spec.ts (this configuration's
// project is rt-id_token-token).
test.describe('tampered callbacks are refused with a reason and nothing is stored', () => {
  test('state replayed', async ({ page }) => {
    const url = await captureCallback(page, users.alice);
    await page.goto(url);
    await page.waitForURL('**/profile');
    await page.evaluate((k) => localStorage.removeItem(k), SESSION_KEY);
    await expectRefused(page, url, /not started here or was already used/);
  });

  test('ID token payload altered', async ({ page }) => {
    const url = await captureCallback(page, users.alice);
    const altered = withParam(url, 'id_token', (t) => {
      const [h, p, s] = t.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      claims.name = 'Mallory';
      return [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
    });
    await expectRefused(page, altered, /signature is not valid/);
  });

  test("access token swapped for another user's", async ({ browser, page }) => {
    const other = await browser.newContext();
    const bobPage = await other.newPage();
    const bobUrl = await captureCallback(bobPage, users.bob);
    await other.close();
    const bobToken = new URLSearchParams(bobUrl.split('#')[1]).get('access_token')!;

    const url = await captureCallback(page, users.alice);
    await expectRefused(page, withParam(url, 'access_token', () => bobToken), /at_hash/);
  });
});

test('bob sees the insufficient-scope message on /report; alice sees the report', async ({ browser }) => {
  const bobContext = await browser.newContext();
  const bob = await bobContext.newPage();
  await signIn(bob, users.bob);
  await bob.goto('/report');
  await expect(bob.locator('#api-error')).toHaveText('You do not have the reports:read scope.');
  await bobContext.close();

  const aliceContext = await browser.newContext();
  const alice = await aliceContext.newPage();
  await signIn(alice, users.alice);
  await alice.goto('/report');
  await expect(alice.locator('#report caption')).toHaveText('Sign-ins this week');
  await expect(alice.locator('#report tr')).toHaveCount(3);
  await aliceContext.close();
});

test('a session that cannot be renewed ends on time and its token is not sent afterwards', async ({ page, idp }) => {
  const lifetime = 6;
  const dave = testUser('dave');
  await setTokenLifetime(page, idp, dave.login, lifetime);
  await signIn(page, dave);
  await expect(page.locator('#whoami-sub')).toHaveText(dave.login);
  const token: string = JSON.parse((await storedSession(page))!).access_token;
  // The session at the authorization server ends: renewal cannot succeed.
  await endSessions(page, idp, dave.login);

  const sentWithToken: Request[] = [];
  page.on('request', (r) => {
    if ((r.headers()['authorization'] ?? '').includes(token)) sentWithToken.push(r);
  });
  await expect(page.locator('#notice')).toHaveText(
    'Your session at the sign-in service has ended. Please sign in again.',
    { timeout: (lifetime + 5) * 1000 },
  );
  expect(await storedSession(page)).toBeNull();
  await expect(page.locator('#sign-in-again')).toBeVisible();

  await page.locator('nav').getByRole('link', { name: 'Messages' }).click();
  await expect(page.locator('#sign-in-again')).toBeVisible();
  await page.reload();
  await page.waitForTimeout(500);
  expect(sentWithToken).toEqual([]);
});

test('sign-out ends the session here and at the authorization server', async ({ page }) => {
  await signIn(page, users.alice);
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/' && url.search === '');
  await expect(page.locator('#notice')).toHaveText('You are signed out.');
  await expect(page.locator('#signed-out')).toBeVisible();
  expect(await storedSession(page)).toBeNull();

  // Back to the protected page: with no session it sends the browser to
  // sign in again, and the issuer, whose session ended, asks for the form.
  // Wait for that, the state the test means, rather than read the page
  // while it is still on its way there.
  await page.goBack();
  await expect(page.getByLabel('Username')).toBeVisible();
  expect(await storedSession(page)).toBeNull();

  await page.goto('/');
  await hydrated(page);
  await page.locator('#sign-in').click();
  await expect(page.getByLabel('Username')).toBeVisible();
});

test('a deep link to /messages while signed out comes back to /messages', async ({ page }) => {
  await page.goto('/messages');
  await submitLogin(page, users.bob);
  await page.waitForURL((url) => url.pathname === '/messages');
  await expect(page.locator('#messages li')).toHaveCount(2);
  await expect(page.locator('#messages')).toContainText('Welcome, bob@example.com');
});

test('happy path: no console errors, no failed requests, security headers on pages', async ({ page }) => {
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A request the browser itself cancels because the page is navigating
    // away (the favicon, say, while going to the issuer) is not a failure.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`); });

  const home = await page.goto('/');
  const headers = home!.headers();
  expect(headers['content-security-policy']).toMatch(/script-src 'self' 'nonce-[\w-]+' 'wasm-unsafe-eval'/);
  expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
  expect(headers['referrer-policy']).toBe('no-referrer');
  expect(headers['x-content-type-options']).toBe('nosniff');

  await signIn(page, users.alice);
  await expect(page.locator('#whoami-scopes')).toBeVisible();
  await page.locator('nav').getByRole('link', { name: 'Report' }).click();
  await expect(page.locator('#report')).toBeVisible();

  const callback = await page.request.get('/login/callback');
  expect(callback.headers()['referrer-policy']).toBe('no-referrer');
  expect(callback.headers()['content-security-policy']).toContain("default-src 'self'");
  expect(problems).toEqual([]);
});

test('the tokens leave the address bar and history while the page is parsed, even when the wasm never loads', async ({ page, context }) => {
  await page.goto('/');
  await hydrated(page);
  // From here on the app's wasm cannot load: the callback page is only HTML.
  await page.route('**/pkg/*.wasm', (route) => route.abort());
  await page.locator('#sign-in').click();
  await submitLogin(page, users.alice);
  await page.waitForURL((url) => url.pathname === '/login/callback', { waitUntil: 'domcontentloaded' });
  await expect(page.locator('h1')).toHaveText('Signing in…');
  expect(page.url()).not.toMatch(TOKEN_IN_URL);
  expect(page.url()).not.toContain('#');
  const urls = await historyUrls(context, page);
  expect(urls.some((u) => u.includes('/login/callback'))).toBe(true);
  for (const url of urls) expect(url).not.toMatch(TOKEN_IN_URL);
  // The answer is kept for the wasm in the page's memory only.
  const kept = await page.evaluate(() => (window as unknown as Record<string, string>).__oktaCallbackAnswer);
  expect(kept).toMatch(/access_token=/);
  expect(await storedSession(page)).toBeNull();
});

test.describe('a stored session is checked before it is used', () => {
  async function editStored(page: import('@playwright/test').Page, change: (s: Record<string, unknown>) => void) {
    await page.evaluate(([k, body]) => {
      const session = JSON.parse(localStorage.getItem(k)!);
      // eslint-disable-next-line no-new-func
      new Function('s', body)(session);
      localStorage.setItem(k, JSON.stringify(session));
    }, [SESSION_KEY, `(${change.toString()})(s)`] as const);
  }

  test('the storage key names the client', async ({ page }) => {
    await signIn(page, users.alice);
    const keys = await page.evaluate(() => Object.keys(localStorage));
    expect(keys).toContain(SESSION_KEY);
    expect(SESSION_KEY).toContain('0oa-dev-spa');
  });

  test("a session of another issuer (ISSUER changed on the same origin) signs no one in", async ({ page }) => {
    await signIn(page, users.alice);
    await editStored(page, (s) => { s.issuer = 'https://old-issuer.example/oauth2/default'; });
    await page.goto('/');
    await hydrated(page);
    await expect(page.locator('#signed-out')).toBeVisible();
    await expect(page.locator('#sign-out')).toHaveCount(0);
    // Dropped, not kept for later.
    await expect.poll(() => storedSession(page)).toBeNull();
  });

  test('a session of another client signs no one in', async ({ page }) => {
    await signIn(page, users.alice);
    await editStored(page, (s) => { s.client_id = '0oa-other-app'; });
    await page.goto('/');
    await hydrated(page);
    await expect(page.locator('#signed-out')).toBeVisible();
    await expect.poll(() => storedSession(page)).toBeNull();
  });

  test('an expiry the tokens do not back is not believed', async ({ page }) => {
    await signIn(page, users.alice);
    await editStored(page, (s) => { s.expires_at = (s.expires_at as number) + 30 * 24 * 3600; });
    await page.goto('/profile');
    await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
    await expect(page.locator('#expires-in')).toHaveText(/^(59|60) min left$/);
  });
});

test('a session that ended at expiry still offers to sign out at the issuer, with the last ID token', async ({ page, context, idp }) => {
  const lifetime = 6;
  const user = testUser('trent');
  await setTokenLifetime(page, idp, user.login, lifetime);
  await signIn(page, user);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
  const idToken: string = JSON.parse((await storedSession(page))!).id_token;
  // Renewal cannot reach the issuer, but the person's session there lives on.
  await page.route((url) => url.pathname.endsWith('/v1/authorize') && url.search.includes('prompt=none'),
    (route) => route.abort('connectionrefused'));
  await expect(page.locator('#notice')).toContainText('could not be renewed', { timeout: (lifetime + 5) * 1000 });
  await expect(page.locator('#sign-in-again')).toBeVisible();
  const logout: string[] = [];
  context.on('request', (r) => { if (r.url().includes('/v1/logout')) logout.push(r.url()); });

  await page.locator('#sign-out-at-issuer').click();
  await page.waitForURL((url) => url.pathname === '/' && url.search === '');
  await expect(page.locator('#notice')).toHaveText('You are signed out.');
  expect(logout.length).toBe(1);
  expect(new URL(logout[0]).searchParams.get('id_token_hint')).toBe(idToken);
  // The issuer's session is gone: signing in asks for the password.
  await page.unroute((url) => url.pathname.endsWith('/v1/authorize') && url.search.includes('prompt=none'));
  await page.locator('#sign-in').click();
  await expect(page.getByLabel('Username')).toBeVisible();
});
