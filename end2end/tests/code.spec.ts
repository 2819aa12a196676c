import { type Page, type Request } from '@playwright/test';
import { test, expect } from './fixtures';
import {
  users, testUser, signIn, storedSession, setTokenLifetime, captureCallback, expectRefused, refuseWhoami,
  answerOf, hydrated, PENDING_KEY, CLIENT_ID,
} from './helpers';

// What only the authorization code flow has (the `code` project:
// RESPONSE_TYPE=code with offline_access, port 3040): the code and its PKCE
// verifier are single-use and bound together, and the refresh token
// rotates at every renewal without any two tabs ever sending the same one.
// The scenarios both flows share run in response-types.spec.ts and
// sessions.spec.ts for this project too.

/** The pending sign-in this tab keeps in sessionStorage. */
async function pendingSignIn(page: Page): Promise<{ state: string; code_verifier: string }> {
  return JSON.parse((await page.evaluate((k) => sessionStorage.getItem(k), PENDING_KEY))!);
}

/** The refresh token a refresh request sends. */
function refreshTokenSent(r: Request): string | null {
  if (!r.url().endsWith('/v1/token') || r.method() !== 'POST') return null;
  const form = new URLSearchParams(r.postData() ?? '');
  return form.get('grant_type') === 'refresh_token' ? form.get('refresh_token') : null;
}

test('a code used once is refused the second time, and the tokens of its first use are revoked', async ({ page, idp }) => {
  const callback = await captureCallback(page, users.alice);
  const { params } = answerOf(callback);
  const pending = await pendingSignIn(page);
  // Someone who got hold of the callback URL and the verifier spends the
  // code first.
  const first = await page.request.post(`${idp}/v1/token`, {
    form: {
      grant_type: 'authorization_code',
      code: params.get('code')!,
      redirect_uri: new URL('/login/callback', page.url()).toString(),
      client_id: CLIENT_ID,
      code_verifier: pending.code_verifier,
    },
  });
  expect(first.status(), await first.text()).toBe(200);
  const stolen = await first.json();

  await expectRefused(page, callback, /invalid_grant/);
  // The issuer took the second use for a replay: what the first use got
  // is revoked too.
  for (const token of [stolen.access_token, stolen.refresh_token]) {
    const introspection = await page.request.post(`${idp}/v1/introspect`, {
      form: { token, client_id: CLIENT_ID },
    });
    expect(await introspection.json()).toEqual({ active: false });
  }
});

test('a code exchanged with another verifier is refused', async ({ page }) => {
  const callback = await captureCallback(page, users.alice);
  await page.evaluate((k) => {
    const p = JSON.parse(sessionStorage.getItem(k)!);
    // Another verifier of the same shape: 43 base64url characters.
    p.code_verifier = 'A'.repeat(43);
    sessionStorage.setItem(k, JSON.stringify(p));
  }, PENDING_KEY);
  await expectRefused(page, callback, /invalid_grant/);
});

test('the code and state leave the address bar and history before the wasm runs', async ({ page, context }) => {
  await page.goto('/');
  await hydrated(page);
  await page.route('**/pkg/*.wasm', (route) => route.abort());
  await page.locator('#sign-in').click();
  await page.getByLabel('Username').fill(users.bob.login);
  await page.getByLabel('Password').fill(users.bob.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === '/login/callback', { waitUntil: 'domcontentloaded' });
  await expect(page.locator('h1')).toHaveText('Signing in…');
  expect(page.url()).not.toMatch(/[?&#](code|state)=/);
  // The app's history entries: the callback's is there, without its query.
  // (The issuer's own entry carries the request's state; it is the
  // issuer's page, and the state is not a credential.)
  const cdp = await context.newCDPSession(page);
  const { entries } = await cdp.send('Page.getNavigationHistory');
  const app = new URL(page.url()).origin;
  const ours = (entries as { url: string }[]).map((e) => e.url).filter((u) => u.startsWith(app));
  expect(ours.some((u) => u.endsWith('/login/callback'))).toBe(true);
  for (const url of ours) expect(url).not.toMatch(/[?&#](code|state)=/);
});

test('the refresh token rotates at every renewal, and two tabs renewing at once never send the same one', async ({ page, context, idp }) => {
  test.setTimeout(120_000);
  const user = testUser('peggy');
  await setTokenLifetime(page, idp, user.login, 20);
  await signIn(page, user);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(user.login);

  const sent: string[] = [];
  const issued: string[] = [JSON.parse((await storedSession(page))!).refresh_token];
  context.on('request', (r) => { const token = refreshTokenSent(r); if (token) sent.push(token); });
  context.on('response', async (r) => {
    if (refreshTokenSent(r.request()) && r.status() === 200) issued.push((await r.json()).refresh_token);
  });

  // Both tabs are refused at the same moment, again and again: both must
  // renew at once. One does; the other takes what it got.
  for (let round = 0; round < 6; round++) {
    await refuseWhoami(page, 1);
    await refuseWhoami(other, 1);
    const answered = [page, other].map((tab) => tab.waitForResponse(
      (r) => r.url().endsWith('/api/whoami') && r.status() === 200,
    ));
    await Promise.all([page.locator('#refresh').click(), other.locator('#refresh').click()]);
    await Promise.all(answered);
    await page.unroute('**/api/whoami');
    await other.unroute('**/api/whoami');
  }
  // And the tabs' own timers, through two more token lifetimes.
  await page.waitForTimeout(40_000);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);

  console.log(`refresh token rotation, two tabs: ${sent.length} refreshes, ${new Set(sent).size} distinct tokens sent`);
  expect(sent.length).toBeGreaterThanOrEqual(6 + 2);
  // Never the same refresh token twice, and each one the newest issued.
  expect(new Set(sent).size).toBe(sent.length);
  for (const token of sent) expect(issued).toContain(token);
  expect(new Set(issued).size).toBe(issued.length);
  // Both tabs hold the last one.
  const last = JSON.parse((await storedSession(page))!).refresh_token;
  expect(last).toBe(issued[issued.length - 1]);
  await other.locator('#refresh').click();
  await expect(other.locator('#whoami-sub')).toHaveText(user.login);
});
