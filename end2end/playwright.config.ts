import { defineConfig, devices } from '@playwright/test';
import * as path from 'node:path';
import * as os from 'node:os';

// The app and its embedded development authorization server, as the release
// build serves them. `./dev.sh test` builds the release site first; the
// webServer block starts the built binary and waits until it answers, so no
// test starts before the server listens.
const appURL = process.env.APP_URL ?? 'http://localhost:3000';
const root = path.resolve(__dirname, '..');

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: os.cpus().length,
  reporter: process.env.PW_JSON_OUTPUT
    ? [['list'], ['json', { outputFile: process.env.PW_JSON_OUTPUT }]]
    : [['list']],
  use: {
    baseURL: appURL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    video: 'off',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
          ],
        },
      },
    },
  ],
  webServer: process.env.APP_URL
    ? undefined
    : {
        command: path.join(root, 'target/release/server'),
        cwd: root,
        url: `${appURL}/`,
        reuseExistingServer: !process.env.CI,
        timeout: 60_000,
        stdout: 'pipe',
        stderr: 'pipe',
        env: {
          LEPTOS_OUTPUT_NAME: 'okta-implicit',
          LEPTOS_SITE_ROOT: path.join(root, 'target/site'),
          LEPTOS_SITE_PKG_DIR: 'pkg',
          LEPTOS_SITE_ADDR: '127.0.0.1:3000',
          LEPTOS_ENV: 'PROD',
          DEV_IDP_CONTROL: '1',
          // Warnings and errors only, so a failure's log is easy to find.
          RUST_LOG: 'warn',
        },
      },
});
