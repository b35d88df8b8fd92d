import { defineConfig } from 'vitest/config';

// Two projects: unit tests live beside the code and need no server; integration and
// end-to-end tests live in test/ and run against the real local environment, which
// test/global-setup.ts brings up when it is not already running.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // The integration tests share one blue, one green and one broker on a 2-core machine.
          fileParallelism: false,
        },
      },
    ],
  },
});
