import { describe, expect, test } from 'vitest';
import { runDemo } from '../demo/run.ts';

// The README's main job, end to end on the real environment at a smaller volume:
// snapshot + stream under a write workload, then fence, drain, sequences, verify.
describe('npm run demo, smaller', () => {
  test('moves every row with the new shape and proves it at cutover', async () => {
    const summary = await runDemo({ users: 2_000, orders: 6_000, workloadMs: 4_000, apiPort: 18_080 });

    // Every step of the cutover reported success.
    expect(summary.cutover.safeToSwitch).toBe(true);
    expect(summary.cutover.verifyOk).toBe(true);
    expect(summary.cutover.drainLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    // Green holds exactly blue's rows (counted independently of verify).
    expect(summary.rows.green).toEqual(summary.rows.blue);
    expect(summary.rows.blue.users).toBeGreaterThan(2_000); // the workload inserted more

    // The workload ran and its changes flowed while teal streamed.
    expect(summary.workload.transactions).toBeGreaterThan(0);
    expect(summary.lagMs.samples).toBeGreaterThan(0);

    // email_domain was derived in flight, lower-cased (blue has "Mail.test").
    const domains = summary.domains.map((d) => d.email_domain);
    expect(domains).toContain('mail.test');
    expect(domains).not.toContain('Mail.test');
  });
});
