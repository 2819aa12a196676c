import { test, expect } from './fixtures';
import { users, signIn, webStorage, hydrated } from './helpers';

// TOKEN_STORAGE=memory (the app on port 3030): no token in Web Storage; a
// reload or a new tab gets the tokens from another open tab, else from a
// silent prompt=none sign-in.

function watchAuthorize(context: import('@playwright/test').BrowserContext): string[] {
  const seen: string[] = [];
  context.on('request', (r) => { if (r.url().includes('/v1/authorize')) seen.push(r.url()); });
  return seen;
}

test('no token in localStorage or sessionStorage, and a reload is still signed in', async ({ page, context }) => {
  await signIn(page, users.alice);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  const stored = await webStorage(page);
  for (const entry of stored) expect(entry).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
  expect(stored.some((e) => e.startsWith('okta-implicit.session='))).toBe(false);

  // Alone, a reload asks the issuer silently (its session cookie is there).
  const authorize = watchAuthorize(context);
  await page.reload();
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  expect(authorize.length).toBe(1);
  expect(authorize[0]).toContain('prompt=none');
  for (const entry of await webStorage(page)) expect(entry).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
});

test('a new tab gets the tokens from an open tab, without the issuer', async ({ page, context }) => {
  await signIn(page, users.bob);
  const authorize = watchAuthorize(context);
  const other = await context.newPage();
  await other.goto('/profile');
  await expect(other.locator('#whoami-sub')).toHaveText(users.bob.login);
  expect(authorize).toEqual([]);
});

test('never signed in: no silent sign-in is tried', async ({ page, context }) => {
  const authorize = watchAuthorize(context);
  await page.goto('/');
  await hydrated(page);
  await expect(page.locator('#signed-out')).toBeVisible();
  await page.waitForTimeout(500);
  expect(authorize).toEqual([]);
});
