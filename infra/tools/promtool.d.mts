// Types for TypeScript callers (test/) of promtool.mjs.
export const name: string;
export const version: string;
/** Builds promtool when missing; returns the binary's path. */
export function ensure(): Promise<string>;
