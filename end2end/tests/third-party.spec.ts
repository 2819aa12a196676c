import { type Page } from '@playwright/test';
import { test, expect } from './fixtures';
import { testUser, signIn, setTokenLifetime, storedSession, type User } from './helpers';

// Why the code flow exists: the issuer on another site than the app, as a
// real Okta org is (`*.okta.com`), in a browser that blocks third-party
// cookies (Chromium with `--test-third-party-cookie-phaseout`, as Safari,
// Firefox's Enhanced Tracking Protection, Brave and Chrome with the setting
// on do). The app is on localhost, the embedded authorization server on
// 127.0.0.1: another site. Projects third-party-code (RESPONSE_TYPE=code
// with offline_access) and third-party-implicit (id_token token).

const LIFETIME = 20;

/** Asks the server again (the profile's button) and expects `user`'s data. */
async function loadsProtectedData(page: Page, user: User) {
  const answer = page.waitForResponse('**/api/whoami');
  await page.locator('#refresh').click();
  expect((await answer).status()).toBe(200);
  await expect(page.locator('#whoami-sub')).toHaveText(user.login);
}

test('with third-party cookies blocked and the issuer on another site, the session lasts or ends as documented', async ({ page, idp, responseType }) => {
  test.setTimeout(150_000);
  const issuer = new URL(idp).origin;
  expect(new URL(idp).hostname).toBe('127.0.0.1');
  const user = testUser(responseType === 'code' ? 'rupert' : 'sybil');
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

  if (responseType === 'code') {
    // The refresh token needs no cookie: the tab keeps loading protected
    // data across more than three token lifetimes.
    const start = Date.now();
    const seconds = 3.5 * LIFETIME;
    while (Date.now() - start < seconds * 1000) {
      await page.waitForTimeout(5_000);
      await loadsProtectedData(page, user);
    }
    const refreshes = issuerRequests.filter((r) => r === 'POST /oauth2/default/v1/token').length;
    console.log(`third-party cookies blocked, code + refresh token: ${seconds / LIFETIME} lifetimes survived, `
      + `${issuerRequests.length} issuer requests (${refreshes} refreshes), `
      + `${(issuerRequests.length / (seconds / LIFETIME)).toFixed(1)} per lifetime, ${topLevelAtIssuer} top-level visits`);
    expect(topLevelAtIssuer).toBe(0);
    expect(refreshes).toBeGreaterThanOrEqual(3);
    await expect(page.locator('#notice')).toHaveCount(0);
  } else {
    // The hidden iframe's request to the issuer carries no cookie: the
    // issuer answers login_required, and the session ends at expiry.
    await expect(page.locator('#notice')).toHaveText(
      'Your session at the sign-in service has ended. Please sign in again.',
      { timeout: (LIFETIME + 5) * 1000 },
    );
    const silent = issuerRequests.filter((r) => r.startsWith('GET /oauth2/default/v1/authorize'));
    console.log(`third-party cookies blocked, id_token token: the session ended after 1 lifetime, `
      + `${issuerRequests.length} issuer requests (${silent.length} silent sign-ins), ${topLevelAtIssuer} top-level visits`);
    expect(silent.length).toBeGreaterThanOrEqual(1);
    expect(topLevelAtIssuer).toBe(0);
    expect(await storedSession(page)).toBeNull();
  }
});
