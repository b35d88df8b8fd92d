// What test/global-setup.ts hands to every integration test through `inject()`.
declare module 'vitest' {
  export interface ProvidedContext {
    blueUrl: string;
    greenUrl: string;
    kafkaBrokers: string;
  }
}

export {};
