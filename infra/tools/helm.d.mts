// Types for TypeScript callers (test/) of helm.mjs.
export const name: string;
export const version: string;
/** Builds helm when missing; returns the binary's path. */
export function ensure(): Promise<string>;
