// Types for TypeScript callers (test/support) of test-certificates.mjs.

/** `<name>.key` and a self-signed CA certificate `<name>.crt` in `dir`. */
export function makeCa(dir: string, name: string, options?: { cn?: string; days?: number }): void;

/** `<name>.key` and `<name>.crt` signed by the CA `ca` (default 'ca') in `dir`, with the x509v3 lines `ext`. */
export function makeLeaf(
  dir: string,
  name: string,
  options: { ca?: string; cn: string; ext: string; days?: number },
): void;
