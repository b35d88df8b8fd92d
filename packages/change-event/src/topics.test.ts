import { describe, expect, it } from 'vitest';
import {
  deadLetterTopic,
  isTableTopic,
  messagesTopic,
  schemasTopic,
  tableOfTopic,
  tableTopic,
  tableTopicPattern,
} from './topics.ts';

describe('topic names', () => {
  it('tells table topics from teal own topics', () => {
    expect(isTableTopic('teal.public.users', 'teal')).toBe(true);
    expect(isTableTopic('teal._dlq', 'teal')).toBe(false);
    expect(isTableTopic('teal._schemas', 'teal')).toBe(false);
    expect(isTableTopic('tealx.public.users', 'teal')).toBe(false);
    expect(isTableTopic('other.public.users', 'teal')).toBe(false);
  });

  it('spells the own topics with an underscore after the prefix, so no table topic pattern matches them', () => {
    const pattern = tableTopicPattern('my.prefix');
    for (const own of [schemasTopic('my.prefix'), deadLetterTopic('my.prefix'), messagesTopic('my.prefix')]) {
      expect(own.startsWith('my.prefix._')).toBe(true);
      expect(pattern.test(own)).toBe(false);
      expect(isTableTopic(own, 'my.prefix')).toBe(false);
    }
    const users = tableTopic('my.prefix', 'public', 'users');
    expect(pattern.test(users)).toBe(true);
    expect(pattern.test('myXprefix.public.users')).toBe(false);
    expect(tableOfTopic(users, 'my.prefix')).toBe('public.users');
  });
});
