import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from '@playwright/test';
import { test as base, expect } from './fixtures';
import { testUser, signIn, setTokenLifetime, storedSession, type User } from './helpers';

// Why the code flow exists: the issuer on another site than the app, as a
// real Okta org is (`*.okta.com`), in a browser that blocks third-party
// cookies, as Safari, Firefox's Enhanced Tracking Protection, Brave and
// Chrome with the setting on do. The app is on localhost, the embedded
// authorization server on 127.0.0.1: another site, whose session cookie is
// `SameSite=None; Secure` as Okta's is. Projects third-party-code
// (RESPONSE_TYPE=code with offline_access) and third-party-implicit
// (id_token token), and the control, third-party-implicit-allowed: the
// same with third-party cookies allowed, where the implicit flow's iframe
// renewal works.
//
// The Chromium setting is Settings > Privacy and security > Third-party
// cookies, the profile preference `profile.cookie_controls_mode`: 1 blocks
// them, 0 allows them (2, the default of a new profile, blocks them in
// Incognito windows only, and a Playwright browser context counts as one).
// So each test runs in a real profile of its own with the setting written
// in its Preferences, rather than in Playwright's default context.

const COOKIE_CONTROLS = { blocked: 1, allowed: 0 };

const test = base.extend({
  context: async ({ thirdPartyCookies, baseURL }, use) => {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'third-party-'));
    fs.mkdirSync(path.join(profile, 'Default'));
    fs.writeFileSync(
      path.join(profile, 'Default', 'Preferences'),
      JSON.stringify({ profile: { cookie_controls_mode: COOKIE_CONTROLS[thirdPartyCookies] } }),
    );
    const launch = test.info().project.use.launchOptions ?? {};
    const context: BrowserContext = await chromium.launchPersistentContext(profile, {
      executablePath: launch.executablePath,
      args: launch.args,
      baseURL,
    });
    await use(context);
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  },
  page: async ({ context }, use) => {
    await use(context.pages()[0] ?? await context.newPage());
  },
});

const LIFETIME = 20;

/** Asks the server again (the profile's button) and expects `user`'s data. */
async function loadsProtectedData(page: Page, user: User) {
  const answer = page.waitForResponse('**/api/whoami');
  await page.locator('#refresh').click();
  expect((await answer).status()).toBe(200);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
}

test('with the issuer on another site, the session lasts or ends as documented', async ({ page, idp, responseType, thirdPartyCookies }) => {
  test.setTimeout(150_000);
  const issuer = new URL(idp).origin;
  expect(new URL(idp).hostname).toBe('127.0.0.1');
  const survives = responseType === 'code' || thirdPartyCookies === 'allowed';
  const user = testUser(responseType === 'code' ? 'rupert' : thirdPartyCookies === 'blocked' ? 'sybil' : 'victor');
  await setTokenLifetime(page, idp, user.login, LIFETIME);
  await signIn(page, user);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);

  let topLevelAtIssuer = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame() && new URL(f.url()).origin === issuer) topLevelAtIssuer++;
  });
  const issuerRequests: string[] = [];
  page.context().on('request', (r) => {
    if (new URL(r.url()).origin === issuer && r.method() !== 'OPTIONS') issuerRequests.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });

  if (survives) {
    // The refresh token needs no cookie (and, in the control, the iframe
    // gets the issuer's): the tab keeps loading protected data across more
    // than three token lifetimes.
    const start = Date.now();
    const seconds = 3.5 * LIFETIME;
    while (Date.now() - start < seconds * 1000) {
      await page.waitForTimeout(5_000);
      await loadsProtectedData(page, user);
    }
    const renewals = issuerRequests.filter((r) => r === 'POST /oauth2/default/v1/token'
      || r.startsWith('GET /oauth2/default/v1/authorize')).length;
    console.log(`third-party cookies ${thirdPartyCookies}, ${responseType}: ${seconds / LIFETIME} lifetimes survived, `
      + `${issuerRequests.length} issuer requests (${renewals} renewals), `
      + `${(issuerRequests.length / (seconds / LIFETIME)).toFixed(1)} per lifetime, ${topLevelAtIssuer} top-level visits`);
    expect(topLevelAtIssuer).toBe(0);
    expect(renewals).toBeGreaterThanOrEqual(3);
    await expect(page.locator('#notice')).toHaveCount(0);
  } else {
    // The hidden iframe's request to the issuer carries no cookie: the
    // issuer answers login_required, and the session ends at expiry.
    await expect(page.locator('#notice')).toHaveText(
      'Your session at the sign-in service has ended. Please sign in again.',
      { timeout: (LIFETIME + 5) * 1000 },
    );
    const silent = issuerRequests.filter((r) => r.startsWith('GET /oauth2/default/v1/authorize'));
    console.log(`third-party cookies blocked, ${responseType}: the session ended after 1 lifetime, `
      + `${issuerRequests.length} issuer requests (${silent.length} silent sign-ins), ${topLevelAtIssuer} top-level visits`);
    expect(silent.length).toBeGreaterThanOrEqual(1);
    expect(topLevelAtIssuer).toBe(0);
    expect(await storedSession(page)).toBeNull();
  }
});
