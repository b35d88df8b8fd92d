import { PassThrough } from 'node:stream';
import { TealError } from '@teal/errors';
import { parse } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { decodeCopyData, encodeStandbyStatus } from './framing.ts';
import { frames, pgo } from './wire-fixtures.ts';

const TS = 1_709_210_096_789_012n;

describe('replication framing', () => {
  it('decodes XLogData with its WAL positions, send time and payload', () => {
    const payload = pgo.begin(0x16b3748n, TS, 77);
    expect(decodeCopyData(frames.xlog(0x16b3700n, 0x16b3800n, TS, payload))).toEqual({
      kind: 'w',
      walStart: 0x16b3700n,
      walEnd: 0x16b3800n,
      sendTimeUs: TS,
      payload,
    });
  });

  it('decodes primary keepalives with and without a reply request', () => {
    expect(decodeCopyData(frames.keepalive(0xabcdefn, TS, true))).toEqual({
      kind: 'k',
      walEnd: 0xabcdefn,
      sendTimeUs: TS,
      replyRequested: true,
    });
    expect(decodeCopyData(frames.keepalive(1n, TS, false))).toMatchObject({ replyRequested: false });
  });

  it('encodes a standby status update byte for byte', () => {
    const buf = encodeStandbyStatus({
      written: 0x10n,
      flushed: 0x20n,
      applied: 0x30n,
      replyRequested: true,
      nowUs: TS,
    });
    expect(buf.length).toBe(34);
    expect(String.fromCharCode(buf[0]!)).toBe('r');
    expect(buf.readBigUInt64BE(1)).toBe(0x10n);
    expect(buf.readBigUInt64BE(9)).toBe(0x20n);
    expect(buf.readBigUInt64BE(17)).toBe(0x30n);
    expect(buf.readBigInt64BE(25)).toBe(TS - 946_684_800_000_000n);
    expect(buf[33]).toBe(1);
  });

  it('reports truncated and unknown frames as TEAL_PGOUTPUT_MALFORMED', () => {
    const xlog = frames.xlog(1n, 2n, TS, Buffer.alloc(0));
    const keep = frames.keepalive(1n, TS, true);
    for (const buf of [xlog, keep]) {
      for (let n = 0; n < buf.length; n++) {
        expect(() => decodeCopyData(buf.subarray(0, n))).toThrow(TealError);
      }
    }
    expect(() => decodeCopyData(Buffer.from('q'))).toThrow(/unknown message type byte 0x71/);
    expect(() => decodeCopyData(Buffer.concat([keep, Buffer.from([0])]))).toThrow(/trailing/);
  });

  // The client relies on pg-protocol to reassemble a CopyData message that arrives split
  // across socket chunks (as its parser.ts does for every message), and on copying the
  // payload out because the parser reuses its buffer.
  it('gets whole CopyData messages from pg-protocol even when the socket splits one', async () => {
    const payload = pgo.insert(7, ['x'.repeat(3000)]);
    const xlog = frames.xlog(5n, 6n, TS, payload);
    const header = Buffer.alloc(5);
    header[0] = 0x64; // 'd' CopyData
    header.writeUInt32BE(xlog.length + 4, 1);
    const wire = Buffer.concat([header, xlog, header, xlog]);
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    parse(stream, (msg) => {
      if (msg.name === 'copyData') chunks.push(Buffer.from((msg as unknown as { chunk: Buffer }).chunk));
    });
    stream.write(wire.subarray(0, 100));
    stream.write(wire.subarray(100, xlog.length + 200));
    stream.end(wire.subarray(xlog.length + 200));
    await new Promise((resolve) => stream.on('end', resolve));
    expect(chunks).toHaveLength(2);
    for (const chunk of chunks) expect(decodeCopyData(chunk)).toMatchObject({ walStart: 5n, payload });
  });
});
