// Types for TypeScript callers (test/) of the local environment's Postgres part.

export interface PgCluster {
  name: string;
  port: number;
  settings: Record<string, string | number>;
}

export const PG_CLUSTERS: readonly PgCluster[];

/** Where the cluster's data directory is (under .teal/pg, or /var/tmp when .teal is out of reach). */
export function pgDataDir(cluster: PgCluster): string;

/** The cluster's server log (.teal/logs/<name>.log). */
export function pgLogFile(cluster: PgCluster): string;

/** The major that made the cluster's data directory (PG_VERSION); undefined when none. */
export function pgDataMajor(cluster: PgCluster): number | undefined;

/** The data root and the clusters' log files (default: blue's and green's), owned by the postgres user. */
export function preparePgDirs(clusters?: readonly PgCluster[]): void;

/** The running server's version (`16.14`), undefined when it does not answer. */
export function pgServerVersion(cluster: PgCluster): Promise<string | undefined>;

/** Creates (or, when another major made it, re-creates) and starts the cluster on `major`. */
export function pgUp(cluster: PgCluster, major?: number): Promise<string>;

export function pgDown(cluster: PgCluster): Promise<string>;

/** `--blue 16` as a number, or an error naming the majors teal supports. */
export function parsePgMajor(side: string, value: string | undefined): number;
