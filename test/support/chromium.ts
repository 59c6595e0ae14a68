/** Starts Debian's Chromium with playwright-core (no browser download). */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  try {
    return await chromium.launch({
      executablePath: CHROMIUM_PATH,
      timeout: 60_000, // a start that hangs fails the test instead of waiting for Playwright's 3 minutes
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        ...extraArgs,
      ],
    });
  } catch (cause) {
    // Never skipped: the browser test is part of the suite, in CI and locally.
    throw new Error(
      `Could not start Chromium at ${CHROMIUM_PATH}. Install it (Debian/Ubuntu: apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary.`,
      { cause },
    );
  }
}
