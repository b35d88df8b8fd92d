#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=16 --heap-growing-percent=50
// teal is written in TypeScript and run through tsx, so there is no build step between a
// checkout and `npx teal`.
// V8 flags (both threads of `teal run`: the producer's worker follows the process's flags):
// they bound the heap V8 keeps beside teal's own data (~35 MB live in the producer, ~70 MB in
// the consumer). --max-semi-space-size=16: a young generation of at most 48 MiB per thread
// (64 gave 192 MiB each, for peaks of 700-800 MiB). --heap-growing-percent=50: after a full GC
// the old generation may grow to 1.5x what is live, not V8's up to 4x. docs/performance.md
// has the measurements. (Flags must be on the command line: V8 sizes the heap before any code
// runs. `node bin/teal.mjs` without them works, with more memory.)
// MALLOC_ARENA_MAX=2: glibc gives each thread malloc arenas of its own (up to 8 per core), where
// the freed Buffers of socket reads and record batches stay resident: two arenas took 10-27 MiB
// off the peaks at the same throughput (docs/performance.md, "The malloc arenas").
import { register } from 'tsx/esm/api';

register();
await import('../services/cli/src/main.ts');
