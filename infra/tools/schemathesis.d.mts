// Types for TypeScript callers (test/) of schemathesis.mjs.

export const name: string;
export const version: string;

/** Installs schemathesis (pinned) into a venv under the machine-wide tool cache when missing; its executable. */
export function ensure(): Promise<string>;
