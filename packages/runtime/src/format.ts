// Numbers as an operator reads them, in logs, warnings and the CLI alike. Pure: the
// subpath `@teal/runtime/format` loads nothing else of the package.

/** 1536 -> "1.5 kB" (powers of 1024, one decimal past bytes). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
