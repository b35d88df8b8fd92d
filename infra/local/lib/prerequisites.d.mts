// Types for TypeScript callers (soak/, test/) that find Postgres the way env.mjs does.

/** The directory holding initdb and pg_ctl, newest major version first; undefined when none is installed. */
export function pgBinDir(): string | undefined;

/** Installs what is missing with apt-get when root on Debian/Ubuntu; otherwise exits saying what to install. */
export function ensurePrerequisites(): Promise<void>;
