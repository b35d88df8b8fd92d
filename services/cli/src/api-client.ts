import http from 'node:http';

// The CLI's client of the control API. node:http rather than fetch: a drain may
// legitimately take up to an hour, longer than undici's fixed header timeout.

export class ApiUnreachable extends Error {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    const reason = (cause as { code?: string })?.code ?? (cause as Error)?.message ?? String(cause);
    super(
      `cannot reach the teal API at ${url} (${reason}): start it with \`teal api\` or \`teal run\`, or set TEAL_API_HOST / TEAL_API_PORT`,
    );
  }
}

/** A non-2xx answer; `code` and `message` from the API's { error: { code, message } }. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | undefined,
  ) {
    super(message);
  }
}

export interface ApiTarget {
  host: string;
  port: number;
  token: string | undefined;
}

export function apiBaseUrl(target: ApiTarget): string {
  // A server bound to every interface is reached on loopback.
  const host = target.host === '0.0.0.0' ? '127.0.0.1' : target.host === '::' ? '::1' : target.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${target.port}`;
}

export function callApi<T>(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<T> {
  const base = apiBaseUrl(target);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  return new Promise<T>((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve((json ?? text) as T);
          return;
        }
        const error = (
          json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }
        )?.error;
        reject(
          new ApiError(
            status,
            error?.code ?? `HTTP_${status}`,
            error?.message ?? text.slice(0, 200),
            error?.details,
          ),
        );
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${base}${path} within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      const code = (err as { code?: string }).code;
      if (
        code === 'ECONNREFUSED' ||
        code === 'ENOTFOUND' ||
        code === 'EHOSTUNREACH' ||
        code === 'ECONNRESET'
      ) {
        reject(new ApiUnreachable(base, err));
      } else reject(err);
    });
    req.end(payload);
  });
}
