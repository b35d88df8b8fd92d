import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseLsn } from '@teal/change-event';
import { build, type StatusReport } from '@teal/control';
import { waitFor } from '@teal/runtime';
import type { Page } from 'playwright-core';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { HistoryView } from '../services/control/src/status-history.ts';
import { launchChromium } from './support/browser.ts';
import { controlConfig, controlPipeline, ownBlueDatabase, sessionOn } from './support/control-pipeline.ts';
import { blueUrl, greenUrl, uniqueName } from './support/env.ts';

// The status page (GET /ui) in Debian's chromium, headless, against a pipeline of its own:
// producer, consumer and control plane in this process, the API listening on a free port
// with a token. Blue is a database of the test's own, since the page's cutover fences it.
// TEAL_UI_SCREENSHOTS=<dir> also saves the page at each step (docs/images/ came from it).

const TOKEN = 'ui-test-token-6f1c2a9e';
const SHOTS = process.env.TEAL_UI_SCREENSHOTS;

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The page's exact value behind a number (its data-value). */
async function shown(page: Page, selector: string): Promise<string | null> {
  return page.locator(selector).first().getAttribute('data-value');
}

/** What the page shows, in /status's terms, read off its data-value attributes. */
async function pageNumbers(page: Page, table: string, partitions: StatusReport['consumer']['partitions']) {
  const row = (key: string) => page.locator(`tr[data-partition="${key}"]`);
  return {
    state: await page.locator('[data-testid=state]').textContent(),
    lagRecords: Number(await shown(page, '[data-testid=lag-records]')),
    deadLetters: Number(await shown(page, '[data-testid=dead-letters]')),
    blocked: Number(await shown(page, '[data-testid=blocked-count]')),
    retainedWal: Number(await shown(page, '[data-testid=retained-wal]')),
    rowsDone: Number(await shown(page, `tr[data-table="${table}"] [data-testid=rows-done]`)),
    partitions: await Promise.all(
      partitions.map(async (p) => {
        const r = row(`${p.topic}:${p.partition}`);
        return {
          applied: await r.locator('[data-testid=applied]').getAttribute('data-value'),
          end: Number(await r.locator('[data-testid=end]').getAttribute('data-value')),
          lag: Number(await r.locator('[data-testid=lag]').getAttribute('data-value')),
        };
      }),
    ),
    warnings: await page.locator('[data-testid=warnings] li').allTextContents(),
  };
}

function statusNumbers(s: StatusReport, table: string) {
  return {
    state: s.state,
    lagRecords: s.consumer.lagRecords,
    deadLetters: s.consumer.deadLetters,
    blocked: s.consumer.blocked.length,
    retainedWal: s.slot?.retainedWalBytes,
    rowsDone: s.producer?.snapshot.find((t) => t.table === table)?.rowsDone,
    partitions: s.consumer.partitions.map((p) => ({
      applied: p.appliedOffset === null ? '' : String(p.appliedOffset),
      end: p.end,
      lag: p.lag,
    })),
    warnings: s.warnings,
  };
}

/** A chart line: how many points, its largest value, its newest value and when, its path. */
async function chartLine(page: Page, chart: string, series: string) {
  const line = page.locator(`[data-testid=${chart}] path[data-series=${series}]`);
  return {
    points: Number(await line.getAttribute('data-points')),
    max: Number(await line.getAttribute('data-max')),
    last: Number(await line.getAttribute('data-last')),
    lastAt: Date.parse((await line.getAttribute('data-last-at')) ?? ''),
    d: await line.getAttribute('d'),
  };
}

describe('GET /ui: the status page in headless chromium', () => {
  test('shows /status, its lag chart moves under load, drain and cutover run from it; no token, no data and no buttons', async () => {
    const name = uniqueName('ui_page');
    const blueDb = await ownBlueDatabase(blueUrl(), name);
    const blue = await sessionOn(blueDb);
    const green = await sessionOn(greenUrl());
    const table = `public.${name}`;
    // Blue's table goes with its database (the cutover's fence ends this session).
    await blue.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text)`);
    // A row green refuses for good: one dead letter, for the page to show.
    await green.query(
      `CREATE TABLE ${name} (id int PRIMARY KEY, v text CHECK (v IS DISTINCT FROM 'refused by green'))`,
    );
    onTestFinished(async () => {
      await green.query(`DROP TABLE IF EXISTS ${name}`);
    });
    await blue.query(`INSERT INTO ${name} SELECT g, 'snap ' || g FROM generate_series(1, 2000) g`);

    const config = controlConfig(name, blueDb, [table]);
    const { control, metrics } = await controlPipeline(config);
    const app = build({ backend: control, token: TOKEN, host: '127.0.0.1', metrics });
    onTestFinished(() => app.close());
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const status = async () =>
      (await (await fetch(`${base}/status`, { headers: auth })).json()) as StatusReport;

    const browser = await launchChromium();

    // Without the token: the page loads, asks for it, shows no number and no button.
    const stranger = await (await browser.newContext()).newPage();
    await stranger.goto(`${base}/ui`);
    await stranger.locator('#login').waitFor({ state: 'visible' });
    expect(await stranger.locator('#actions button').first().isVisible()).toBe(false);
    expect(await stranger.locator('#main').isVisible()).toBe(false);
    expect((await fetch(`${base}/pause`, { method: 'POST' })).status).toBe(401);
    await stranger.locator('#token').fill('not-the-token');
    await stranger.locator('#token').press('Enter');
    await expect
      .poll(() => stranger.locator('#login-error').textContent(), { timeout: 10_000 })
      .toContain('refused the token');
    expect(await stranger.locator('#actions button').first().isVisible()).toBe(false);

    // With it: entered once, kept for the tab.
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    const failures: string[] = [];
    page.on('pageerror', (e) => failures.push(e.message));
    // Chromium logs each answer >= 400; the 401s before the token is entered are expected.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 401/.test(m.text())) failures.push(m.text());
    });
    await page.goto(`${base}/ui`);
    await page.locator('#token').fill(TOKEN);
    await page.locator('#token').press('Enter');
    await page.locator('#actions button[data-action=drain]').waitFor({ state: 'visible' });
    await page.reload();
    await page.locator('#actions button[data-action=drain]').waitFor({ state: 'visible', timeout: 10_000 });

    // Snapshot in green, then one record green refuses.
    await waitFor(
      async () => (await green.query(`SELECT count(*)::int AS n FROM ${name}`)).rows[0].n === 2000,
      { what: 'the snapshot in green', timeoutMs: 60_000 },
    );
    await blue.query(`INSERT INTO ${name} VALUES (5000, 'refused by green')`);
    await waitFor(async () => (await status()).consumer.deadLetters === 1, {
      what: 'the dead letter counted',
      timeoutMs: 30_000,
    });

    // Its numbers are /status's (read while nothing moves, so both see the same state).
    let last: unknown;
    await waitFor(
      async () => {
        const s = await status();
        const { retainedWal: wal, ...want } = statusNumbers(s, table);
        const { retainedWal: walShown, ...got } = await pageNumbers(page, table, s.consumer.partitions);
        last = { want, got, wal, walShown };
        // Heartbeats write WAL while nothing else moves: retained WAL may differ by a few of
        // them between the page's poll and this one, not by what another field would show.
        const walClose =
          wal !== null && wal !== undefined && Math.abs(walShown - wal) <= Math.max(65_536, wal * 0.1);
        return walClose && JSON.stringify(got) === JSON.stringify(want);
      },
      { what: 'the page to show what /status says', timeoutMs: 20_000, intervalMs: 500 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}`);
    });
    const quiet = await status();
    expect(quiet.consumer.partitions.length).toBe(2);
    expect(quiet.producer?.snapshot.find((t) => t.table === table)?.rowsDone).toBe(2000);
    expect(await page.locator('[data-testid=warnings] li').allTextContents()).toContain(
      quiet.warnings.find((w) => w.includes('dead-letter')),
    );

    // Pause and Resume from the page: /status says so, and so does the page.
    await page.locator('#actions button[data-action=pause]').click();
    await page.locator('[data-testid=paused]').waitFor({ state: 'visible', timeout: 20_000 });
    expect((await status()).paused).toBe(true);
    await page.locator('#actions button[data-action=resume]').click();
    await page.locator('[data-testid=paused]').waitFor({ state: 'detached', timeout: 20_000 });
    expect((await status()).paused).toBe(false);

    // Under load, the charts move: the newest commit→green point is a sample taken during the
    // load, above zero (batches applied with a delay), and the WAL line rises above where it was.
    const lagBefore = await chartLine(page, 'chart-lag', 'commitToGreen');
    const walBefore = await chartLine(page, 'chart-wal', 'retainedWal');
    const loadStart = Date.now();
    let writes = 0;
    let shown = false;
    const load = (async () => {
      // Until the page has shown it (at most 30 s): the assertion below waits on the page.
      while (!shown && Date.now() < loadStart + 30_000) {
        await blue.query(
          `INSERT INTO ${name} SELECT g, repeat('load ', 20) FROM generate_series($1::int, $1::int + 499) g`,
          [10_000 + writes * 500],
        );
        writes++;
      }
    })();
    const seen = await waitFor(
      async () => {
        const now = await chartLine(page, 'chart-lag', 'commitToGreen');
        return now.lastAt >= loadStart && now.last > 0 && now.d !== lagBefore.d ? now : undefined;
      },
      { what: 'the lag chart to show the load', timeoutMs: 30_000, intervalMs: 250 },
    ).finally(async () => {
      shown = true;
      await load;
    });
    const endOfLoad = parseLsn(
      (await blue.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn,
    );
    await shot(page, 'status-page-load');
    expect(seen.max).toBeGreaterThan(0);
    await waitFor(async () => (await chartLine(page, 'chart-wal', 'retainedWal')).max > walBefore.max, {
      what: 'the WAL chart to rise',
      timeoutMs: 20_000,
      intervalMs: 500,
    });
    const history = (await (await fetch(`${base}/status/history`, { headers: auth })).json()) as HistoryView;
    expect(history.sampleMs).toBe(2_000);
    const during = history.samples.filter((p) => Date.parse(p.at) >= loadStart);
    expect(during.some((p) => (p.commitToGreenSeconds ?? 0) > 0)).toBe(true);

    // Drain from the page: it reports the LSN, past the load's last write.
    await page.locator('#actions button[data-action=drain]').click();
    const lsn = await page.locator('[data-testid=drain-lsn]').getAttribute('data-value', { timeout: 60_000 });
    expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(parseLsn(lsn!)).toBeGreaterThanOrEqual(endOfLoad);
    const inGreen = await green.query(`SELECT count(*)::int AS n FROM ${name}`);
    expect(inGreen.rows[0].n).toBe(2000 + writes * 500);
    await shot(page, 'status-page-drain');

    // Online verification, rendered from whatever /status's onlineVerify holds.
    const verified = await fetch(`${base}/verify`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ online: true }),
    });
    expect(verified.status, await verified.clone().text()).toBe(200);
    await waitFor(
      async () => {
        const online = (await status()).onlineVerify;
        if (!online || !(await page.locator('#verify-box').isVisible())) return undefined;
        for (const [key, v] of Object.entries(online)) {
          const dd = page.locator(`[data-testid=online-verify] dd[data-key=${key}]`);
          const text =
            typeof v === 'number'
              ? await dd.locator('[data-value]').getAttribute('data-value')
              : await dd.textContent();
          const want = typeof v === 'boolean' ? (v ? 'yes' : 'no') : v === null ? '–' : String(v);
          if (text !== want) return undefined;
        }
        return online.tables >= 1;
      },
      { what: "the page to show /status's onlineVerify", timeoutMs: 20_000, intervalMs: 500 },
    );

    // Cutover asks first: dismissed, nothing happens; accepted, the report is shown.
    page.once('dialog', (d) => d.dismiss());
    await page.locator('#actions button[data-action=cutover]').click();
    expect(await page.locator('[data-testid=cutover-report]').count()).toBe(0);
    expect((await status()).fenced).toBe(false);
    page.once('dialog', (d) => d.accept());
    await page.locator('#actions button[data-action=cutover]').click();
    const report = page.locator('[data-testid=cutover-report]');
    await report.waitFor({ state: 'visible', timeout: 90_000 });
    // The dead letter is a change green lacks: the drain step says so and the switch is refused.
    expect(await page.locator('[data-testid=safe-to-switch]').getAttribute('data-value')).toBe('false');
    const steps = await report.locator('[data-testid=cutover-steps] tbody tr').allTextContents();
    expect(steps[0]).toMatch(/^fenceyes/);
    expect(steps[1]).toMatch(/^drainno.*dead letter/);
    expect((await status()).fenced).toBe(true);
    await shot(page, 'status-page-cutover');

    // Forget token: the tab drops it, and the page is back to the token form, no button.
    await page.locator('#forget').click();
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.locator('#actions').isVisible()).toBe(false);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    expect(failures).toEqual([]);
  });
});
