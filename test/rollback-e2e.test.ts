import { describe, expect, test } from 'vitest';
import {
  expectBlueHasGreensRows,
  forwardAndCutover,
  greenWorkload,
  rollbackSetup,
  status,
  streaming,
  teal,
  tealCommand,
} from './support/rollback.ts';
import type { TealChild } from './support/teal-child.ts';

// Issue 17, "Done when": forward with a table rename, a column rename, a dropped column and a
// derived column; cutover with rollback; the application writes on green; teal reverse
// streams it back; teal rollback fences green, drains, copies sequences, verifies, unfences
// blue. An independent digest in SQL on both sides shows blue holds every row green had.

describe('rollback end to end', () => {
  test('forward, cutover --with-rollback, writes on green, teal reverse, teal rollback: blue has every write', async () => {
    const children: TealChild[] = [];
    const s = await rollbackSetup('rv_e2e', children);
    const { report, legacy } = await forwardAndCutover(s, children);
    const rollback = report.rollback as { slot: string; publication: string };
    expect(rollback.slot).toBe(`${s.name}_reverse`);

    // Without the reverse pipeline prepared for this prefix, teal reverse refuses (another prefix).
    const other = await tealCommand(
      { ...s, env: { ...s.env, TEAL_TOPIC_PREFIX: `${s.name}_other`, TEAL_API_PORT: '1' } },
      ['reverse'],
      children,
      60_000,
    );
    expect(other.code).toBe(1);
    expect(other.output).toContain('run teal cutover --with-rollback first');

    const reverse = teal(s, ['reverse'], children);
    const first = await streaming(s, reverse, 'teal reverse');
    expect(first.direction).toBe('reverse');
    const green = await s.connect('green');
    for (let round = 1; round <= 5; round++) await greenWorkload(green, round);

    const metrics = await (await fetch(`${s.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/teal_events_applied_total\{[^}]*direction="reverse"/);

    const back = await tealCommand(s, ['rollback', '--json'], children);
    expect(back.code, back.output).toBe(0);
    const rolled = JSON.parse(back.output.slice(back.output.indexOf('{'))) as { safeToSwitch?: boolean };
    expect(rolled.safeToSwitch, back.output).toBe(true);
    expect((await status(s))?.direction).toBe('reverse');
    await reverse.stop();
    expect(reverse.proc.exitCode, reverse.output()).toBe(0);

    await expectBlueHasGreensRows(s, legacy);
  }, 300_000);
});
