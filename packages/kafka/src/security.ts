import { isIP } from 'node:net';
import { type ConnectionOptions as TlsConnectionOptions, connect as tlsConnect } from 'node:tls';
import { TealError } from '@teal/errors';
import type { KafkaOptions, KafkaTls, OAuthBearerToken } from './types.ts';

// TLS and SASL for both client libraries, from one KafkaOptions: what each library is given
// (kafkajsSecurity, platformaticSecurity), the OAUTHBEARER token cache both share, and the
// one reading of a failed connect as TEAL_KAFKA_TLS / TEAL_KAFKA_AUTH (not retriable: the same
// attempt fails the same way until someone fixes the setting). docs/kafka-security.md.

/** A token is asked for again when this share of its lifetime is left (and at least REFRESH_MIN_MS). */
const REFRESH_SHARE = 0.2;
const REFRESH_MIN_MS = 30_000;
/** A token without expiresAt is asked for again after this long. */
const DEFAULT_LIFETIME_MS = 5 * 60_000;
/** A hook that has not answered in this long has failed (a connect must not hang on it). */
const HOOK_TIMEOUT_MS = 30_000;

const expiryMs = (t: OAuthBearerToken, now: number) =>
  t.expiresAt === undefined ? now + DEFAULT_LIFETIME_MS : Number(t.expiresAt);

/**
 * The OAUTHBEARER hook behind a cache: one call at a time, the token reused until
 * REFRESH_SHARE of its lifetime is left, then the hook is called again (before expiry, so a
 * new connection never presents an expired token). A hook that throws, times out or returns
 * no token is TEAL_KAFKA_AUTH, not retried: the message has the hook's own error, never a token.
 */
export function oauthTokenSource(
  hook: () => Promise<OAuthBearerToken> | OAuthBearerToken,
  now: () => number = Date.now,
): () => Promise<OAuthBearerToken> {
  let cached: { token: OAuthBearerToken; refreshAt: number } | undefined;
  let pending: Promise<OAuthBearerToken> | undefined;
  const fetchToken = async (): Promise<OAuthBearerToken> => {
    const asked = now();
    let timer: NodeJS.Timeout | undefined;
    let token: OAuthBearerToken;
    try {
      token = await Promise.race([
        Promise.resolve().then(hook),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer in ${HOOK_TIMEOUT_MS / 1000} s`)),
            HOOK_TIMEOUT_MS,
          );
          timer.unref();
        }),
      ]);
    } catch (err) {
      throw new TealError(
        'TEAL_KAFKA_AUTH',
        `the OAUTHBEARER token hook (kafka.sasl.oauthBearer) failed: ${(err as Error)?.message ?? String(err)}`,
        { retriable: false, cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    if (typeof token?.token !== 'string' || token.token === '') {
      throw new TealError(
        'TEAL_KAFKA_AUTH',
        'the OAUTHBEARER token hook (kafka.sasl.oauthBearer) returned no token: it must return { token, expiresAt }',
        { retriable: false },
      );
    }
    const expires = expiryMs(token, asked);
    const lifetime = Math.max(0, expires - asked);
    cached = {
      token,
      refreshAt: expires - Math.max(lifetime * REFRESH_SHARE, Math.min(REFRESH_MIN_MS, lifetime / 2)),
    };
    return token;
  };
  return async () => {
    if (cached && now() < cached.refreshAt) return cached.token;
    pending ??= fetchToken().finally(() => {
      pending = undefined;
    });
    return pending;
  };
}

/** Node TLS options for either library. */
export function tlsOptions(tls: KafkaTls): TlsConnectionOptions {
  return {
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key() }),
    ...(tls.passphrase === undefined ? {} : { passphrase: tls.passphrase() }),
    rejectUnauthorized: true,
    // The chain is still checked; only the name in the certificate is not (kafka.tls.verifyHostname: false).
    ...(tls.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** kafkajs's `ssl` and `sasl` options. */
export function kafkajsSecurity(options: KafkaOptions) {
  const ssl = options.tls ? tlsOptions(options.tls) : undefined;
  const sasl = options.sasl;
  if (!sasl) return { ssl };
  if (sasl.mechanism === 'OAUTHBEARER') {
    const source = oauthTokenSource(sasl.oauthBearer);
    return {
      ssl,
      sasl: {
        mechanism: 'oauthbearer' as const,
        oauthBearerProvider: async () => {
          const t = await source();
          return { value: t.token, ...(t.extensions ? { extensions: t.extensions } : {}) };
        },
      },
    };
  }
  const mechanism = sasl.mechanism.toLowerCase() as 'scram-sha-256';
  return { ssl, sasl: { mechanism, username: sasl.username, password: sasl.password() } };
}

/** @platformatic/kafka's `tls`, `tlsServerName` and `sasl` options (credentials as providers, asked per connection). */
export function platformaticSecurity(options: KafkaOptions) {
  const out: Record<string, unknown> = {};
  if (options.tls) {
    out.tls = tlsOptions(options.tls);
    // SNI with the broker's host name (managed services route on it); Node refuses an IP there.
    const host = options.brokers[0]?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') ?? '';
    if (isIP(host) === 0) out.tlsServerName = true;
  }
  const sasl = options.sasl;
  if (sasl?.mechanism === 'OAUTHBEARER') {
    const source = oauthTokenSource(sasl.oauthBearer);
    out.sasl = {
      mechanism: 'OAUTHBEARER',
      token: async () => (await source()).token,
      oauthBearerExtensions: async () => (await source()).extensions ?? {},
    };
  } else if (sasl) {
    out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password };
  }
  return out;
}

// Node's codes for a certificate the client does not accept (tls.TLSSocket's verify errors).
const TLS_CODES =
  /^(?:SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|CERT_\w+|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_\w+|ERR_OSSL_\w+|HOSTNAME_MISMATCH)$/;
const TLS_TEXT =
  /self[- ]signed certificate|unable to verify the first certificate|unable to get (?:local )?issuer certificate|certificate has expired|Hostname\/IP does not match certificate|wrong version number|packet length too long|secure TLS connection was established|ERR_SSL|certificate verify failed/i;
const AUTH_TEXT =
  /SASL|authentication failed|Authentication failed|invalid credentials|ILLEGAL_SASL_STATE|UNSUPPORTED_SASL_MECHANISM|SASL_AUTHENTICATION_FAILED|invalid_token|OAUTHBEARER/;

/** Every message and code in an error, its causes and nested errors (both libraries nest them). */
function facts(err: unknown, depth = 0): Array<{ code?: string; message: string; teal?: TealError }> {
  if (!err || typeof err !== 'object' || depth > 5) return [];
  const e = err as {
    code?: unknown;
    message?: unknown;
    cause?: unknown;
    errors?: unknown[];
    originalError?: unknown;
  };
  const own = {
    code: typeof e.code === 'string' ? e.code : undefined,
    message: typeof e.message === 'string' ? e.message : '',
    teal: err instanceof TealError ? err : undefined,
  };
  return [
    own,
    ...facts(e.cause, depth + 1),
    ...facts(e.originalError, depth + 1),
    ...(Array.isArray(e.errors) ? e.errors.flatMap((inner) => facts(inner, depth + 1)) : []),
  ];
}

/**
 * A failed connect read as what an operator must fix: TEAL_KAFKA_TLS or TEAL_KAFKA_AUTH
 * (a TealError the token hook threw is passed on); undefined for anything else. `what` and
 * the broker list name the connection; no secret is in either.
 */
export function securityError(err: unknown, what: string, options: KafkaOptions): TealError | undefined {
  const all = facts(err);
  const hookFailure = all.find((f) => f.teal?.code === 'TEAL_KAFKA_AUTH')?.teal;
  if (hookFailure) return hookFailure;
  const brokers = options.brokers.join(', ');
  const tls = all.find((f) => (f.code && TLS_CODES.test(f.code)) || TLS_TEXT.test(f.message));
  if (tls && options.tls) {
    return new TealError(
      'TEAL_KAFKA_TLS',
      `${what}: TLS to ${brokers} failed (${tls.code ?? tls.message}): give the CA that signed the brokers' certificate (kafka.tls.ca or TEAL_KAFKA_TLS_CA), check the broker addresses name that certificate, and that these ports speak TLS`,
      { retriable: false, cause: err },
    );
  }
  if (
    tls &&
    !options.tls &&
    /secure TLS connection was established|wrong version number|ECONNRESET/.test(tls.message)
  ) {
    return new TealError(
      'TEAL_KAFKA_TLS',
      `${what}: ${brokers} closed a plaintext connection; the listener likely wants TLS: set kafka.tls (or TEAL_KAFKA_TLS=1)`,
      { retriable: false, cause: err },
    );
  }
  const auth = all.find((f) => AUTH_TEXT.test(f.message) || f.code === 'SASL_AUTHENTICATION_FAILED');
  if (auth && options.sasl) {
    const who =
      options.sasl.mechanism === 'OAUTHBEARER'
        ? 'the OAUTHBEARER token'
        : `user ${JSON.stringify(options.sasl.username)}`;
    return new TealError(
      'TEAL_KAFKA_AUTH',
      `${what}: ${brokers} refused the SASL ${options.sasl.mechanism} login of ${who} (${auth.message.slice(0, 200)}): check kafka.sasl (TEAL_KAFKA_SASL_*) against the user the cluster has`,
      { retriable: false, cause: err },
    );
  }
  return undefined;
}

const probed = new WeakMap<KafkaOptions, Promise<void>>();

/**
 * With TLS set, one TLS handshake with the first broker before kafkajs connects: kafkajs
 * retries a refused certificate as any connection error (8 times, ~10 s) before teal sees it,
 * so a wrong CA or host name is TEAL_KAFKA_TLS here at once. Anything else (a broker away, a
 * timeout) is left to kafkajs's own retries. Once per options object; a refusal is not kept.
 */
export function tlsProbe(options: KafkaOptions | undefined): Promise<void> {
  if (!options?.tls || options.brokers.length === 0) return Promise.resolve();
  let probe = probed.get(options);
  if (!probe) {
    const broker = options.brokers[0]!;
    const colon = broker.lastIndexOf(':');
    const host = broker.slice(0, colon).replace(/^\[|\]$/g, '');
    const tls = tlsOptions(options.tls);
    probe = new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({
        ...tls,
        host,
        port: Number(broker.slice(colon + 1)),
        ...(isIP(host) === 0 ? { servername: host } : {}),
      });
      socket.setTimeout(5_000, () => {
        socket.destroy();
        resolve();
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', (err) => {
        socket.destroy();
        const refused = securityError(err, 'cannot connect to Kafka', options);
        if (refused?.code === 'TEAL_KAFKA_TLS') reject(refused);
        else resolve();
      });
    });
    probed.set(options, probe);
    probe.catch(() => probed.delete(options));
  }
  return probe;
}
