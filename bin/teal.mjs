#!/usr/bin/env node
// teal is written in TypeScript and run through tsx, so there is no build step between a
// checkout and `npx teal`.
import { register } from 'tsx/esm/api';

register();
await import('../services/cli/src/main.ts');
