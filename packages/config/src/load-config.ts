import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TealError } from '@teal/errors';
import type { ResolvedConfig } from './define-config.ts';
import { resolveConfig } from './resolve-config.ts';

export interface LoadConfigOptions {
  /** Where teal.config.ts is looked for; default process.cwd(). */
  cwd?: string;
  /** --config FILE, relative to cwd; when given, the file must exist. */
  configPath?: string;
  /** Environment for TEAL_* overrides; default process.env. */
  env?: Record<string, string | undefined>;
}

/** File names looked for in the working directory, first match wins. */
export const CONFIG_FILE_NAMES = ['teal.config.ts', 'teal.config.mts', 'teal.config.js', 'teal.config.mjs'];

/** The value of `--config FILE` or `--config=FILE` in an argument list. */
export function configPathFromArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') return argv[i + 1];
    if (argv[i].startsWith('--config=')) return argv[i].slice('--config='.length);
  }
  return undefined;
}

/**
 * Loads teal.config.ts (from cwd, or configPath), applies TEAL_* env overrides and defaults,
 * validates and freezes. With no config file the defaults and env alone make the config.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  let path: string | undefined;
  if (options.configPath !== undefined) {
    path = isAbsolute(options.configPath) ? options.configPath : resolve(cwd, options.configPath);
    if (!existsSync(path)) {
      throw new TealError(
        'TEAL_CONFIG_INVALID',
        `config file ${path} does not exist: fix the --config path or leave it out to use ${cwd}/teal.config.ts`,
        { status: 400 },
      );
    }
  } else {
    path = CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate));
  }
  if (path === undefined) return resolveConfig(undefined, { env });

  let module: Record<string, unknown>;
  try {
    // tsImport compiles TypeScript on the fly, in its own namespace, so a reload sees edits.
    const { tsImport } = await import('tsx/esm/api');
    module = await tsImport(pathToFileURL(path).href, import.meta.url);
  } catch (err) {
    throw new TealError(
      'TEAL_CONFIG_INVALID',
      `could not load ${path}: ${(err as Error)?.message ?? String(err)}; it must be a module with \`export default defineConfig({ ... })\``,
      { status: 400, cause: err },
    );
  }
  let config = module.default;
  // Outside a "type": "module" package tsx compiles to CommonJS: the namespace wraps once more.
  if ((config as { __esModule?: unknown } | undefined)?.__esModule === true) {
    config = (config as { default?: unknown }).default;
  }
  if (config === undefined) {
    throw new TealError(
      'TEAL_CONFIG_INVALID',
      `${path} has no default export: write \`export default defineConfig({ ... })\` (import { defineConfig } from '@teal/config')`,
      { status: 400 },
    );
  }
  return resolveConfig(config, { env, configPath: path });
}
