import { formatBytes } from '@teal/runtime/format';

// Human output of the CLI: short aligned tables, and a progress bar on stderr when it is a TTY.

export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '))
    .join('\n');
}

export function bytes(n: number | null): string {
  return n === null ? '-' : formatBytes(n);
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** One line, redrawn in place: "public.users  [#########.........]  52%  5200/10000". */
export class ProgressBar {
  private drawn = false;

  constructor(private readonly out: ProgressStream) {}

  get enabled(): boolean {
    return this.out.isTTY === true;
  }

  update(label: string, done: number, total: number): void {
    if (!this.enabled) return;
    const width = 24;
    const ratio = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(ratio * width);
    const line = `${label.slice(0, 40).padEnd(40)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(
      Math.round(ratio * 100),
    ).padStart(3)}%  ${done}/${total > 0 ? total : '?'}`;
    this.out.write(`\r${line.slice(0, (this.out.columns ?? 120) - 1)}\x1b[K`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}
