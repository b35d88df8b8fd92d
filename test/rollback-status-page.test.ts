import { describe, expect, test } from 'vitest';
import { launchChromium } from './support/browser.ts';
import {
  expectBlueHasGreensRows,
  forwardAndCutover,
  greenWorkload,
  reverseStreaming,
  rollbackSetup,
} from './support/rollback.ts';
import type { TealChild } from './support/teal-child.ts';

// Issue 17 item 3: the way back from the status page. `teal reverse` (a real child process)
// serves GET /ui like teal run: the page says it streams green -> blue, offers Rollback…
// instead of the cutover buttons, and the rollback clicked there switches back: the report
// says safe to switch to blue, and blue holds every row green had (the SQL digest).

describe('the status page of teal reverse', () => {
  test('shows the reverse direction and green fenced, and rolls back from its Rollback… button', async () => {
    const children: TealChild[] = [];
    const s = await rollbackSetup('rv_ui', children);
    const { legacy } = await forwardAndCutover(s, children);
    const { reverse, green } = await reverseStreaming(s, children);
    for (let round = 1; round <= 3; round++) await greenWorkload(green, round);

    const page = await (await (await launchChromium()).newContext()).newPage();
    await page.goto(`${s.apiUrl}/ui`);
    const direction = page.locator('[data-testid=direction]');
    await direction.waitFor({ state: 'visible', timeout: 30_000 });
    expect(await direction.textContent()).toBe('reverse: green → blue');
    await page.locator('#actions button[data-action=rollback]').waitFor({ state: 'visible' });
    expect(await page.locator('#actions button[data-action=cutover]').isHidden()).toBe(true);
    expect(await page.locator('#actions button[data-action=cutover-rollback]').isHidden()).toBe(true);

    page.once('dialog', (d) => d.accept());
    await page.locator('#actions button[data-action=rollback]').click();
    const safe = page.locator('[data-testid=safe-to-switch]');
    await safe.waitFor({ state: 'visible', timeout: 180_000 });
    expect(
      await safe.getAttribute('data-value'),
      (await page.locator('#action-result').textContent()) ?? '',
    ).toBe('true');
    expect(await safe.textContent()).toBe('Safe to switch to blue.');
    // After the rollback green is fenced, and the page says which side.
    const fenced = page.locator('[data-testid=fenced]');
    await fenced.waitFor({ state: 'visible', timeout: 30_000 });
    expect(await fenced.textContent()).toBe('green fenced');

    await reverse.stop();
    await expectBlueHasGreensRows(s, legacy);
  }, 300_000);
});
