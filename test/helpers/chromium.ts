/** Debian's headless Chromium for tests that look at a page: one path, one flag list, one clear failure. */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH =
  process.env.FLEET_CHROMIUM_PATH ?? process.env.CHROMIUM_PATH ?? '/usr/lib/chromium/chromium-headless-shell';

/** Flags measured to work here; the background-networking ones keep Chromium off the closed network. */
export const CHROMIUM_TEST_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `headless Chromium not found at ${CHROMIUM_PATH}: install Debian's chromium-headless-shell (./fleet test does) or set FLEET_CHROMIUM_PATH`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_TEST_ARGS });
}
