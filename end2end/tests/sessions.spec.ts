import { type BrowserContext, type Page, type Request, type Route } from '@playwright/test';
import { test, expect } from './fixtures';
import {
  users, testUser, signIn, storedSession, storedPerson, setTokenLifetime, endSessions, hydrated, submitLogin,
  TABS_CHANNEL, refuseWhoami, jwtClaims, type User,
} from './helpers';

// Sessions that last and span tabs: renewal (a hidden prompt=none iframe in
// the implicit flow, the refresh token in the code flow's `code` project),
// one renewal for all tabs, renew-then-retry, sign-out and sign-in
// everywhere. Long-lived tests each have a user of their own (dev-idp.json),
// whose tokens the authorization server makes short-lived.

const LIFETIME = 20;

/** Every authorize request any page or iframe of `context` sends. */
function watchAuthorize(context: BrowserContext): string[] {
  const seen: string[] = [];
  context.on('request', (r) => {
    if (new URL(r.url()).pathname.endsWith('/v1/authorize')) seen.push(r.url());
  });
  return seen;
}

/** Console errors and uncaught exceptions of `page`. */
function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

/** Asks the server again (the profile's button) and expects `user`'s data. */
async function loadsProtectedData(page: Page, user: User) {
  const answer = page.waitForResponse('**/api/whoami');
  await page.locator('#refresh').click();
  expect((await answer).status()).toBe(200);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
}

async function accessToken(page: Page): Promise<string> {
  return JSON.parse((await storedSession(page))!).access_token;
}

async function shortLivedSignIn(page: Page, idp: string, user: User) {
  await setTokenLifetime(page, idp, user.login, LIFETIME);
  await signIn(page, user);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
}

const isSilent = (url: string | URL) => {
  const text = url.toString();
  return text.includes('/v1/authorize') && text.includes('prompt=none');
};

/** A refresh at the token endpoint (the code flow with refresh tokens). */
function isRefresh(r: Request): boolean {
  return new URL(r.url()).pathname.endsWith('/v1/token') && r.method() === 'POST'
    && new URLSearchParams(r.postData() ?? '').get('grant_type') === 'refresh_token';
}

/** A renewal: a silent sign-in in the iframe, or a refresh. */
const isRenewal = (r: Request) => isSilent(r.url()) || isRefresh(r);

/** Every renewal any page or iframe of `context` sends. */
function watchRenewals(context: BrowserContext): Request[] {
  const seen: Request[] = [];
  context.on('request', (r) => { if (isRenewal(r)) seen.push(r); });
  return seen;
}

/** Routes `page`'s renewals (of either kind) to `handler`; anything else on those paths goes on. */
async function routeRenewals(page: Page, handler: (route: Route) => Promise<void> | void) {
  const renewalPaths = (url: URL) => url.pathname.endsWith('/v1/authorize') || url.pathname.endsWith('/v1/token');
  await page.route(renewalPaths, async (route) => {
    if (isRenewal(route.request())) await handler(route);
    else await route.fallback();
  });
}

test('with 20 s tokens a tab keeps loading protected data for 3 minutes, renewing once per token', async ({ page, context, idp }) => {
  test.setTimeout(240_000);
  const user = testUser('erin');
  const errors = consoleErrors(page);
  await shortLivedSignIn(page, idp, user);

  const authorize = watchAuthorize(context);
  const renewals = watchRenewals(context);
  let topNavigations = 0;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) topNavigations++; });
  const tokensSent = new Set<string>();
  page.on('request', (r) => {
    const auth = r.headers()['authorization'];
    if (auth) tokensSent.add(auth);
  });

  const start = Date.now();
  while (Date.now() - start < 180_000) {
    await page.waitForTimeout(4_000);
    await loadsProtectedData(page, user);
  }
  await expect(page.locator('#expires-in')).toHaveText(/s left$/);

  expect(topNavigations).toBe(0);
  expect(errors).toEqual([]);
  // Each token is renewed once, half-way through its 20 s: about one
  // renewal per 10 s, every one of them silent, and never two for one
  // token.
  expect(authorize.every(isSilent)).toBe(true);
  expect(renewals.length).toBeGreaterThanOrEqual(180 / LIFETIME);
  expect(renewals.length).toBeLessThanOrEqual(180 / (LIFETIME / 2) + 1);
  expect(tokensSent.size).toBeGreaterThanOrEqual(renewals.length - 1);
});

test('two tabs with 20 s tokens: one renewal per token for both, both keep loading data', async ({ page, context, idp }) => {
  test.setTimeout(180_000);
  const user = testUser('frank');
  await shortLivedSignIn(page, idp, user);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(user.login);

  const authorize = watchAuthorize(context);
  const renewals = watchRenewals(context);
  const start = Date.now();
  while (Date.now() - start < 120_000) {
    await page.waitForTimeout(4_000);
    await loadsProtectedData(page, user);
    await loadsProtectedData(other, user);
  }
  console.log(`two tabs, ${LIFETIME} s tokens, 120 s: ${renewals.length} renewals in all`);
  expect(authorize.every(isSilent)).toBe(true);
  // One tab's worth: what a single tab would send, not twice that.
  expect(renewals.length).toBeGreaterThanOrEqual(120 / LIFETIME);
  expect(renewals.length).toBeLessThanOrEqual(120 / (LIFETIME / 2) + 1);
});

test('after the computer slept past expiry, the next call renews first and the session goes on', async ({ page, context, idp }) => {
  test.setTimeout(90_000);
  const user = testUser('walter');
  // The page's clock runs as the real one until the "sleep" below.
  await context.clock.install();
  await shortLivedSignIn(page, idp, user);
  const expiresAt = jwtClaims(await accessToken(page)).exp as number;
  const renewals = watchRenewals(context);

  // Asleep: the page's timers stand still (the renewal timer among them)
  // while the wall clock goes on past the token's expiry; on waking, the
  // clock is right again and the timers go on from where they stood.
  await page.clock.pauseAt((await page.evaluate(() => Date.now())) + 500);
  while (Date.now() / 1000 < expiresAt + 2) await new Promise((r) => setTimeout(r, 500));
  await page.clock.setSystemTime(Date.now());
  await page.clock.resume();
  expect(renewals).toHaveLength(0);

  // The first call after waking: a renewal, then the call with the new
  // token. Not a call without a token, and not "your session has expired".
  await loadsProtectedData(page, user);
  expect(renewals.length).toBeGreaterThanOrEqual(1);
  expect(jwtClaims(await accessToken(page)).exp).toBeGreaterThan(Date.now() / 1000);
  await expect(page.getByText(/session has (expired|ended)/)).toHaveCount(0);
});

test('a new tab opened while signed in shows the profile without asking the issuer', async ({ page, context }) => {
  await signIn(page, users.alice);
  const authorize = watchAuthorize(context);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(users.alice.login);
  await expect(other.locator('#nav-user')).toHaveText(users.alice.name);
  expect(authorize).toEqual([]);
});

test('sign-out in one tab signs out the others within 1 s, and their calls stop', async ({ page, context }) => {
  await signIn(page, users.bob);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(users.bob.login);
  const sentByOther: string[] = [];
  other.on('request', (r) => { if (r.url().includes('/api/')) sentByOther.push(r.url()); });

  await page.locator('#sign-out').click();
  await expect(other.locator('#notice')).toHaveText('You signed out in another tab.', { timeout: 1_000 });
  await expect(other.locator('#sign-out')).toHaveCount(0);
  await expect(other.locator('#sign-in-again')).toBeVisible();

  await other.locator('nav').getByRole('link', { name: 'Messages' }).click();
  await expect(other.locator('#sign-in-again')).toBeVisible();
  await other.waitForTimeout(500);
  expect(sentByOther).toEqual([]);
});

test('sign-in in one tab signs in the others that are on public pages', async ({ page, context }) => {
  const other = await context.newPage();
  await other.goto('/');
  await hydrated(other);
  await expect(other.locator('#signed-out')).toBeVisible();
  let otherNavigations = 0;
  other.on('framenavigated', (f) => { if (f === other.mainFrame()) otherNavigations++; });

  await signIn(page, users.carol);
  await expect(other.locator('#user-name')).toHaveText(users.carol.name);
  await expect(other.locator('#nav-user')).toHaveText(users.carol.name);
  expect(otherNavigations).toBe(0);
});

test('when the session at the issuer ends, the app says so at expiry and signing in returns to the page', async ({ page, idp }) => {
  test.setTimeout(60_000);
  const user = testUser('grace');
  await shortLivedSignIn(page, idp, user);
  await page.locator('nav').getByRole('link', { name: 'Messages' }).click();
  await expect(page.locator('#messages li')).toHaveCount(2);
  await endSessions(page, idp, user.login);

  await expect(page.locator('#notice')).toHaveText(
    'Your session at the sign-in service has ended. Please sign in again.',
    { timeout: (LIFETIME + 5) * 1000 },
  );
  expect(await storedSession(page)).toBeNull();
  await page.locator('#sign-in-again').click();
  await submitLogin(page, user);
  await page.waitForURL((url) => url.pathname === '/messages');
  await expect(page.locator('#messages li')).toHaveCount(2);
});

test('a call refused once (401) renews once and is retried; refused twice, the tab signs out', async ({ page, context }) => {
  await signIn(page, users.alice);
  const before = await accessToken(page);
  const renewals = watchRenewals(context);

  const refusedOnce = await refuseWhoami(page, 1);
  const retried = page.waitForResponse((r) => r.url().endsWith('/api/whoami') && r.status() === 200);
  await page.locator('#refresh').click();
  await retried;
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  expect(refusedOnce()).toBe(1);
  expect(renewals.length).toBe(1);
  expect(await accessToken(page)).not.toBe(before);
  await page.unroute('**/api/whoami');

  await refuseWhoami(page, 2);
  await page.locator('#refresh').click();
  await expect(page.locator('#notice')).toHaveText('Your session has expired. Please sign in again.');
  expect(renewals.length).toBe(2);
  expect(await storedSession(page)).toBeNull();
});

test('a 403 is shown and never retried', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, users.bob);
  const renewals = watchRenewals(context);
  const reports: string[] = [];
  page.on('request', (r) => { if (r.url().includes('/api/report')) reports.push(r.url()); });
  await page.locator('nav').getByRole('link', { name: 'Report' }).click();
  await expect(page.locator('#api-error')).toHaveText('You do not have the reports:read scope.');
  await page.waitForTimeout(500);
  expect(reports.length).toBe(1);
  expect(renewals).toEqual([]);
  await context.close();
});

test.describe('tampered renewals are ignored; the session keeps its tokens until it ends', () => {
  test.setTimeout(60_000);
  test.skip(({ refreshTokens }) => refreshTokens, 'these tamper with the renewal iframe, which a refresh token does not use');

  async function keepsTokensUntilEnd(page: Page, message: string) {
    const before = await accessToken(page);
    const renewals = page.waitForEvent('request', { predicate: (r) => isSilent(r.url()), timeout: 15_000 });
    await renewals;
    await page.waitForTimeout(1_000);
    expect(await accessToken(page)).toBe(before);
    await expect(page.locator('#notice')).toHaveText(message, { timeout: (LIFETIME + 5) * 1000 });
    expect(await storedSession(page)).toBeNull();
  }

  const UNRENEWED = 'Your session has ended: it could not be renewed with the sign-in service. Please sign in again.';

  test('state changed', async ({ page, idp }) => {
    await shortLivedSignIn(page, idp, testUser('heidi'));
    await page.route(isSilent, async (route) => {
      const answer = await route.fetch({ maxRedirects: 0 });
      const location = answer.headers()['location'].replace(/state=([^&]+)/, 'state=$1x');
      await route.fulfill({ status: 302, headers: { location } });
    });
    await keepsTokensUntilEnd(page, UNRENEWED);
  });

  test('nonce changed', async ({ page, idp }) => {
    await shortLivedSignIn(page, idp, testUser('ivan'));
    await page.route(isSilent, (route) =>
      route.continue({ url: route.request().url().replace(/nonce=[^&]+/, 'nonce=another-nonce') }));
    await keepsTokensUntilEnd(page, UNRENEWED);
  });

  test('a message from another origin', async ({ page, context, idp }) => {
    await shortLivedSignIn(page, idp, testUser('niaj'));
    // The real answer is kept from the iframe and posted instead from a
    // window of another origin (127.0.0.1 is not localhost).
    await page.route(isSilent, async (route) => {
      const answer = await route.fetch({ maxRedirects: 0 });
      const fragment = answer.headers()['location'].split('#')[1];
      await route.fulfill({ status: 204 });
      // A page of another origin that runs no script of its own.
      const foreignURL = new URL('/favicon.png', page.url().replace('localhost', '127.0.0.1')).toString();
      const popup = context.waitForEvent('page');
      await page.evaluate((url) => { window.open(url, 'foreign'); }, foreignURL);
      const foreign = await popup;
      await foreign.waitForLoadState();
      await foreign.evaluate((message) => window.opener.postMessage(message, '*'),
        `okta-implicit.silent-callback#${fragment}`);
      await foreign.close();
    });
    await keepsTokensUntilEnd(page, UNRENEWED);
  });
});

test('with the authorization server unreachable the app works until expiry, then says so, quietly', async ({ page, context, idp }) => {
  test.setTimeout(60_000);
  const user = testUser('olivia');
  await shortLivedSignIn(page, idp, user);
  const lines: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') lines.push(m.text()); });
  const renewals = watchRenewals(context);
  await routeRenewals(page, (route) => route.abort('connectionrefused'));

  // Still working while the tokens are valid.
  await page.waitForTimeout(12_000);
  await loadsProtectedData(page, user);
  await expect(page.locator('#notice')).toHaveText(
    'Your session has ended: it could not be renewed with the sign-in service. Please sign in again.',
    { timeout: (LIFETIME + 5) * 1000 },
  );
  expect(renewals.length).toBeGreaterThanOrEqual(2);
  // At most one line of the app's own per try (the browser's own network
  // error line for a refused fetch is not the app's).
  const own = lines.filter((l) => !l.startsWith('Failed to load resource'));
  expect(own.length).toBeLessThanOrEqual(renewals.length);
});

/** Resolves when `page` logs a console line matching `text`. */
function consoleLine(page: Page, text: RegExp): Promise<string> {
  return new Promise((resolve) => {
    page.on('console', (m) => { if (text.test(m.text())) resolve(m.text()); });
  });
}

test("a renewal that ends after another person signed in in another tab is dropped: bob's tabs keep bob", async ({ page, context }) => {
  // Bob's tab waits at the authorization server's form, its sign-in started
  // while nobody was signed in.
  const bobTab = await context.newPage();
  await bobTab.goto('/');
  await hydrated(bobTab);
  await bobTab.locator('#sign-in').click();
  await expect(bobTab.getByLabel('Username')).toBeVisible();

  await signIn(page, users.alice);
  const signOutTab = await context.newPage();
  await signOutTab.goto('/profile');
  await expect(signOutTab.locator('#whoami-sub')).toHaveText(users.alice.login);

  // Alice's tab renews after a refused call; the issuer answers at once
  // (alice is signed in there), but the answer is held on its way back.
  let held!: () => void;
  const isHeld = new Promise<void>((resolve) => { held = resolve; });
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  await routeRenewals(page, async (route) => {
    const answer = await route.fetch({ maxRedirects: 0 });
    held();
    await released;
    await route.fulfill({ response: answer });
  });
  await refuseWhoami(page, 1);
  const dropped = consoleLine(page, /its answer is dropped/);
  await page.locator('#refresh').click();
  await isHeld;

  // Meanwhile alice signs out in another tab, and bob signs in.
  await signOutTab.locator('#sign-out').click();
  await expect(signOutTab.locator('#notice')).toHaveText('You are signed out.');
  await expect(page.locator('#notice')).toHaveText('You signed out in another tab.');
  await submitLogin(bobTab, users.bob);
  await expect(bobTab.locator('#whoami-sub')).toHaveText(users.bob.login);
  await expect(page.locator('#nav-user')).toHaveText(users.bob.name);

  // Alice's renewal comes back now, too late: it changes nothing. The
  // tab says when it has dropped it; a build that would not drop it gets
  // the time it needs to do harm before the checks below.
  release();
  await Promise.race([dropped, page.waitForTimeout(10_000)]);
  await expect(page.locator('#whoami-sub')).toHaveText(users.bob.login);
  for (const tab of [page, bobTab]) await expect(tab.locator('#nav-user')).toHaveText(users.bob.name);
  expect(await storedPerson(page)).toBe(users.bob.login);
  await signOutTab.goto('/profile');
  await expect(signOutTab.locator('#whoami-sub')).toHaveText(users.bob.login);
  // And it was the late answer that was dropped, not one that never came.
  await dropped;
});

test('after sign-out, a replayed session message from before it signs no tab back in', async ({ page, context }) => {
  // A tab records what the tabs say on the app's channel.
  const listener = await context.newPage();
  await listener.goto('/');
  await hydrated(listener);
  await listener.evaluate((name) => {
    const w = window as unknown as { heard: unknown[] };
    w.heard = [];
    new BroadcastChannel(name).onmessage = (e) => w.heard.push(e.data);
  }, TABS_CHANNEL);
  await signIn(page, users.carol);
  await expect(listener.locator('#nav-user')).toHaveText(users.carol.name);
  const message = await listener.evaluate(() =>
    (window as unknown as { heard: string[] }).heard.find((m) => m.includes('"Session"')));
  expect(message).toBeTruthy();

  await page.locator('#sign-out').click();
  await expect(page.locator('#notice')).toHaveText('You are signed out.');
  await expect(listener.locator('#sign-out')).toHaveCount(0);

  // The old session is sent again on the channel.
  const refusedHere = consoleLine(page, /issued before this browser signed out/);
  const refusedThere = consoleLine(listener, /issued before this browser signed out/);
  await listener.evaluate(([name, m]) => new BroadcastChannel(name).postMessage(m), [TABS_CHANNEL, message!] as const);
  // Both tabs say they refused it (a build that took it gets the time it
  // needs to sign them in before the checks below).
  await Promise.race([Promise.all([refusedHere, refusedThere]), page.waitForTimeout(10_000)]);
  for (const tab of [page, listener]) {
    await expect(tab.locator('#sign-out')).toHaveCount(0);
    await expect(tab.locator('#signed-out')).toBeVisible();
  }
  expect(await storedSession(page)).toBeNull();
  await Promise.all([refusedHere, refusedThere]);
});

test('a Web Lock request that settles without granting the lock does not hang a refused call', async ({ page, context }) => {
  // The lock API resolves the request without ever running the callback.
  await page.addInitScript(() => {
    Object.defineProperty(navigator, 'locks', {
      value: { request: () => Promise.resolve(undefined) },
      configurable: true,
    });
  });
  await signIn(page, users.bob);
  const renewals = watchRenewals(context);
  await refuseWhoami(page, 1);
  await page.locator('#refresh').click();
  // No renewal could run under the lock: the refused call ends the session
  // at once, rather than waiting for a grant that never comes.
  await expect(page.locator('#notice')).toHaveText('Your session has expired. Please sign in again.');
  await expect(page.locator('#sign-in-again')).toBeVisible();
  expect(renewals).toEqual([]);
});
