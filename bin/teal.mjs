#!/usr/bin/env -S node --max-semi-space-size=64
// teal is written in TypeScript and run through tsx, so there is no build step between a
// checkout and `npx teal`.
// --max-semi-space-size=64 (V8's default is 16 MiB): teal allocates a few short-lived
// objects per row; a larger young generation lets them die young instead of being copied
// and promoted. Measured in bench/README.md. (Flags must be on the command line: V8 sizes
// the heap before any code runs. `node bin/teal.mjs` without it works, only slower.)
import { register } from 'tsx/esm/api';

register();
await import('../services/cli/src/main.ts');
