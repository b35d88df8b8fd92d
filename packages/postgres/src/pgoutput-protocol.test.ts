import { describe, expect, it } from 'vitest';
import { needsMessagesError, pgoutputProtocolFor } from './pgoutput-protocol.ts';

describe('pgoutputProtocolFor', () => {
  it('asks each major for what its pgoutput speaks', () => {
    const asked = [130023, 140023, 150018, 160014, 170010, 180004].map((v) => {
      const { major, protoVersion, streaming, messages } = pgoutputProtocolFor(v);
      return [major, protoVersion, streaming, messages];
    });
    expect(asked).toEqual([
      [13, 1, 'off', false],
      [14, 2, 'on', true],
      [15, 2, 'on', true],
      [16, 4, 'parallel', true],
      [17, 4, 'parallel', true],
      [18, 4, 'parallel', true],
    ]);
  });

  it('refuses a blue older than 13, naming the version and the fix', () => {
    expect(() => pgoutputProtocolFor(120017)).toThrow(
      /PostgreSQL 12; teal streams from PostgreSQL 13 to 18: upgrade blue/,
    );
  });

  it('says which version a message-bracketed snapshot needs', () => {
    const err = needsMessagesError(pgoutputProtocolFor(130023), 'snapshotting public.t while streaming');
    expect(err.code).toBe('TEAL_PGOUTPUT_UNSUPPORTED');
    expect(err.message).toMatch(/needs PostgreSQL 14 or newer on blue \(blue runs 13/);
  });
});
