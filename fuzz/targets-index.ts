import { assemblerTarget, avroTarget, copyDataTarget, type FuzzTarget, pgoutputTarget } from './targets.ts';

export const TARGET_NAMES = ['pgoutput', 'copydata', 'assembler', 'avro'] as const;

export function targetByName(name: string, seed: number): FuzzTarget {
  switch (name) {
    case 'pgoutput':
      return pgoutputTarget;
    case 'copydata':
      return copyDataTarget;
    case 'assembler':
      return assemblerTarget;
    case 'avro':
      return avroTarget(seed);
    default:
      throw new Error(`unknown fuzz target ${JSON.stringify(name)}: use one of ${TARGET_NAMES.join(', ')}`);
  }
}
