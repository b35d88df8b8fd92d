// Secrets never reach logs, API answers or error messages: every connection string that
// is shown anywhere passes through here first.

/** A connection string with its password (and secret-looking parameters) replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return url.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:***@');
  }
}

/** Removes passwords from any connection string inside a message (for logs and API answers). */
export function redactSecrets(message: string): string {
  return message.replace(/(\w+:\/\/[^:/@\s]+):[^@\s]*@/g, '$1:***@');
}
