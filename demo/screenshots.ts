import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { chromium, type Page } from 'playwright-core';
import { ensure as ensureChromium } from '../infra/tools/chromium.mjs';
import { runDemo } from './run.ts';

// The status page's pictures in docs/images/, taken during a real demo run: the demo in
// databases of its own (its cutover fences blue's database), headless chromium on GET /ui,
// one screenshot while the snapshot runs, one under the write workload, one after a drain
// clicked on the page while the workload goes on, one during the demo's own cutover. The
// demo's default volume (100,000 users, 300,000 orders, 20 s of writes).
//
//   npx tsx demo/screenshots.ts [dir]      (default docs/images; the local environment up)

const dir = resolve(process.argv[2] ?? 'docs/images');
const DB = 'teal_ui_demo';
const PORT = 18_181;
const base = process.env.TEAL_BLUE_URL ?? 'postgres://postgres@127.0.0.1:5433/app';
const greenBase = process.env.TEAL_GREEN_URL ?? 'postgres://postgres@127.0.0.1:5434/app';
const inDb = (url: string) => Object.assign(new URL(url), { pathname: `/${DB}` }).toString();

async function ensureDatabase(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    if ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB])).rowCount === 0)
      await c.query(`CREATE DATABASE ${DB}`);
  } finally {
    await c.end();
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stateOf(page: Page): Promise<string> {
  return (
    (await page
      .locator('[data-testid=state]')
      .textContent()
      .catch(() => null)) ?? ''
  );
}

async function until(what: string, page: Page, check: () => Promise<boolean>, ms = 15 * 60_000) {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(250);
  }
  process.stdout.write(`[screenshots] ${what} (state ${await stateOf(page)})\n`);
}

await ensureDatabase(base);
await ensureDatabase(greenBase);
mkdirSync(dir, { recursive: true });
const browser = await chromium.launch({ executablePath: await ensureChromium(), args: ['--no-sandbox'] });
const page = await (await browser.newContext({ viewport: { width: 1200, height: 900 } })).newPage();
const shot = (name: string) => page.screenshot({ path: join(dir, name), fullPage: true });

const demo = runDemo({ print: true, apiPort: PORT, blueUrl: inDb(base), greenUrl: inDb(greenBase) });
const pictures = (async () => {
  await until('API up', page, async () => (await fetch(`http://127.0.0.1:${PORT}/healthz`)).ok);
  await page.goto(`http://127.0.0.1:${PORT}/ui`);
  await until('snapshot running', page, async () => (await stateOf(page)) === 'snapshotting');
  await pause(2_000);
  await shot('status-page-snapshot.png');
  // The demo's workload starts once the snapshot is in green (its own condition).
  const green = new pg.Client({ connectionString: inDb(greenBase) });
  await green.connect();
  await until('snapshot in green', page, async () => {
    const { rows } = await green.query(
      'SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM orders) AS n',
    );
    return Number(rows[0].n) >= 400_000;
  });
  await green.end();
  await pause(10_000);
  await shot('status-page-streaming.png');
  await page.locator('#actions button[data-action=drain]').click();
  await page.locator('[data-testid=drain-lsn]').waitFor({ timeout: 120_000 });
  await shot('status-page-drain.png');
  // The demo's own cutover: the page shows blue fenced while it drains and verifies.
  await until(
    'cutover under way',
    page,
    async () => (await page.locator('[data-testid=fenced]').count()) > 0,
  );
  await shot('status-page-cutover.png');
})();
try {
  await Promise.all([demo, pictures]);
} finally {
  await browser.close();
}
process.stdout.write(`[screenshots] written to ${dir}\n`);
