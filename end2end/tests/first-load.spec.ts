import { type CDPSession, type Page } from '@playwright/test';
import { test, expect } from './fixtures';
import { users, hydrated, submitLogin } from './helpers';

// What a browser gets on the wire: the bytes Chromium counts
// (Network.loadingFinished encodedDataLength: headers and body as sent) for a
// first visit and a return visit, and the cache doing its work on reload.

interface Fetched { url: string; bytes: number; encoding: string; fromCache: boolean }

/** Records every response of `page` until the returned function is called. */
async function recordNetwork(cdp: CDPSession): Promise<() => Fetched[]> {
  await cdp.send('Network.enable');
  const byId = new Map<string, Fetched>();
  // Chromium reports a cache hit before the response itself.
  const cached = new Set<string>();
  const done: Fetched[] = [];
  cdp.on('Network.responseReceived', (e) => {
    const headers = Object.fromEntries(
      Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), String(v)]),
    );
    byId.set(e.requestId, {
      url: e.response.url,
      bytes: 0,
      encoding: headers['content-encoding'] ?? '',
      fromCache: cached.has(e.requestId) || Boolean(e.response.fromDiskCache || e.response.fromPrefetchCache),
    });
  });
  cdp.on('Network.requestServedFromCache', (e) => { cached.add(e.requestId); });
  cdp.on('Network.loadingFinished', (e) => {
    const seen = byId.get(e.requestId);
    if (seen) {
      seen.bytes = e.encodedDataLength;
      done.push(seen);
      byId.delete(e.requestId);
    }
  });
  return () => done.splice(0, done.length);
}

const sum = (all: Fetched[]) => all.reduce((n, f) => n + f.bytes, 0);
const ofApp = (all: Fetched[], origin: string) => all.filter((f) => f.url.startsWith(origin));
const describe = (all: Fetched[]) =>
  all.map((f) => `${new URL(f.url).pathname} ${f.bytes} B${f.encoding ? ` ${f.encoding}` : ''}${f.fromCache ? ' (cache)' : ''}`).join(', ');

async function settle(page: Page) {
  await page.waitForLoadState('networkidle');
}

test('first load: assets arrive compressed, and a reload fetches none of them again', async ({ browser, baseURL }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const take = await recordNetwork(cdp);
  const origin = new URL(baseURL!).origin;

  await page.goto('/');
  await hydrated(page);
  await settle(page);
  const cold = ofApp(take(), origin);
  const wasm = cold.find((f) => f.url.endsWith('.wasm'));
  expect(wasm, describe(cold)).toBeDefined();
  expect(wasm!.encoding).toBe('br');
  expect(new URL(wasm!.url).pathname).toMatch(/^\/pkg\/okta-implicit\.[\w-]+\.wasm$/);
  for (const f of cold.filter((f) => /\.(js|css|wasm)$/.test(f.url))) expect(f.encoding, f.url).toBe('br');

  await page.reload();
  await hydrated(page);
  await settle(page);
  const warm = ofApp(take(), origin);
  // Nothing under /pkg/ crossed the network again (no request, or one
  // answered from the cache with no bytes transferred).
  const assetsAgain = warm.filter((f) => f.url.includes('/pkg/') && !f.fromCache && f.bytes > 0);
  expect(assetsAgain, describe(warm)).toEqual([]);

  // After sign-in: the callback page, the checks, the profile's data.
  await page.locator('#sign-in').click();
  await submitLogin(page, users.alice);
  await page.waitForURL('**/profile');
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  await settle(page);
  const afterSignIn = ofApp(take(), origin);
  expect(afterSignIn.filter((f) => f.url.includes('/pkg/') && !f.fromCache && f.bytes > 0)).toEqual([]);

  console.log(`first visit to /, cold cache: ${sum(cold)} B on the wire [${describe(cold)}]`);
  console.log(`reload of /, warm cache: ${sum(warm)} B [${describe(warm)}]`);
  console.log(`callback and /profile after sign-in, warm cache: ${sum(afterSignIn)} B [${describe(afterSignIn)}]`);
  await context.close();
});

test('signed-in /profile with a cold cache', async ({ browser, baseURL }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto('/');
  await hydrated(page);
  await page.locator('#sign-in').click();
  await submitLogin(page, users.alice);
  await page.waitForURL('**/profile');
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);

  // A new tab of the same browser with its HTTP cache cleared: the
  // session is there (localStorage), the assets are not.
  const fresh = await context.newPage();
  const cdp = await context.newCDPSession(fresh);
  const take = await recordNetwork(cdp);
  await cdp.send('Network.clearBrowserCache');
  await fresh.goto('/profile');
  await expect(fresh.locator('#whoami-sub')).toHaveText(users.alice.login);
  await settle(fresh);
  const cold = ofApp(take(), new URL(baseURL!).origin);
  console.log(`signed-in /profile, cold cache: ${sum(cold)} B on the wire [${describe(cold)}]`);
  expect(cold.find((f) => f.url.endsWith('.wasm'))?.encoding).toBe('br');
  await context.close();
});
