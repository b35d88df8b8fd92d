import { describe, expect, it } from 'vitest';
import { clientConfig, SESSION_OPTIONS } from './session.ts';

// The reverse apply's writer token travels as a startup setting (services/control/src/fence.ts):
// it must reach the server as one -c option after teal's own, and a value that would split
// the options string must be refused, not sent half.

describe('clientConfig settings', () => {
  it("appends each setting as -c name=value after teal's session options", () => {
    const c = clientConfig('postgres://u@127.0.0.1:5433/app', {
      applicationName: 'teal-reverse-consumer',
      settings: { 'teal.reverse_writer': 'ab12cd' },
    });
    expect(c.options).toBe(`${SESSION_OPTIONS} -c teal.reverse_writer=ab12cd`);
    expect(clientConfig('postgres://u@127.0.0.1:5433/app', { applicationName: 'teal-x' }).options).toBe(
      SESSION_OPTIONS,
    );
  });

  it('refuses a value with a space or a backslash, and a name that is not a setting', () => {
    const url = 'postgres://u@127.0.0.1:5433/app';
    expect(() => clientConfig(url, { applicationName: 't', settings: { 'teal.x': 'a b' } })).toThrow(
      /startup option/,
    );
    expect(() => clientConfig(url, { applicationName: 't', settings: { 'teal.x': 'a\\b' } })).toThrow(
      /startup option/,
    );
    expect(() => clientConfig(url, { applicationName: 't', settings: { 'x -c y': 'z' } })).toThrow(
      /startup option/,
    );
  });
});
