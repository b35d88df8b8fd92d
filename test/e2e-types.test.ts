import { describe, test } from 'vitest';
import { typeFidelityEndToEnd } from './support/type-fidelity.ts';

// Brief item 4 end to end on the shared blue and green (test/support/type-fidelity.ts; the
// same check runs on every PostgreSQL major in test/engine-versions.test.ts).

describe('every type, blue text == green text, end to end', () => {
  test('snapshot and stream carry every value exactly', async () => {
    await typeFidelityEndToEnd();
  });
});
