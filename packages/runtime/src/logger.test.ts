import { describe, expect, it } from 'vitest';
import { chooseLogFormat, prettyMessage } from './logger.ts';

describe('chooseLogFormat', () => {
  it('is pretty with colours on a terminal and JSON on anything else', () => {
    expect(chooseLogFormat({ env: {}, isTTY: true })).toEqual({ format: 'pretty', color: true });
    expect(chooseLogFormat({ env: {}, isTTY: false })).toEqual({ format: 'json', color: false });
    expect(chooseLogFormat({ env: {}, isTTY: undefined })).toEqual({ format: 'json', color: false });
  });

  it('takes --log-format over TEAL_LOG_FORMAT over the terminal, both ways', () => {
    expect(chooseLogFormat({ flag: 'json', env: { TEAL_LOG_FORMAT: 'pretty' }, isTTY: true }).format).toBe(
      'json',
    );
    expect(chooseLogFormat({ env: { TEAL_LOG_FORMAT: 'json' }, isTTY: true }).format).toBe('json');
    expect(chooseLogFormat({ env: { TEAL_LOG_FORMAT: 'pretty' }, isTTY: false })).toEqual({
      format: 'pretty',
      color: false,
    });
    expect(chooseLogFormat({ flag: 'pretty', env: {}, isTTY: false }).format).toBe('pretty');
  });

  it("uses a command's own default only when neither the flag nor the variable says", () => {
    expect(chooseLogFormat({ env: {}, isTTY: false, fallback: 'pretty' }).format).toBe('pretty');
    expect(
      chooseLogFormat({ env: { TEAL_LOG_FORMAT: 'json' }, isTTY: false, fallback: 'pretty' }).format,
    ).toBe('json');
  });

  it('drops colours for NO_COLOR, and an empty variable counts as unset', () => {
    expect(chooseLogFormat({ env: { NO_COLOR: '1' }, isTTY: true })).toEqual({
      format: 'pretty',
      color: false,
    });
    expect(chooseLogFormat({ env: { TEAL_LOG_FORMAT: ' ' }, isTTY: false }).format).toBe('json');
  });

  it('refuses a value it does not know, naming where it came from', () => {
    expect(() => chooseLogFormat({ flag: 'xml', env: {}, isTTY: true })).toThrow(
      /--log-format must be one of json, pretty, got "xml"/,
    );
    expect(() => chooseLogFormat({ env: { TEAL_LOG_FORMAT: 'text' }, isTTY: true })).toThrow(
      expect.objectContaining({
        code: 'TEAL_CONFIG_INVALID',
        message: expect.stringMatching(/^TEAL_LOG_FORMAT/),
      }),
    );
  });
});

describe('prettyMessage', () => {
  it('puts the component first and the error, code preferred, on the same line', () => {
    expect(
      prettyMessage({
        component: 'consumer',
        msg: 'apply failed',
        err: { type: 'Error', code: 'TEAL_X', message: 'no' },
      }),
    ).toBe('[consumer] apply failed: TEAL_X: no');
    expect(prettyMessage({ msg: 'crashed', err: { type: 'TypeError', message: 'x is undefined' } })).toBe(
      'crashed: TypeError: x is undefined',
    );
    expect(prettyMessage({ msg: 'plain' })).toBe('plain');
    // kafkajs's entries carry the broker's error as a string named `error`.
    expect(
      prettyMessage({
        component: 'kafka',
        msg: 'Response Heartbeat',
        error: 'The coordinator is not aware of this member',
      }),
    ).toBe('[kafka] Response Heartbeat: The coordinator is not aware of this member');
  });
});
