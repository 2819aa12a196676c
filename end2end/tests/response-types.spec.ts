import { test, expect } from './fixtures';
import {
  users, signIn, storedSession, hydrated, submitLogin, captureCallback, withParam, flipSignatureChar,
  expectRefused, PENDING_KEY, testUser, setTokenLifetime, answerOf,
} from './helpers';

// The core scenarios for each RESPONSE_TYPE: `id_token token` (port 3000),
// `token` (3010), `id_token` (3020), and `code` with refresh tokens (3040)
// and without, its code in the fragment (3050), one Playwright project each.

test('sign in, see what this response type gives, and never call the API without a token', async ({ page, responseType }) => {
  const apiCalls: { url: string; authorization?: string }[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.match(/^\/api\/(whoami|messages|report)$/)) {
      apiCalls.push({ url: r.url(), authorization: r.headers()['authorization'] });
    }
  });
  await signIn(page, users.alice);
  await expect(page.locator('#expires-in')).toHaveText(/^(59|60) min left$/);

  if (responseType === 'token') {
    await expect(page.getByText('No ID token was asked for.')).toBeVisible();
  } else {
    await expect(page.locator('#claim-name')).toHaveText(users.alice.name);
    await expect(page.locator('#nav-user')).toHaveText(users.alice.name);
  }
  if (responseType === 'id_token') {
    await expect(page.locator('#no-access-token')).toContainText('RESPONSE_TYPE="id_token token"');
    await page.locator('nav').getByRole('link', { name: 'Messages' }).click();
    await expect(page.locator('#no-access-token')).toBeVisible();
    await page.locator('nav').getByRole('link', { name: 'Report' }).click();
    await expect(page.locator('#no-access-token')).toBeVisible();
    await page.waitForTimeout(500);
    // Signed in all along: no missing token taken for an expired session.
    await expect(page.locator('#sign-out')).toBeVisible();
    expect(apiCalls).toEqual([]);
  } else {
    await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
    expect(apiCalls.length).toBeGreaterThan(0);
    for (const call of apiCalls) expect(call.authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  }
});

test('a reload keeps the session', async ({ page, responseType }) => {
  await signIn(page, users.bob);
  await page.reload();
  await hydrated(page);
  await expect(page.locator('#sign-out')).toBeVisible();
  if (responseType === 'id_token') {
    await expect(page.locator('#claim-email')).toHaveText(users.bob.login);
  } else {
    await expect(page.locator('#whoami-sub')).toHaveText(users.bob.login);
  }
});

test('a deep link while signed out comes back to it after sign-in', async ({ page, responseType }) => {
  await page.goto('/messages');
  await submitLogin(page, users.carol);
  await page.waitForURL((url) => url.pathname === '/messages');
  if (responseType === 'id_token') {
    await expect(page.locator('#no-access-token')).toBeVisible();
  } else {
    await expect(page.locator('#messages li')).toHaveCount(2);
  }
});

test('sign-out ends the session, at the issuer when the response type allows it', async ({ page, context, responseType, refreshTokens }) => {
  await signIn(page, users.alice);
  const refreshToken: string | undefined = JSON.parse((await storedSession(page))!).refresh_token;
  expect(Boolean(refreshToken)).toBe(refreshTokens);
  const logout: string[] = [];
  const order: string[] = [];
  context.on('request', (r) => {
    if (r.url().includes('/v1/logout')) logout.push(r.url());
    if (r.url().includes('/v1/logout') || (r.url().includes('/v1/revoke') && r.method() === 'POST')) order.push(r.url());
  });
  const revoked = refreshTokens
    ? page.waitForResponse((r) => r.url().endsWith('/v1/revoke') && r.request().method() === 'POST')
    : null;
  const errors: number[] = [];
  page.on('response', (r) => { if (r.status() >= 400) errors.push(r.status()); });
  await page.locator('#sign-out').click();

  if (responseType === 'token') {
    // No ID token for id_token_hint: Okta would show an error page, so the
    // app signs out here only and says that the issuer session stays.
    await expect(page.locator('#notice')).toContainText('Your session at the sign-in service stays open');
    expect(logout).toEqual([]);
  } else {
    await page.waitForURL((url) => url.pathname === '/' && url.search === '');
    await expect(page.locator('#notice')).toHaveText('You are signed out.');
    expect(logout.length).toBe(1);
    expect(logout[0]).toContain('id_token_hint=');
  }
  if (revoked) {
    // The refresh token is revoked first, as a public client, then the
    // browser goes to the issuer's logout.
    const answer = await revoked;
    expect(answer.status()).toBe(200);
    const form = new URLSearchParams(answer.request().postData() ?? '');
    expect([form.get('token'), form.get('token_type_hint'), form.get('client_id')])
      .toEqual([refreshToken, 'refresh_token', '0oa-dev-spa']);
    expect(order[0]).toContain('/v1/revoke');
    expect(order[1]).toContain('/v1/logout');
  }
  await expect(page.locator('#sign-out')).toHaveCount(0);
  expect(await storedSession(page)).toBeNull();
  expect(errors).toEqual([]);
});

test.describe('tampered callbacks are refused', () => {
  test('state changed', async ({ page }) => {
    const url = await captureCallback(page, users.alice);
    await expectRefused(page, withParam(url, 'state', (s) => s + 'x'), /does not match the sign-in that was started/);
  });

  test('nonce changed', async ({ page, responseType }) => {
    test.skip(responseType === 'token', 'no ID token, so no nonce');
    const url = await captureCallback(page, users.alice);
    await page.evaluate((k) => {
      const p = JSON.parse(sessionStorage.getItem(k)!);
      p.nonce = 'another-nonce';
      sessionStorage.setItem(k, JSON.stringify(p));
    }, PENDING_KEY);
    await expectRefused(page, url, /nonce does not match/);
  });

  test('ID token signature broken', async ({ page, responseType }) => {
    test.skip(responseType === 'token', 'no ID token');
    const url = await captureCallback(page, users.alice);
    if (responseType === 'code') {
      // The ID token comes from the token endpoint: broken on its way back.
      await page.route('**/v1/token', async (route) => {
        const answer = await route.fetch();
        const tokens = await answer.json();
        tokens.id_token = flipSignatureChar(tokens.id_token);
        await route.fulfill({ response: answer, json: tokens });
      });
      await expectRefused(page, url, /signature is not valid/);
    } else {
      await expectRefused(page, withParam(url, 'id_token', flipSignatureChar), /signature is not valid/);
    }
  });

  test('access token altered (at_hash)', async ({ page, responseType }) => {
    test.skip(responseType !== 'id_token token', 'at_hash binds an access token to an ID token in one answer');
    const url = await captureCallback(page, users.alice);
    await expectRefused(page, withParam(url, 'access_token', flipSignatureChar), /at_hash/);
  });

  test('an answer of another response type', async ({ page, responseType }) => {
    const url = await captureCallback(page, users.alice);
    // Drop what this response type needs: the check names what is missing.
    const { base, mark, params } = answerOf(url);
    const needed = { 'id_token': 'id_token', 'code': 'code' }[responseType as string] ?? 'access_token';
    params.delete(needed);
    await expectRefused(page, `${base}${mark}${params.toString()}`, new RegExp(`has no ${needed}`));
  });
});

test("a renewal that brings another person's tokens ends the session instead of switching person", async ({ page, context, idp, responseType, refreshTokens }) => {
  test.skip(refreshTokens, 'a refresh token renews its own person\'s session; the issuer\'s sign-in plays no part');
  test.setTimeout(60_000);
  const lifetime = 20;
  const judy = testUser('judy');
  await setTokenLifetime(page, idp, judy.login, lifetime);
  await signIn(page, judy);
  // What each response type shows of the person.
  const person = responseType === 'id_token' ? page.locator('#claim-email') : page.locator('#whoami-sub');
  await expect(person).toHaveText(judy.login);
  const stored = JSON.parse((await storedSession(page))!);
  const stopped = new Promise<void>((resolve) => {
    page.on('console', (m) => { if (m.text().includes('session renewal stopped: the renewed tokens are for another person')) resolve(); });
  });

  // Mallory signs in at the authorization server in another tab of the
  // same browser, without the app ever seeing her tokens there: the
  // server's session cookie is hers now.
  const tab = await context.newPage();
  // The sign-in form's answer redirects to the app's callback with her
  // tokens: keep its session cookie, drop the redirect.
  await tab.route('**/v1/sign-in', async (route) => {
    const answer = await route.fetch({ maxRedirects: 0 });
    await route.fulfill({
      status: 200,
      contentType: 'text/html',
      headers: { 'set-cookie': answer.headers()['set-cookie'] ?? '' },
      body: 'captured',
    });
  });
  const callback = encodeURIComponent(new URL('/login/callback', page.url()).toString());
  await tab.goto(`${idp}/v1/authorize?client_id=0oa-dev-spa&response_type=id_token+token&scope=openid&redirect_uri=${callback}&state=s&nonce=n&prompt=login`);
  await submitLogin(tab, testUser('mallory'));
  await expect(tab.locator('body')).toHaveText('captured');
  await tab.close();

  // The renewal brings mallory's tokens: refused (with no ID token, the
  // server says whom the new access token names), and the tab keeps
  // judy's until they expire, then says why.
  // The tab says when it refused them; a build that would not gets the
  // time to take them before the check below.
  await Promise.race([stopped, page.waitForTimeout(lifetime * 1000)]);
  const after = JSON.parse((await storedSession(page))!);
  expect([after.sub, after.access_token, after.id_token]).toEqual([stored.sub, stored.access_token, stored.id_token]);
  await stopped;
  await expect(person).toHaveText(judy.login);
  await expect(page.locator('#notice')).toHaveText(
    'Your session has ended: the sign-in service now has another person signed in. Please sign in again.',
    { timeout: (lifetime + 5) * 1000 },
  );
  await expect(page.locator('#nav-user')).toHaveCount(0);
  expect(await storedSession(page)).toBeNull();
});
