import { expect, type Page, type BrowserContext } from '@playwright/test';

export const IDP = process.env.IDP_URL ?? 'http://localhost:3100/oauth2/default';
export const SESSION_KEY = 'okta-implicit.session';
export const PENDING_KEY = 'okta-implicit.pending';

export const users = {
  alice: { login: 'alice@example.com', password: 'alice-password', name: 'Alice Example' },
  bob: { login: 'bob@example.com', password: 'bob-password', name: 'Bob Example' },
  carol: { login: 'carol@example.com', password: 'carol-password', name: 'Carol Example' },
};
export type User = (typeof users)[keyof typeof users];

/** Fills the authorization server's sign-in form. */
export async function submitLogin(page: Page, user: { login: string; password: string }) {
  await expect(page.getByLabel('Username')).toBeVisible();
  await page.getByLabel('Username').fill(user.login);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** From the app's home page: Sign in, fill the form, land on `landing`. */
export async function signIn(page: Page, user: User, landing = '/profile') {
  await page.goto('/');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  await page.locator('#sign-in').click();
  await submitLogin(page, user);
  await page.waitForURL((url) => url.pathname === landing);
  await expect(page.locator('#sign-out')).toBeVisible();
}

export async function storedSession(page: Page): Promise<string | null> {
  return page.evaluate((k) => sessionStorage.getItem(k), SESSION_KEY);
}

/** Every URL in the tab's history (Chrome DevTools protocol). */
export async function historyUrls(context: BrowserContext, page: Page): Promise<string[]> {
  const cdp = await context.newCDPSession(page);
  const { entries } = await cdp.send('Page.getNavigationHistory');
  await cdp.detach();
  return entries.map((e: { url: string }) => e.url);
}

/** Dev-only control of the embedded authorization server. */
export async function setTokenLifetime(page: Page, login: string, seconds: number | null) {
  const res = await page.request.post(`${IDP}/dev/token-lifetime`, { data: { login, seconds } });
  expect(res.ok(), await res.text()).toBeTruthy();
}
