import { type Browser, chromium } from 'playwright-core';
import { onTestFinished } from 'vitest';
import { ensure as ensureChromium } from '../../infra/tools/chromium.mjs';

/** Debian's chromium, headless, closed when the test ends (the status page's browser tests). */
export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: await ensureChromium(),
    headless: true,
    // Root has no user namespace sandbox here; the page is teal's own. No GPU process: Debian's
    // /etc/chromium.d turns on GPU rasterization, and on this GPU-less machine a loaded CI run
    // saw chromium crash a second after launch (crashpad in its stderr, the page closed).
    args: ['--no-sandbox', '--disable-gpu'],
  });
  onTestFinished(() => browser.close());
  return browser;
}
