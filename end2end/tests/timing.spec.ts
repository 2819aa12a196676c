import { test, expect } from '@playwright/test';
import { users, submitLogin } from './helpers';

// Measures the time from the callback page's first byte to the
// server's whoami answer on screen, five times, and prints the median.
test('time from callback landing to protected data on screen', async ({ browser }) => {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
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
  samples.sort((a, b) => a - b);
  const median = samples[2];
  console.log(`callback landing -> whoami on screen: median ${median.toFixed(0)} ms, ` +
    `min ${samples[0].toFixed(0)}, max ${samples[4].toFixed(0)} (ms, n=5)`);
  expect(median).toBeGreaterThan(0);
});
