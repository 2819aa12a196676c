import { test as base } from '@playwright/test';

/** What a project of `playwright.config.ts` runs the app with. */
export interface AppOptions {
  /** The embedded authorization server's issuer for this project's app. */
  idp: string;
  /** The app's `RESPONSE_TYPE`. */
  responseType: 'id_token token' | 'token' | 'id_token' | 'code';
  /** Whether the app asks for refresh tokens (`code` with `offline_access`). */
  refreshTokens: boolean;
  /** Whether the browser blocks third-party cookies (the third-party projects). */
  thirdPartyCookies: 'allowed' | 'blocked';
  /** The app's `TOKEN_STORAGE`. */
  tokenStorage: 'local' | 'memory';
}

export const test = base.extend<AppOptions>({
  idp: ['http://localhost:3100/oauth2/default', { option: true }],
  responseType: ['id_token token', { option: true }],
  refreshTokens: [false, { option: true }],
  thirdPartyCookies: ['allowed', { option: true }],
  tokenStorage: ['local', { option: true }],
});

export { expect } from '@playwright/test';
