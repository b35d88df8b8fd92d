import type { ChangeEvent, TableSchema } from '@teal/change-event';
import type { IncomingRecord } from '@teal/kafka';
import type { PlanEvent } from './apply-plan.ts';
import type { DeadLetter } from './dead-letter.ts';
import { errorCode, errorMessage } from './error-policy.ts';

// One Kafka record on its way through a batch. Every record stays in the list, decoded or
// not, planned or not, so that the batch's last offset is committed whatever became of it.

export interface BatchItem {
  readonly record: IncomingRecord;
  event?: ChangeEvent;
  writer?: TableSchema;
  plan?: PlanEvent;
  failed?: DeadLetter;
}

export function letter(record: IncomingRecord, err: unknown): DeadLetter {
  return { record, code: errorCode(err), message: errorMessage(err) };
}
