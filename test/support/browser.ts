import { type Browser, chromium } from 'playwright-core';
import { onTestFinished } from 'vitest';
import { ensure as ensureChromium } from '../../infra/tools/chromium.mjs';

/** Debian's chromium, headless, closed when the test ends (the status page's browser tests). */
export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: await ensureChromium(),
    headless: true,
    // Root has no user namespace sandbox here; the page is teal's own.
    args: ['--no-sandbox'],
  });
  onTestFinished(() => browser.close());
  return browser;
}
