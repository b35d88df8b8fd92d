// Topic names, the one place they are spelled (docs/architecture.md, "Kafka"). Table
// topics are `<prefix>.<schema>.<table>`; teal's own topics are `<prefix>._<name>`, so
// a name whose part after the prefix starts with "_" is never a table's.

export function tableTopic(prefix: string, schema: string, table: string): string {
  return `${prefix}.${schema}.${table}`;
}

/** Compacted: every writer schema keyed by its fingerprint. */
export function schemasTopic(prefix: string): string {
  return `${prefix}._schemas`;
}

/** Records green rejected for good, with the reason in headers. */
export function deadLetterTopic(prefix: string): string {
  return `${prefix}._dlq`;
}

/** Logical decoding messages that are not teal's own. */
export function messagesTopic(prefix: string): string {
  return `${prefix}._messages`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every table topic of the prefix, not its `_schemas`, `_dlq` and `_messages` topics. */
export function tableTopicPattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegExp(prefix)}\\.(?!_)`);
}

/** True for a table topic of this prefix. */
export function isTableTopic(topic: string, prefix: string): boolean {
  if (!topic.startsWith(`${prefix}.`)) return false;
  const rest = topic.slice(prefix.length + 1);
  return !rest.startsWith('_') && rest.includes('.');
}

/** "schema.table" of a table topic of this prefix; the topic itself when it is not one. */
export function tableOfTopic(topic: string, prefix: string): string {
  return topic.startsWith(`${prefix}.`) ? topic.slice(prefix.length + 1) : topic;
}
