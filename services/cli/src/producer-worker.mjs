// The entry of `teal run`'s producer thread. A worker does not inherit the module hooks
// bin/teal.mjs registered on the main thread, so it registers tsx's own before it imports
// TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./producer-worker.ts');
