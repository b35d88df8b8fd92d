// Postgres text <-> natural Avro values, one pair of pure functions per type family.
// The text is what the type's output function prints under teal's session settings
// (DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres, extra_float_digits=3,
// bytea_output=hex). Every parser returns undefined for text it cannot represent, so the
// caller can name the table and column in its error; no parser ever rounds silently.

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;
export const INT64_MIN = -9223372036854775808n;
export const INT64_MAX = 9223372036854775807n;

// Postgres's own infinity sentinels: DATEVAL_NOBEGIN/NOEND (src/include/datatype/timestamp.h)
// are int32 min/max, DT_NOBEGIN/DT_NOEND are int64 min/max. teal keeps them in Avro.
export const DATE_NEG_INFINITY = INT32_MIN;
export const DATE_POS_INFINITY = INT32_MAX;
export const TIMESTAMP_NEG_INFINITY = INT64_MIN;
export const TIMESTAMP_POS_INFINITY = INT64_MAX;

const INT8_TEXT = /^-?\d{1,19}$/;

export function parseInt32(text: string): number | undefined {
  // A digit loop, not a regex + Number(): int4 keys and columns pass here once per row.
  const length = text.length;
  const negative = length > 0 && text.charCodeAt(0) === 45; // '-'
  let i = negative ? 1 : 0;
  if (length === i || length - i > 10) return undefined;
  let n = 0;
  for (; i < length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return undefined;
    n = n * 10 + digit;
  }
  if (negative) n = -n;
  return n >= INT32_MIN && n <= INT32_MAX ? n : undefined;
}

export function parseInt64(text: string): bigint | undefined {
  if (!INT8_TEXT.test(text)) return undefined;
  const n = BigInt(text);
  return n >= INT64_MIN && n <= INT64_MAX ? n : undefined;
}

export function parseBool(text: string): boolean | undefined {
  return text === 't' ? true : text === 'f' ? false : undefined;
}

export function formatBool(value: boolean): string {
  return value ? 't' : 'f';
}

// float8out/float4out (extra_float_digits > 0) print the shortest text that reads back to
// the same binary value, plus "NaN", "Infinity", "-Infinity" and "-0".
const FLOAT_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function parseFloat8(text: string): number | undefined {
  if (text === 'NaN') return Number.NaN;
  if (text === 'Infinity') return Number.POSITIVE_INFINITY;
  if (text === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (!FLOAT_TEXT.test(text)) return undefined;
  return Number(text);
}

/** JS prints the shortest round-tripping digits too; only -0 needs help (String(-0) is "0"). */
export function formatFloat8(value: number): string {
  if (value === 0 && 1 / value < 0) return '-0';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}

export function parseFloat4(text: string): number | undefined {
  const double = parseFloat8(text);
  if (double === undefined) return undefined;
  const single = Math.fround(double);
  if (Number.isFinite(double) && !Number.isFinite(single)) return undefined;
  return single === double || !Number.isFinite(double) ? single : exactFloat4(text, double, single);
}

/** Shortest decimal that reads back as the same float32 (what float4out prints). */
export function formatFloat4(value: number): string {
  if (!Number.isFinite(value) || value === 0) return formatFloat8(value);
  for (let digits = 1; digits < 9; digits++) {
    const text = value.toPrecision(digits);
    if (parseFloat4(text) === value) return text;
  }
  return value.toPrecision(9);
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The float32 next to `f` (finite, not -0), one step away from zero or towards it. */
function stepFloat4(f: number, awayFromZero: boolean): number {
  F32[0] = f;
  U32[0] += awayFromZero ? 1 : -1;
  return F32[0];
}

// Text -> double -> float32 rounds twice. That goes wrong only when the double lands exactly
// on the midpoint between two float32 neighbours while the decimal is not on it (float32
// midpoints are themselves doubles); then the decimal decides, compared exactly in BigInt.
function exactFloat4(text: string, double: number, single: number): number {
  const singleIsSmaller = Math.abs(single) < Math.abs(double);
  const other = stepFloat4(single, singleIsSmaller);
  const [near, far] = singleIsSmaller ? [single, other] : [other, single];
  if ((near + far) / 2 !== double) return single;
  const cmp = compareDecimalToDouble(text, Math.abs(double));
  return cmp === 0 ? single : cmp > 0 ? far : near;
}

/** Compares |decimal text| with a positive finite double, exactly. */
function compareDecimalToDouble(text: string, double: number): -1 | 0 | 1 {
  const m = /^[+-]?(\d*)\.?(\d*)(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const exp10 = Number(m[3] ?? 0) - m[2].length;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, double);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // double = significand * 2^exp2
  const significand = biased === 0 ? fraction : fraction | (1n << 52n);
  const exp2 = biased === 0 ? -1074 : biased - 1075;
  let left = BigInt(m[1] + m[2] || '0');
  let right = significand;
  if (exp10 >= 0) left *= 10n ** BigInt(exp10);
  else right *= 10n ** BigInt(-exp10);
  if (exp2 >= 0) right <<= BigInt(exp2);
  else left <<= BigInt(-exp2);
  return left < right ? -1 : left > right ? 1 : 0;
}

// bytea_output=hex: "\x" followed by two lowercase hex digits per byte.
const BYTEA_HEX = /^\\x(?:[0-9a-fA-F]{2})*$/;

export function parseByteaHex(text: string): Buffer | undefined {
  if (!BYTEA_HEX.test(text)) return undefined;
  return Buffer.from(text.slice(2), 'hex');
}

export function formatByteaHex(value: Buffer): string {
  return '\\x' + value.toString('hex');
}

const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuidText(text: string): boolean {
  return UUID_TEXT.test(text);
}

// ---- calendar: proleptic Gregorian, astronomical years (1 BC = year 0, "0044 BC" = -43) ----

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function civilFromDays(days: number): [year: number, month: number, day: number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

const DATE_TEXT = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/;

export function parseDate(text: string): number | undefined {
  if (text === 'infinity') return DATE_POS_INFINITY;
  if (text === '-infinity') return DATE_NEG_INFINITY;
  const m = DATE_TEXT.exec(text);
  if (!m) return undefined;
  const days = civilDays(m[1], m[2], m[3], m[4] !== undefined);
  return days !== undefined && days > DATE_NEG_INFINITY && days < DATE_POS_INFINITY ? days : undefined;
}

export function formatDate(days: number): string {
  if (days === DATE_POS_INFINITY) return 'infinity';
  if (days === DATE_NEG_INFINITY) return '-infinity';
  const [year, month, day] = civilFromDays(days);
  return formatYmd(year, month, day) + (year <= 0 ? ' BC' : '');
}

function civilDays(yearText: string, monthText: string, dayText: string, bc: boolean): number | undefined {
  const year = Number(yearText);
  const month = Number(monthText);
  const day = Number(dayText);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(bc ? 1 - year : year, month)) return undefined;
  if (bc && year === 0) return undefined;
  return daysFromCivil(bc ? 1 - year : year, month, day);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

// EncodeDateTime (src/backend/utils/adt/datetime.c), USE_ISO_DATES: the year zero-padded to
// at least 4 digits, printed as (1 - year) with " BC" after everything else when <= 0.
function formatYmd(year: number, month: number, day: number): string {
  const y = year > 0 ? year : 1 - year;
  return `${y < 1000 ? String(y).padStart(4, '0') : y}-${pad2(month)}-${pad2(day)}`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

// "2024-01-02 03:04:05.123456+00", "0044-03-15 12:00:00+00 BC", "12345-01-01 00:00:00+00".
// The zone is "+HH", "+HH:MM" or "+HH:MM:SS"; under TimeZone=UTC Postgres always prints "+00".
const TIMESTAMP_TEXT =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/;

/**
 * Microseconds since 1970-01-01 00:00:00 UTC. Returns `null` for a valid timestamp that does
 * not fit an int64 of microseconds since 1970 (after 294247-01-10, yet before Postgres's own
 * limit 294276-12-31): the caller keeps such values as text.
 */
export function parseTimestamp(text: string, withZone: boolean): bigint | null | undefined {
  if (text === 'infinity') return TIMESTAMP_POS_INFINITY;
  if (text === '-infinity') return TIMESTAMP_NEG_INFINITY;
  const m = TIMESTAMP_TEXT.exec(text);
  if (!m || (m[8] !== undefined) !== withZone) return undefined;
  const days = civilDays(m[1], m[2], m[3], m[12] !== undefined);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (days === undefined || hour > 23 || minute > 59 || second > 59) return undefined;
  let seconds = days * 86400 + hour * 3600 + minute * 60 + second;
  if (withZone) {
    const offset = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    seconds -= m[8] === '-' ? -offset : offset;
  }
  const micros = BigInt(seconds) * 1_000_000n + BigInt(m[7] === undefined ? 0 : Number(m[7].padEnd(6, '0')));
  return micros > TIMESTAMP_NEG_INFINITY && micros < TIMESTAMP_POS_INFINITY ? micros : null;
}

export function formatTimestamp(micros: bigint, withZone: boolean): string {
  if (micros === TIMESTAMP_POS_INFINITY) return 'infinity';
  if (micros === TIMESTAMP_NEG_INFINITY) return '-infinity';
  let seconds = micros / 1_000_000n;
  let fraction = Number(micros - seconds * 1_000_000n);
  if (fraction < 0) {
    fraction += 1_000_000;
    seconds -= 1n;
  }
  const total = Number(seconds);
  const days = Math.floor(total / 86400);
  const secondOfDay = total - days * 86400;
  const [year, month, day] = civilFromDays(days);
  let out = `${formatYmd(year, month, day)} ${pad2(Math.floor(secondOfDay / 3600))}:${pad2(Math.floor(secondOfDay / 60) % 60)}:${pad2(secondOfDay % 60)}`;
  // AppendSeconds: six digits with trailing zeros trimmed, nothing when the fraction is zero.
  if (fraction !== 0) out += '.' + String(fraction).padStart(6, '0').replace(/0+$/, '');
  if (withZone) out += '+00';
  return year <= 0 ? out + ' BC' : out;
}
