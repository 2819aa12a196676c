import { type ConsoleMessage } from '@playwright/test';
import { test, expect } from './fixtures';

test('home page renders on the server and hydrates', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (msg: ConsoleMessage) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));

  const response = await page.goto('/');
  expect(response?.status()).toBe(200);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Okta implicit sign-in');
  await expect(page).toHaveTitle('Okta implicit sign-in');

  // The Sign in button has no href: it works only once the wasm has hydrated
  // the page, and then it sends the browser to the authorization server.
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  await expect(page.locator('#signed-out')).toHaveText('You are not signed in.');
  await page.locator('#sign-in').click();
  await page.waitForURL(/\/oauth2\/default\/v1\/authorize\?/);
  await expect(page.getByLabel('Username')).toBeVisible();

  expect(errors).toEqual([]);
});

test('stylesheet and favicon are served', async ({ page, request }) => {
  await page.goto('/');
  const background = await page.evaluate(() => getComputedStyle(document.querySelector('#sign-in')!).backgroundColor);
  expect(background).toBe('rgb(22, 98, 221)');
  const icon = await request.get('/favicon.png');
  expect(icon.status()).toBe(200);
  expect(icon.headers()['content-type']).toContain('image/png');
  expect(await page.locator('link[rel=icon]').getAttribute('href')).toBe('/favicon.png');
});

test('an unknown path shows the 404 page with status 404', async ({ page }) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Page not found');
  await page.getByRole('link', { name: 'Go to the home page' }).click();
  await expect(page).toHaveURL('/');
});
