// During fuzzing no single Buffer allocation may exceed a limit: a length field read from a
// corrupt message (2^31, 2^32 - 1) must be checked against the bytes present before it sizes
// anything. The guard wraps Buffer's allocators so such an allocation fails the input loudly
// instead of passing unnoticed (or taking the machine's memory).

export class AllocationOverLimit extends Error {
  override readonly name = 'AllocationOverLimit';
}

let installed = false;

export function guardAllocations(limitBytes: number): void {
  if (installed) return;
  installed = true;
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const original = Buffer[name] as (size: number, ...rest: unknown[]) => Buffer;
    (Buffer as unknown as Record<string, unknown>)[name] = (size: number, ...rest: unknown[]) => {
      if (size > limitBytes) {
        throw new AllocationOverLimit(
          `Buffer.${name}(${size}) is over the fuzzing limit of ${limitBytes} bytes`,
        );
      }
      return original.call(Buffer, size, ...rest);
    };
  }
}
