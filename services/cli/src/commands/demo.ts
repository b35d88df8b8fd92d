import { EXIT } from '../command.ts';

// `teal demo`: the demo lives with its own config in demo/ at the repository root, and a
// checkout without it still has a working CLI.

const DEMO = new URL('../../../../demo/run.ts', import.meta.url);

export async function runDemo(): Promise<number> {
  let mod: { runDemo?: (opts: { print?: boolean; envUp?: boolean }) => Promise<unknown> };
  try {
    mod = await import(DEMO.href);
  } catch {
    throw new Error('demo not available: demo/run.ts is missing from this checkout');
  }
  if (typeof mod.runDemo !== 'function') throw new Error('demo not available: demo/run.ts has no runDemo()');
  const summary = (await mod.runDemo({ print: true, envUp: true })) as {
    cutover?: { safeToSwitch?: boolean };
  };
  return summary?.cutover?.safeToSwitch === false ? EXIT.failure : EXIT.ok;
}
