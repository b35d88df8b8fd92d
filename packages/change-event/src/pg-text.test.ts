import { describe, expect, it } from 'vitest';
import {
  civilFromDays,
  DATE_NEG_INFINITY,
  DATE_POS_INFINITY,
  daysFromCivil,
  formatByteaHex,
  formatDate,
  formatFloat4,
  formatFloat8,
  formatTimestamp,
  INT64_MAX,
  INT64_MIN,
  parseByteaHex,
  parseDate,
  parseFloat4,
  parseFloat8,
  parseInt32,
  parseInt64,
  parseTimestamp,
} from './pg-text.ts';

describe('calendar', () => {
  it('counts days from 1970-01-01 in the proleptic Gregorian calendar', () => {
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(2000, 3, 1)).toBe(11017);
    expect(daysFromCivil(1969, 12, 31)).toBe(-1);
    // 4714-11-24 BC (astronomical -4713) is Julian day 0, Postgres's first date, 2440588 days
    // before 1970 (UNIX_EPOCH_JDATE in src/include/datatype/timestamp.h).
    expect(daysFromCivil(-4713, 11, 24)).toBe(-2440588);
  });

  it('inverts exactly over the whole date range Postgres accepts', () => {
    const wrong: number[] = [];
    for (let days = -2440588; days <= 2145042905; days += 99991) {
      const [y, m, d] = civilFromDays(days);
      if (daysFromCivil(y, m, d) !== days) wrong.push(days);
    }
    expect(wrong).toEqual([]);
  });
});

describe('date', () => {
  it.each([
    ['1970-01-01', 0],
    ['2024-02-29', 19782],
    ['0001-01-01', -719162],
    ['0001-12-31 BC', -719163],
    ['0044-03-15 BC', daysFromCivil(-43, 3, 15)],
    ['4714-11-24 BC', -2440588],
    // Postgres's last date; END_DATE = date2j(5874898, 1, 1) = 2147483494 is exclusive.
    ['5874897-12-31', 2147483493 - 2440588],
    ['infinity', DATE_POS_INFINITY],
    ['-infinity', DATE_NEG_INFINITY],
  ])('%s <-> %i', (text, days) => {
    expect(parseDate(text)).toBe(days);
    expect(formatDate(days)).toBe(text);
  });

  it('uses Postgres infinity sentinels int32 max/min', () => {
    expect(parseDate('infinity')).toBe(2147483647);
    expect(parseDate('-infinity')).toBe(-2147483648);
  });

  it.each([
    '2024-02-30',
    '2023-02-29',
    '24-01-01',
    '2024-1-01',
    '0000-01-01 BC',
    'yesterday',
    '2024-01-01 AD',
  ])('rejects %s', (text) => {
    expect(parseDate(text)).toBeUndefined();
  });
});

describe('timestamp', () => {
  it.each([
    ['1970-01-01 00:00:00+00', 0n],
    ['2024-01-02 03:04:05.123456+00', 1704164645123456n],
    ['1969-12-31 23:59:59.999999+00', -1n],
    ['2024-01-02 03:04:05.1+00', 1704164645100000n],
    ['0044-03-15 12:00:00+00 BC', (BigInt(daysFromCivil(-43, 3, 15)) * 86400n + 43200n) * 1_000_000n],
    ['12345-01-01 00:00:00+00', BigInt(daysFromCivil(12345, 1, 1)) * 86_400_000_000n],
    ['infinity', INT64_MAX],
    ['-infinity', INT64_MIN],
  ])('timestamptz %s <-> %s', (text, micros) => {
    expect(parseTimestamp(text, true)).toBe(micros);
    expect(formatTimestamp(micros, true)).toBe(text);
  });

  it('prints fractions as Postgres does: trailing zeros trimmed, nothing when zero', () => {
    expect(formatTimestamp(1_500_000n, false)).toBe('1970-01-01 00:00:01.5');
    expect(formatTimestamp(1_000_010n, false)).toBe('1970-01-01 00:00:01.00001');
    expect(formatTimestamp(-1_500_000n, false)).toBe('1969-12-31 23:59:58.5');
    expect(formatTimestamp(0n, false)).toBe('1970-01-01 00:00:00');
  });

  it('converts other zone offsets to UTC instants', () => {
    expect(parseTimestamp('2024-01-02 05:34:05+02:30', true)).toBe(
      parseTimestamp('2024-01-02 03:04:05+00', true),
    );
    expect(parseTimestamp('2024-01-01 23:00:00-01', true)).toBe(
      parseTimestamp('2024-01-02 00:00:00+00', true),
    );
  });

  it('keeps a zone off timestamp and on timestamptz', () => {
    expect(parseTimestamp('2024-01-02 03:04:05', false)).toBe(1704164645000000n);
    expect(parseTimestamp('2024-01-02 03:04:05+00', false)).toBeUndefined();
    expect(parseTimestamp('2024-01-02 03:04:05', true)).toBeUndefined();
  });

  it('answers null (keep as text) past the int64 microsecond range, up to Postgres max 294276 AD', () => {
    expect(parseTimestamp('294276-12-31 23:59:59.999999+00', true)).toBeNull();
    expect(parseTimestamp('294247-01-10 04:00:54.775806+00', true)).toBe(INT64_MAX - 1n);
    // exactly int64 max would collide with +infinity
    expect(parseTimestamp('294247-01-10 04:00:54.775807+00', true)).toBeNull();
  });

  it.each(['2024-01-02T03:04:05+00', '2024-01-02 24:00:00+00', '2024-01-02 03:04:05.1234567+00', 'now'])(
    'rejects %s',
    (text) => {
      expect(parseTimestamp(text, true)).toBeUndefined();
    },
  );
});

describe('integers', () => {
  it('parses int4 exactly and refuses what is not', () => {
    expect(parseInt32('-2147483648')).toBe(-2147483648);
    expect(parseInt32('2147483647')).toBe(2147483647);
    expect(parseInt32('2147483648')).toBeUndefined();
    expect(parseInt32('abc')).toBeUndefined();
    expect(parseInt32('1.5')).toBeUndefined();
    expect(parseInt32('')).toBeUndefined();
    expect(parseInt32('-')).toBeUndefined();
    expect(parseInt32('+5')).toBeUndefined();
    expect(parseInt32(' 5')).toBeUndefined();
    expect(parseInt32('5-')).toBeUndefined();
    expect(parseInt32('00000000001')).toBeUndefined(); // 11 digits, as the old pattern
    expect(parseInt32('0000000042')).toBe(42);
    expect(parseInt32('-0')).toBe(-0);
    for (let i = -3000; i <= 3000; i += 7) expect(parseInt32(String(i * 715_827))).toBe(i * 715_827);
  });

  it('parses int8 as BigInt over the whole range', () => {
    expect(parseInt64('9223372036854775807')).toBe(INT64_MAX);
    expect(parseInt64('-9223372036854775808')).toBe(INT64_MIN);
    expect(parseInt64('9007199254740993')).toBe(2n ** 53n + 1n);
    expect(parseInt64('9223372036854775808')).toBeUndefined();
    expect(parseInt64('1e3')).toBeUndefined();
  });
});

describe('float8', () => {
  it.each([
    ['NaN', 'NaN'],
    ['-0', '-0'],
    ['0', '0'],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['1e-07', '1e-7'], // same double: Postgres reads both to 0x3E7AD7F29ABCAF48
    ['5e-324', '5e-324'],
    ['1.7976931348623157e+308', '1.7976931348623157e+308'],
    ['-2.2250738585072014e-308', '-2.2250738585072014e-308'],
    ['0.1', '0.1'],
    ['1.2345678901234568e+20', '123456789012345680000'],
  ])('%s -> %s, same binary value', (text, back) => {
    const value = parseFloat8(text)!;
    expect(formatFloat8(value)).toBe(back);
    expect(Object.is(parseFloat8(back), value)).toBe(true);
  });

  it('keeps -0 negative', () => {
    expect(Object.is(parseFloat8('-0'), -0)).toBe(true);
  });

  it.each(['', 'abc', '1,5', 'inf', '0x10'])('rejects %j', (text) => {
    expect(parseFloat8(text)).toBeUndefined();
  });
});

describe('float4', () => {
  it.each([
    ['1.1', '1.1'],
    ['0.1', '0.1'],
    ['3.4028235e+38', '3.4028235e+38'],
    ['1e-45', '1e-45'],
    ['1.1754944e-38', '1.1754944e-38'],
    ['-0', '-0'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['1.6777216e+07', '16777216'],
    ['123.456', '123.456'],
  ])('%s -> %s, same float32', (text, back) => {
    const value = parseFloat4(text)!;
    expect(Object.is(value, Math.fround(value))).toBe(true);
    expect(formatFloat4(value)).toBe(back);
    expect(Object.is(parseFloat4(back), value)).toBe(true);
  });

  it('rounds decimal text to float32 once, not through a double that sits on a midpoint', () => {
    // 1 + 2^-24 is the midpoint between float32 1 and 1 + 2^-23; this decimal lies just above
    // it, closer than a double can tell, so Math.fround(Number(text)) would give 1.
    const above = '1.00000005960464477539062500000001';
    expect(Math.fround(Number(above))).toBe(1);
    expect(parseFloat4(above)).toBe(1 + 2 ** -23);
    expect(parseFloat4('1.00000005960464477539062499999999')).toBe(1);
    expect(parseFloat4('1.000000059604644775390625')).toBe(1); // a true tie goes to even
    expect(parseFloat4('-1.00000005960464477539062500000001')).toBe(-(1 + 2 ** -23));
  });

  it('refuses values beyond float32', () => {
    expect(parseFloat4('1e39')).toBeUndefined();
  });
});

describe('bytea', () => {
  it('round-trips every byte value', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const text = '\\x' + all.toString('hex');
    expect(parseByteaHex(text)).toEqual(all);
    expect(formatByteaHex(parseByteaHex(text)!)).toBe(text);
    expect(formatByteaHex(parseByteaHex('\\x')!)).toBe('\\x');
  });

  it('refuses escape format and odd hex', () => {
    expect(parseByteaHex('abc\\000')).toBeUndefined();
    expect(parseByteaHex('\\x0')).toBeUndefined();
    expect(parseByteaHex('\\xzz')).toBeUndefined();
  });
});
