import { defineConfig, devices, type PlaywrightTestConfig } from '@playwright/test';
import * as path from 'node:path';
import * as os from 'node:os';
import type { AppOptions } from './tests/fixtures';

// The app and its embedded development authorization server, as the release
// build serves them, once per configuration under test. `./dev.sh test`
// builds the release site first; the webServer blocks start the built
// binary and wait until it answers, so no test starts before it listens.
//
// | project                        | app  | dev authorization server | settings |
// |--------------------------------|------|--------------------------|----------|
// | default, rt-id_token-token     | 3000 | localhost:3100 | defaults (`id_token token`, `TOKEN_STORAGE=local`) |
// | rt-token                       | 3010 | localhost:3110 | `RESPONSE_TYPE=token` |
// | rt-id_token                    | 3020 | localhost:3120 | `RESPONSE_TYPE=id_token` |
// | memory                         | 3030 | localhost:3130 | `TOKEN_STORAGE=memory` |
// | code, rt-code                  | 3040 | localhost:3140 | `RESPONSE_TYPE=code`, `offline_access` (refresh tokens); `code` runs the sessions, code-flow and timing specs |
// | rt-code-fragment               | 3050 | localhost:3150 | `RESPONSE_TYPE=code`, `RESPONSE_MODE=fragment`, no refresh token (iframe renewal) |
// | third-party-code               | 3060 | 127.0.0.1:3160 | the issuer on another site, third-party cookies blocked; `code` + `offline_access` |
// | third-party-implicit           | 3070 | 127.0.0.1:3170 | the same with `id_token token` |
// | third-party-implicit-allowed   | 3070 | 127.0.0.1:3170 | the same, third-party cookies allowed (the control) |
// | dpop                           | 3080 | localhost:3180 | `RESPONSE_TYPE=code`, `offline_access`, `DPOP=1`, `REQUIRE_DPOP=1` |
// | dpop-nonce                     | 3090 | localhost:3190 | the same with `DPOP_NONCE=1`: the server functions ask for nonces too |
//
// APP_URL runs the default project against a server you started yourself
// (with `DEV_IDP_CONTROL=1` and `DEV_IDP_CONFIG=end2end/dev-idp.json`).
// PORT_BASE moves every port above by the same amount (default 3000), so
// two checkouts can run their suites side by side.
const root = path.resolve(__dirname, '..');
const base = Number(process.env.PORT_BASE ?? 3000);

const CODE_SCOPES = 'openid profile email offline_access';
interface Server { port: number; env: Record<string, string>; idpHost?: string }
const servers: Record<string, Server> = {
  default: { port: base, env: {} },
  token: { port: base + 10, env: { RESPONSE_TYPE: 'token' } },
  idToken: { port: base + 20, env: { RESPONSE_TYPE: 'id_token' } },
  memory: { port: base + 30, env: { TOKEN_STORAGE: 'memory' } },
  code: { port: base + 40, env: { RESPONSE_TYPE: 'code', SCOPES: CODE_SCOPES } },
  codeFragment: { port: base + 50, env: { RESPONSE_TYPE: 'code', RESPONSE_MODE: 'fragment' } },
  thirdPartyCode: { port: base + 60, idpHost: '127.0.0.1', env: { RESPONSE_TYPE: 'code', SCOPES: CODE_SCOPES } },
  thirdPartyImplicit: { port: base + 70, idpHost: '127.0.0.1', env: {} },
  dpop: { port: base + 80, env: { RESPONSE_TYPE: 'code', SCOPES: CODE_SCOPES, DPOP: '1', REQUIRE_DPOP: '1' } },
  dpopNonce: {
    port: base + 90,
    env: {
      RESPONSE_TYPE: 'code', SCOPES: CODE_SCOPES, DPOP: '1', REQUIRE_DPOP: '1', DPOP_NONCE: '1',
      // A test-only secret; a real one comes from `openssl rand -hex 32`.
      DPOP_NONCE_SECRET: '6e6f6e63652d7365637265742d666f722d74686520706c61797772696768742d',
    },
  },
};
const appURL = (port: number) => `http://localhost:${port}`;
const idpHost = (server: Server) => `${server.idpHost ?? 'localhost'}:${server.port + 100}`;
const idpURL = (server: Server) => `http://${idpHost(server)}/oauth2/default`;
const defaultURL = process.env.APP_URL ?? appURL(base);

function webServer(server: Server): NonNullable<PlaywrightTestConfig['webServer']> {
  return {
    command: path.join(root, 'target/release/server'),
    cwd: root,
    url: `${appURL(server.port)}/`,
    reuseExistingServer: !process.env.CI,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      LEPTOS_OUTPUT_NAME: 'okta-implicit',
      LEPTOS_SITE_ROOT: path.join(root, 'target/site'),
      LEPTOS_SITE_PKG_DIR: 'pkg',
      LEPTOS_SITE_ADDR: `127.0.0.1:${server.port}`,
      LEPTOS_ENV: 'PROD',
      DEV_IDP_ADDR: idpHost(server),
      DEV_IDP_CONTROL: '1',
      // The demo users and one user per long-running session test, so
      // that tests changing a user's token lifetime never meet.
      DEV_IDP_CONFIG: path.join(__dirname, 'dev-idp.json'),
      // Warnings and errors only, so a failure's log is easy to find.
      RUST_LOG: 'warn',
      ...server.env,
    },
  };
}

const chromium = {
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
};

function project(name: string, server: Server, options: Partial<AppOptions>, match: RegExp) {
  const baseURL = server === servers.default ? defaultURL : appURL(server.port);
  return {
    name,
    testMatch: match,
    use: { ...chromium, baseURL, idp: server === servers.default && process.env.IDP_URL ? process.env.IDP_URL : idpURL(server), ...options },
  };
}

const perResponseType = /response-types\.spec\.ts/;
export default defineConfig<AppOptions>({
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
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    video: 'off',
  },
  projects: [
    {
      ...project('default', servers.default, {}, /.*\.spec\.ts/),
      testIgnore: [perResponseType, /memory\.spec\.ts/, /code\.spec\.ts/, /third-party\.spec\.ts/, /dpop\.spec\.ts/],
    },
    project('rt-id_token-token', servers.default, { responseType: 'id_token token' }, perResponseType),
    project('rt-token', servers.token, { responseType: 'token' }, perResponseType),
    project('rt-id_token', servers.idToken, { responseType: 'id_token' }, perResponseType),
    project('memory', servers.memory, { tokenStorage: 'memory' }, /memory\.spec\.ts/),
    project('rt-code', servers.code, { responseType: 'code', refreshTokens: true }, perResponseType),
    project('rt-code-fragment', servers.codeFragment, { responseType: 'code' }, perResponseType),
    project('code', servers.code, { responseType: 'code', refreshTokens: true }, /(sessions|code|timing)\.spec\.ts/),
    project('third-party-code', servers.thirdPartyCode,
      { responseType: 'code', refreshTokens: true, thirdPartyCookies: 'blocked' }, /third-party\.spec\.ts/),
    project('third-party-implicit', servers.thirdPartyImplicit, { thirdPartyCookies: 'blocked' }, /third-party\.spec\.ts/),
    project('third-party-implicit-allowed', servers.thirdPartyImplicit, { thirdPartyCookies: 'allowed' },
      /third-party\.spec\.ts/),
    project('dpop', servers.dpop, { responseType: 'code', refreshTokens: true }, /dpop\.spec\.ts/),
    project('dpop-nonce', servers.dpopNonce, { responseType: 'code', refreshTokens: true }, /dpop\.spec\.ts/),
  ],
  webServer: process.env.APP_URL
    ? undefined
    : Object.values(servers).map(webServer),
});
