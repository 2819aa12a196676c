import { expect, test, type Page, type BrowserContext, type Route } from '@playwright/test';

/** The app's client id at the embedded authorization server (`end2end/dev-idp.json`). */
export const CLIENT_ID = '0oa-dev-spa';
/** `localStorage` (TOKEN_STORAGE=local): the session the app's tabs share. */
export const SESSION_KEY = `okta-implicit.session.${CLIENT_ID}`;
/** `sessionStorage`: the sign-in this tab started. */
export const PENDING_KEY = `okta-implicit.pending.${CLIENT_ID}`;
/** The `BroadcastChannel` the app's tabs talk on. */
export const TABS_CHANNEL = `okta-implicit.tabs.${CLIENT_ID}`;

export interface User { login: string; password: string; name: string }

export const users = {
  alice: { login: 'alice@example.com', password: 'alice-password', name: 'Alice Example' },
  bob: { login: 'bob@example.com', password: 'bob-password', name: 'Bob Example' },
  carol: { login: 'carol@example.com', password: 'carol-password', name: 'Carol Example' },
};

/**
 * A user of `end2end/dev-idp.json` that only one test uses, for tests that
 * change the user's token lifetime or end their session at the server.
 */
export function testUser(name: string): User {
  return {
    login: `${name}@example.com`,
    password: 'test-password',
    name: `${name[0].toUpperCase()}${name.slice(1)} Test`,
  };
}

/** Fills the authorization server's sign-in form. */
export async function submitLogin(page: Page, user: { login: string; password: string }) {
  await expect(page.getByLabel('Username')).toBeVisible();
  await page.getByLabel('Username').fill(user.login);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits until the page has hydrated. */
export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
}

/** From the app's home page: Sign in, fill the form, land on `landing`. */
export async function signIn(page: Page, user: User, landing = '/profile') {
  await page.goto('/');
  await hydrated(page);
  await page.locator('#sign-in').click();
  await submitLogin(page, user);
  await page.waitForURL((url) => url.pathname === landing);
  await expect(page.locator('#sign-out')).toBeVisible();
}

/**
 * The session the app keeps in `localStorage`, as JSON text. Read from the
 * browser context's storage for the app's origin, not by running a script
 * in the page, so it gives the right answer whatever the page is doing (on
 * its way to the issuer, say) instead of failing with "Execution context
 * was destroyed".
 */
export async function storedSession(page: Page): Promise<string | null> {
  const origin = new URL(test.info().project.use.baseURL!).origin;
  const { origins } = await page.context().storageState();
  const items = origins.find((o) => o.origin === origin)?.localStorage ?? [];
  return items.find((item) => item.name === SESSION_KEY)?.value ?? null;
}

/** The claims of a JWT, read (not checked). */
export function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

/** Whose session the app keeps in `localStorage` (its ID token's email), or null. */
export async function storedPerson(page: Page): Promise<string | null> {
  const stored = await storedSession(page);
  return stored ? (jwtClaims(JSON.parse(stored).id_token).email as string) : null;
}

/** Every value in the tab's Web Storage, both kinds. */
export async function webStorage(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const all: string[] = [];
    for (const s of [localStorage, sessionStorage]) {
      for (let i = 0; i < s.length; i++) all.push(`${s.key(i)}=${s.getItem(s.key(i)!)}`);
    }
    return all;
  });
}

/** Every URL in the tab's history (Chrome DevTools protocol). */
export async function historyUrls(context: BrowserContext, page: Page): Promise<string[]> {
  const cdp = await context.newCDPSession(page);
  const { entries } = await cdp.send('Page.getNavigationHistory');
  await cdp.detach();
  return entries.map((e: { url: string }) => e.url);
}

/** Dev-only control: tokens issued to `login` from now on live `seconds`. */
export async function setTokenLifetime(page: Page, idp: string, login: string, seconds: number | null) {
  const res = await page.request.post(`${idp}/dev/token-lifetime`, { data: { login, seconds } });
  expect(res.ok(), await res.text()).toBeTruthy();
}

/** Dev-only control: ends `login`'s sessions at the authorization server. */
export async function endSessions(page: Page, idp: string, login: string) {
  const res = await page.request.post(`${idp}/dev/end-sessions`, { data: { login } });
  expect(res.ok(), await res.text()).toBeTruthy();
}

/**
 * Signs in but keeps the browser from reaching the callback: the sign-in
 * form's answer (a redirect to the callback with the tokens in its
 * fragment) is caught, and its Location returned. The pending sign-in stays
 * in the tab's sessionStorage, ready for a tampered callback.
 */
export async function captureCallback(page: Page, user: User): Promise<string> {
  let location = '';
  await page.route('**/v1/sign-in', async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    location = response.headers()['location'] ?? '';
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<p>captured</p>' });
  });
  await page.goto('/');
  await hydrated(page);
  await page.locator('#sign-in').click();
  await submitLogin(page, user);
  await expect(page.locator('p')).toHaveText('captured');
  await page.unroute('**/v1/sign-in');
  expect(location).toMatch(/\/login\/callback[?#].*(access_token|id_token|code)=/);
  await page.goto('/');
  return location;
}

/**
 * The answer's parameters of a callback URL: the fragment, or the query
 * when there is no fragment (the code flow's default response mode).
 */
export function answerOf(url: string): { base: string; mark: '?' | '#'; params: URLSearchParams } {
  const hash = url.indexOf('#');
  if (hash >= 0) return { base: url.slice(0, hash), mark: '#', params: new URLSearchParams(url.slice(hash + 1)) };
  const query = url.indexOf('?');
  return { base: url.slice(0, query), mark: '?', params: new URLSearchParams(url.slice(query + 1)) };
}

export function withParam(url: string, name: string, change: (v: string) => string): string {
  const { base, mark, params } = answerOf(url);
  params.set(name, change(params.get(name)!));
  return `${base}${mark}${params.toString()}`;
}

/**
 * Changes one character near the end of a token (its signature). Not the
 * last one: in base64url its low bits are padding, so changing it can make
 * the token undecodable rather than wrongly signed.
 */
export function flipSignatureChar(s: string): string {
  const i = s.length - 10;
  return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
}

export async function expectRefused(page: Page, url: string, reason: RegExp) {
  await page.goto(url);
  await expect(page.locator('#sign-in-error')).toContainText(reason);
  expect(page.url()).not.toContain('#');
  expect(page.url()).not.toContain('?');
  expect(await storedSession(page)).toBeNull();
  await expect(page.locator('#try-again')).toBeVisible();
}

/** Answers `/api/whoami` with 401 invalid_token the first `times` times. */
export async function refuseWhoami(page: Page, times: number): Promise<() => number> {
  let refused = 0;
  await page.route('**/api/whoami', async (route: Route) => {
    if (refused < times) {
      refused++;
      await route.fulfill({
        status: 401,
        headers: {
          'www-authenticate': 'Bearer realm="api", error="invalid_token", error_description="the token has expired"',
          'content-type': 'application/json',
        },
        body: JSON.stringify({ error: 'invalid_token', error_description: 'the token has expired' }),
      });
    } else {
      await route.continue();
    }
  });
  return () => refused;
}
