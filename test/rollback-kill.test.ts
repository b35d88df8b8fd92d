import { waitFor } from '@teal/runtime';
import { describe, expect, test } from 'vitest';
import {
  digestOf,
  expectBlueHasGreensRows,
  forwardAndCutover,
  greenWorkload,
  reverseStreaming,
  rollbackSetup,
  streaming,
  teal,
  tealCommand,
} from './support/rollback.ts';
import type { TealChild } from './support/teal-child.ts';

// Issue 17: `teal reverse` killed (SIGKILL) while green's writes stream back, then started
// again, ends as an uninterrupted run does: the slot on green resumes from what blue's
// applied positions confirm, replays are skipped, and the rollback's digest shows blue holds
// every row green had.

describe('rollback: teal reverse killed mid-stream', () => {
  test('SIGKILL teal reverse while green is written, start it again: blue has every write after teal rollback', async () => {
    const children: TealChild[] = [];
    const s = await rollbackSetup('rv_kill', children);
    const { legacy } = await forwardAndCutover(s, children);

    const { reverse: first, green } = await reverseStreaming(s, children);
    const blue = await s.connect('blue');
    const before = await digestOf(blue, 'blue');
    // Writes keep coming while the reverse applies them; the kill lands once some reached blue.
    let round = 0;
    let writing = true;
    const workload = (async () => {
      while (writing && round < 40) await greenWorkload(green, ++round);
    })();
    await waitFor(async () => (await digestOf(blue, 'blue')).md5 !== before.md5 || undefined, {
      what: "green's writes reaching blue",
      timeoutMs: 60_000,
    });
    first.proc.kill('SIGKILL');
    expect(await first.exited).toBe(null);
    expect(first.proc.signalCode).toBe('SIGKILL');
    for (let i = 0; i < 3; i++) await greenWorkload(green, ++round);
    writing = false;
    await workload;

    const second = teal(s, ['reverse'], children);
    await streaming(s, second, 'teal reverse (again)');
    const back = await tealCommand(s, ['rollback', '--json'], children);
    expect(back.code, back.output).toBe(0);
    const rolled = JSON.parse(back.output.slice(back.output.indexOf('{'))) as { safeToSwitch?: boolean };
    expect(rolled.safeToSwitch, back.output).toBe(true);
    await second.stop();
    expect(second.proc.exitCode, second.output()).toBe(0);

    await expectBlueHasGreensRows(s, legacy);
  }, 300_000);
});
