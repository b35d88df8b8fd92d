import { describe, expect, it } from 'vitest';
import { CopyLineSplitter, formatCopyLine, parseCopyLine } from './copy-text.ts';

describe('COPY text', () => {
  it('parses NULL, escapes and empty strings as COPY TO writes them', () => {
    expect(parseCopyLine('1\t\\N\t\ta\\tb\\nc\\\\d\\re')).toEqual(['1', null, '', 'a\tb\nc\\d\re']);
    expect(parseCopyLine('\\b\\f\\v\\101\\x41\\q')).toEqual(['\b\f\vAAq']);
    // A backslash N inside a value is a value, not NULL.
    expect(parseCopyLine('\\\\N')).toEqual(['\\N']);
  });

  it('formats what it parses back to the same line', () => {
    const values = ['x', null, '', 'tab\there', 'nl\nthere', 'back\\slash', '\\N', '\\.', 'cr\r'];
    const line = formatCopyLine(values);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1).includes('\n')).toBe(false);
    expect(parseCopyLine(line.slice(0, -1))).toEqual(values);
  });

  it('splits chunks into whole lines, across chunk boundaries', () => {
    const s = new CopyLineSplitter();
    expect(s.push('a\tb\nc')).toEqual(['a\tb']);
    expect(s.push('d\te\n')).toEqual(['cd\te']);
    expect(s.push('f')).toEqual([]);
    expect(s.end()).toBe('f');
  });
});
