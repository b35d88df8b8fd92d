import { redactUrl } from '@teal/errors';
import { didYouMean } from './did-you-mean.ts';

// The checks every part of the config goes through. Each adds "path: what is wrong, what to
// write" to one Problems list instead of throwing, so one run reports every problem, and
// returns undefined for a value it refused (the caller then falls back to the default).

export type Obj = Record<string, unknown>;

/** Accumulates problems as "path: what is wrong, what to write". */
export class Problems {
  readonly list: string[] = [];
  add(path: string, message: string): void {
    this.list.push(`${path}: ${message}`);
  }
}

/** How a value reads in an error message (never the value itself when it may be secret). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string')
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function keyPath(base: string, key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

export function checkKeys(p: Problems, obj: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    const hint = didYouMean(key, allowed);
    p.add(
      path ? keyPath(path, key) : key,
      `unknown key${hint ? `; did you mean "${hint}"?` : ''} (allowed: ${allowed.join(', ')})`,
    );
  }
}

/** The object at obj[key], or {} (with a problem) when it is present but not an object. */
export function section(p: Problems, obj: Obj, key: string, allowed: readonly string[]): Obj {
  const value = obj[key];
  if (value === undefined) return {};
  if (!isObj(value)) {
    p.add(key, `expected an object { ${allowed.join(', ')} }, got ${describeValue(value)}`);
    return {};
  }
  checkKeys(p, value, key, allowed);
  return value;
}

export function str(
  p: Problems,
  value: unknown,
  path: string,
  what: string,
  test?: (s: string) => boolean,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || (test && !test(value))) {
    p.add(path, `expected ${what}, got ${describeValue(value)}`);
    return undefined;
  }
  return value;
}

export function int(p: Problems, value: unknown, path: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    p.add(path, `expected an integer from ${min} to ${max}, got ${describeValue(value)}`);
    return undefined;
  }
  return value;
}

export function bool(p: Problems, value: unknown, path: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  p.add(path, `expected true or false, got ${describeValue(value)}`);
  return undefined;
}

export function oneOf<T extends string>(
  p: Problems,
  value: unknown,
  path: string,
  options: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !options.includes(value as T)) {
    const hint = typeof value === 'string' ? didYouMean(value, options) : undefined;
    p.add(
      path,
      `expected one of ${options.map((o) => `'${o}'`).join(', ')}, got ${describeValue(value)}${hint ? `; did you mean '${hint}'?` : ''}`,
    );
    return undefined;
  }
  return value as T;
}

/** A Postgres identifier as teal accepts it: 1-63 bytes, no NUL. */
export function columnName(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length > 0 && Buffer.byteLength(value) <= 63 && !value.includes('\0')
  );
}

/** A postgres:// URL; a refused one is shown with its password as ***. */
export function postgresUrl(p: Problems, value: unknown, path: string): string | undefined {
  if (value === undefined) return undefined;
  const shown = typeof value === 'string' ? JSON.stringify(redactUrl(value)) : describeValue(value);
  let ok = false;
  if (typeof value === 'string') {
    try {
      const url = new URL(value);
      ok = url.protocol === 'postgres:' || url.protocol === 'postgresql:';
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    p.add(path, `expected a connection URL like "postgres://user@host:5432/database", got ${shown}`);
    return undefined;
  }
  return value as string;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
