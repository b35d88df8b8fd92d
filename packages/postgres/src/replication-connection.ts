import { EventEmitter } from 'node:events';
import { formatLsn, type Lsn, maxLsn } from '@teal/change-event';
import { isRetriablePgError, redactUrl, sqlState, TealError } from '@teal/errors';
import { decodeCopyData, encodeStandbyStatus } from '@teal/pgoutput';
import type pg from 'pg';
import { clientConfig, markConnectionLost, TealClient } from './session.ts';
import { isSlotInvalidated, readSlot, slotInvalidatedError, slotMissingError } from './slot.ts';
import { quoteLiteral, replicationLiteral } from './sql.ts';

export interface ReplicationClientOptions {
  readonly connectionString: string;
  readonly slot: string;
  readonly publication: string;
  /** pgoutput proto_version: 1-4, as pgoutputProtocolFor() chooses for the server. */
  readonly protoVersion: number;
  /**
   * streaming 'on' (true; protocol >= 2): large in-progress transactions arrive in blocks;
   * 'parallel' (protocol >= 4) also puts the abort LSN and time into Stream Abort.
   */
  readonly streaming: boolean | 'parallel';
  /** messages 'true' (pgoutput 14+): logical decoding messages in the stream; default true. */
  readonly messages?: boolean;
  /** Standby status every this many ms, default 10 000 (well under wal_sender_timeout). */
  readonly statusIntervalMs?: number;
  /** messages() pauses the socket above this many queued XLogData, default 1000. */
  readonly highWaterMark?: number;
  /** More walsender settings, e.g. { logical_decoding_work_mem: '64kB' } (decoding reads its own session's value). */
  readonly settings?: Readonly<Record<string, string>>;
  /** The pipeline's topic prefix, for the start-over advice when the slot is gone; default 'teal'. */
  readonly topicPrefix?: string;
}

export interface XLogMessage {
  readonly walStart: Lsn;
  readonly walEnd: Lsn;
  /** A private copy: pg-protocol hands out views into a buffer it reuses. */
  readonly payload: Buffer;
}

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** The low-level CopyBoth calls of node-postgres's Connection that @types/pg leaves out. */
interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}
const copyConnection = (client: pg.Client) => client.connection as unknown as CopyConnection;

// The one module that owns the walsender socket (node-postgres Client in replication
// mode). It differs from pg-logical-replication on purpose:
// - the only LSN ever reported as flushed is the one downstream acknowledged, in the
//   periodic status, in answers to keepalives, and at close; never the last received;
// - keepalives that request a reply are answered at once (else the server drops us after
//   wal_sender_timeout);
// - a restart starts from the caller's LSN (the durable one), never from what was received.
//
// Consume with messages(). Events: 'xlog' (XLogMessage, for observers), 'keepalive'
// ({ walEnd, replyRequested }), 'error' (TealError), 'end'. The server sends nothing while the socket is paused, so pause()
// is backpressure all the way to the walsender.
export class ReplicationClient extends EventEmitter {
  private client: pg.Client | undefined;
  private acknowledged: Lsn = 0n;
  private received: Lsn = 0n;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private streamDone: Promise<unknown> | undefined;
  private copyStarted = false;
  private readonly queue: XLogMessage[] = [];
  private wake: (() => void) | undefined;
  private failure: TealError | undefined;

  constructor(readonly opts: ReplicationClientOptions) {
    super();
    if (!SLOT_NAME.test(opts.slot)) {
      throw new TealError(
        'TEAL_CONFIG_INVALID',
        `replication slot name ${JSON.stringify(opts.slot)} is invalid: use 1-63 lowercase letters, digits and underscores`,
      );
    }
    for (const [k, v] of Object.entries(opts.settings ?? {})) {
      if (!/^[A-Za-z0-9_.]+$/.test(k) || !/^[A-Za-z0-9_.+-]+$/.test(v)) {
        throw new TealError(
          'TEAL_CONFIG_INVALID',
          `replication setting ${k}=${v} is not a plain name=value pair`,
        );
      }
    }
    const needs = opts.streaming === 'parallel' ? 4 : opts.streaming ? 2 : 1;
    if (opts.protoVersion < needs || opts.protoVersion > 4) {
      throw new TealError(
        'TEAL_CONFIG_INVALID',
        `pgoutput proto_version ${opts.protoVersion} is not usable${opts.streaming ? ` with streaming '${opts.streaming === 'parallel' ? 'parallel' : 'on'}' (needs >= ${needs})` : ''}: use ${needs}-4`,
      );
    }
  }

  /** The LSN last confirmed to the server as flushed. */
  get acknowledgedLsn(): Lsn {
    return this.acknowledged;
  }

  /** End of the last XLogData received (for lag metrics only: never confirmed). */
  get receivedLsn(): Lsn {
    return this.received;
  }

  async start(fromLsn: Lsn): Promise<void> {
    if (this.client) throw new Error('ReplicationClient.start() called twice; make a new client to restart');
    const { slot, publication } = this.opts;
    const config = clientConfig(this.opts.connectionString, {
      applicationName: 'teal-producer-stream',
      replication: 'database',
    });
    // Decoding reads its own session's settings (logical_decoding_work_mem, say).
    config.options = [
      config.options,
      ...Object.entries(this.opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`),
    ].join(' ');
    const client = new TealClient(config);
    this.client = client;
    // The client emits 'error' for its socket (reset, EOF) and for a FATAL from the server;
    // one without a SQLSTATE is the connection going away, which a new session can survive.
    client.on('error', (err) => this.fail(sqlState(err) ? err : markConnectionLost(err)));
    client.on('end', () => {
      if (!this.closing)
        this.fail(
          new TealError(
            'TEAL_REPLICATION_CONNECTION_LOST',
            'the replication connection to blue closed unexpectedly',
          ),
        );
    });
    try {
      await client.connect();
    } catch (err) {
      throw this.translate(err, 'connecting');
    }
    // Check the slot and publication first so that a missing one gets a precise message
    // (the server reports both as 42704).
    const slotRow = await readSlot(client, slot).catch((err) => {
      throw this.translate(err, 'looking up the slot');
    });
    if (!slotRow) throw this.slotError('42704', 'the slot does not exist');
    if (isSlotInvalidated(slotRow))
      throw this.slotError('55000', `pg_replication_slots.wal_status is "${slotRow.walStatus}"`);
    const pubRows = await client.query(
      `SELECT 1 FROM pg_publication WHERE pubname = ${quoteLiteral(publication)}`,
    );
    if (pubRows.rows.length === 0) {
      throw new TealError(
        'TEAL_PUBLICATION_MISSING',
        `publication ${JSON.stringify(publication)} does not exist on blue (${redactUrl(this.opts.connectionString)}): create it (CREATE PUBLICATION ${publication} FOR ALL TABLES) or fix the publication name in teal.config.ts`,
      );
    }
    // The server never moves confirmed_flush_lsn backwards on our say-so only since
    // PG 17; never report less than it already has.
    const confirmed = slotRow.confirmedFlushLsn ?? 0n;
    this.acknowledged = maxLsn(fromLsn, confirmed);

    const started = new Promise<void>((resolve, reject) => {
      client.connection.once('replicationStart', () => {
        this.copyStarted = true;
        resolve();
      });
      this.streamDone = client
        .query(this.startCommand(fromLsn))
        .then(() => {
          if (!this.closing)
            this.fail(
              new TealError(
                'TEAL_REPLICATION_CONNECTION_LOST',
                'the server ended replication (walsender exited): a new session resumes from the confirmed LSN',
              ),
            );
        })
        .catch((err: unknown) => {
          const translated = this.translate(err, 'streaming');
          reject(translated);
          if (!this.closing) this.fail(translated);
        });
    });
    client.connection.on('copyData', (msg: { chunk: Buffer }) => this.onCopyData(msg.chunk));
    await started;
    this.timer = setInterval(() => this.sendStatus(false), this.opts.statusIntervalMs ?? 10_000);
    this.timer.unref();
  }

  /**
   * The only way LSNs are confirmed: `flushedLsn` is what downstream made durable (the end
   * LSN of a transaction whose every event Kafka acknowledged). Lower values are ignored.
   */
  acknowledge(flushedLsn: Lsn): void {
    if (flushedLsn <= this.acknowledged) return;
    this.acknowledged = flushedLsn;
    this.sendStatus(false);
  }

  pause(): void {
    this.client?.connection.stream.pause();
  }

  resume(): void {
    this.client?.connection.stream.resume();
  }

  /**
   * XLogData in order, with backpressure: the socket is paused while more than
   * highWaterMark messages wait. Messages are queued from the start of replication (the
   * first ones can arrive in the same socket chunk as CopyBothResponse, before the caller
   * could subscribe), so consume them here; 'xlog' events are for observers only.
   * Ends when the client closes; throws its error. One consumer at a time.
   */
  async *messages(): AsyncGenerator<XLogMessage> {
    const high = this.opts.highWaterMark ?? 1000;
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        if (this.queue.length === high >> 1) this.resume();
        yield next;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.closing) return;
      this.resume();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    const client = this.client;
    if (client) {
      try {
        this.sendStatus(false);
        // CopyDone ends the COPY cleanly; the server answers CopyDone + CommandComplete.
        copyConnection(client).endCopyFrom();
        await Promise.race([this.streamDone, new Promise((r) => setTimeout(r, 2000).unref())]);
      } catch {
        // The socket is going away regardless.
      }
      await client.end().catch(() => undefined);
    }
    this.wake?.();
    this.emit('end');
  }

  private startCommand(fromLsn: Lsn): string {
    const options = [
      `proto_version '${this.opts.protoVersion}'`,
      `publication_names ${replicationLiteral(this.opts.publication)}`,
    ];
    // 13's pgoutput refuses an option it does not know ("unrecognized pgoutput option").
    if (this.opts.messages !== false) options.push(`messages 'true'`);
    if (this.opts.streaming)
      options.push(`streaming '${this.opts.streaming === 'parallel' ? 'parallel' : 'on'}'`);
    return `START_REPLICATION SLOT ${this.opts.slot} LOGICAL ${formatLsn(fromLsn)} (${options.join(', ')})`;
  }

  private onCopyData(chunk: Buffer): void {
    let frame: ReturnType<typeof decodeCopyData>;
    try {
      frame = decodeCopyData(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (frame.kind === 'k') {
      // Answered with the acknowledged LSN, whatever was received meanwhile.
      if (frame.replyRequested) this.sendStatus(false);
      this.emit('keepalive', { walEnd: frame.walEnd, replyRequested: frame.replyRequested });
      return;
    }
    if (frame.walEnd > this.received) this.received = frame.walEnd;
    const message: XLogMessage = {
      walStart: frame.walStart,
      walEnd: frame.walEnd,
      payload: Buffer.from(frame.payload),
    };
    this.queue.push(message);
    if (this.queue.length >= (this.opts.highWaterMark ?? 1000)) this.pause();
    this.wake?.();
    this.emit('xlog', message);
  }

  private sendStatus(replyRequested: boolean): void {
    const client = this.client;
    if (!client || this.acknowledged === 0n) return;
    const lsn = this.acknowledged;
    try {
      copyConnection(client).sendCopyFromChunk(
        encodeStandbyStatus({ written: lsn, flushed: lsn, applied: lsn, replyRequested }),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  private failed = false;
  private fail(err: unknown): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    if (this.timer) clearInterval(this.timer);
    const error = err instanceof TealError ? err : this.translate(err, 'streaming');
    this.failure = error;
    this.wake?.();
    if (this.listenerCount('error') > 0) this.emit('error', error);
    this.client?.end().catch(() => undefined);
  }

  private slotError(state: string, detail: string, cause?: unknown): TealError {
    const slot = JSON.stringify(this.opts.slot);
    const where = redactUrl(this.opts.connectionString);
    const gone = {
      slot: this.opts.slot,
      topicPrefix: this.opts.topicPrefix ?? 'teal',
      when: `while streaming from ${where}`,
    };
    switch (state) {
      case '42704':
        return slotMissingError({ ...gone, tealCreatedIt: true }, cause);
      case '55006':
        return new TealError(
          'TEAL_SLOT_IN_USE',
          `replication slot ${slot} on blue (${where}) is in use by another process (${detail}): stop the other producer, or wait for its connection to time out.`,
          { retriable: true, cause },
        );
      default:
        return slotInvalidatedError(gone, `unknown (${detail})`, cause);
    }
  }

  // Branches on SQLSTATE only, never on message text.
  private translate(err: unknown, phase: string): TealError {
    if (err instanceof TealError) return err;
    const state = sqlState(err);
    const detail = (err as Error | undefined)?.message ?? String(err);
    if (state === '42704' && this.copyStarted) {
      // Once replication runs, 42704 comes from decoding: a publication that is gone.
      return new TealError(
        'TEAL_PUBLICATION_MISSING',
        `blue reports a missing object while decoding slot ${JSON.stringify(this.opts.slot)} (${detail}): check that publication ${JSON.stringify(this.opts.publication)} exists`,
        { cause: err },
      );
    }
    if (state === '42704' || state === '55006' || state === '55000')
      return this.slotError(state, detail, err);
    const retriable = isRetriablePgError(err);
    return new TealError(
      retriable ? 'TEAL_REPLICATION_CONNECTION_LOST' : 'TEAL_REPLICATION_FAILED',
      `replication from blue (${redactUrl(this.opts.connectionString)}, slot ${JSON.stringify(this.opts.slot)}) failed while ${phase}: ${detail}${retriable ? ' (will retry)' : ''}`,
      { retriable, cause: err },
    );
  }
}
