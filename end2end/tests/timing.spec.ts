import { test, expect } from './fixtures';
import { users, submitLogin, signIn } from './helpers';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Measures the time from the callback page's first byte to the
// server's whoami answer on screen, seven times, and prints the median.
test('time from callback landing to protected data on screen', async ({ browser }) => {
  const samples: number[] = [];
  for (let i = 0; i < 7; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto('/');
    await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
    await page.locator('#sign-in').click();
    await submitLogin(page, users.alice);
    await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
    // From the first byte of the callback document to now: loading the
    // page, the wasm, every check of the tokens, and the whoami call.
    samples.push(await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      return performance.now() - nav.responseStart;
    }));
    await context.close();
  }
  console.log(`callback landing -> whoami on screen: median ${median(samples).toFixed(0)} ms, ` +
    `min ${Math.min(...samples).toFixed(0)}, max ${Math.max(...samples).toFixed(0)} (ms, n=7)`);
  expect(median(samples)).toBeGreaterThan(0);
});

// Renewal start (the refused call's answer arrives) to the new token in use
// (the retried call leaves with it), ten times.
test('time from renewal start to the new token in use', async ({ page }) => {
  await signIn(page, users.alice);
  await expect(page.locator('#whoami-sub')).toHaveText(users.alice.login);
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) {
    let refusedAt = 0;
    let refused = false;
    await page.route('**/api/whoami', async (route) => {
      if (!refused) {
        refused = true;
        await route.fulfill({
          status: 401,
          headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="api", error="invalid_token"' },
          body: JSON.stringify({ error: 'invalid_token', error_description: 'the token has expired' }),
        });
        refusedAt = Date.now();
      } else {
        samples.push(Date.now() - refusedAt);
        await route.continue();
      }
    });
    const retried = page.waitForResponse((r) => r.url().endsWith('/api/whoami') && r.status() === 200);
    await page.locator('#refresh').click();
    await retried;
    await page.unroute('**/api/whoami');
  }
  expect(samples.length).toBe(10);
  console.log(`renewal start -> new token in use: median ${median(samples).toFixed(0)} ms, ` +
    `min ${Math.min(...samples)}, max ${Math.max(...samples)} (ms, n=10)`);
});
