import { TealControl } from '@teal/control';
import { describe, expect, onTestFinished, test } from 'vitest';
import { startScratchPostgres } from '../soak/scratch-postgres.ts';
import { controlConfig, sessionOn } from './support/control-pipeline.ts';
import { uniqueName } from './support/env.ts';

// Issue 13, item 6: the fence kept every session whose application_name starts with "teal",
// so an application named, say, "teal-shop" kept writing to blue after the fence, and those
// writes were lost at the switch. Only the control plane's own sessions, which carry a random
// per-process token, are kept now. Blue is a scratch cluster: the fence acts on a whole database.

describe('fence and sessions named teal-something', () => {
  test('an application session named "teal-shop" is terminated and cannot write after the fence', async () => {
    const scratch = await startScratchPostgres();
    onTestFinished(() => scratch.destroy());
    const name = uniqueName('rg_fence_name');
    const setup = await sessionOn(scratch.url);
    await setup.query(`CREATE TABLE ${name} (id int PRIMARY KEY)`);
    const app = await sessionOn(scratch.url, 'teal-shop');

    const control = new TealControl(controlConfig(name, scratch.url, []));
    onTestFinished(() => control.close());
    const fenced = await control.fence();
    expect(fenced).toMatchObject({
      fenced: true,
      terminatedSessions: 2,
      preparedTransactions: [],
      sessions: [],
    });
    // Before the fix this insert succeeded: a write on blue after the fence, lost at the switch.
    await expect(app.query(`INSERT INTO ${name} VALUES (1)`)).rejects.toThrow();
    const again = await sessionOn(scratch.url, 'teal-shop');
    const write = await again.query(`INSERT INTO ${name} VALUES (2)`).catch((e: { code?: string }) => e.code);
    expect(write).toBe('25006');
    const { rows } = await again.query(`SELECT count(*)::int AS n FROM ${name}`);
    expect(rows[0].n).toBe(0);
  });
});
