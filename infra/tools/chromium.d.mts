// Types for TypeScript callers (test/) of chromium.mjs.
export const name: 'chromium';
/** Installs Debian's chromium when missing; the browser's path. */
export function ensure(): Promise<string>;
