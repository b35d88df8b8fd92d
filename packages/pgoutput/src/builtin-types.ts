import type { PgType } from '@teal/change-event';

// Built-in type oids are fixed across Postgres versions (src/include/catalog/pg_type.dat), so
// pgoutput never sends Type messages for them. Names are pg_type.typname ("int4",
// "timestamptz"), as in @teal/change-event's PgType; `$1::<name>` casts work with them. Arrays are listed with their element type.
const BASE: ReadonlyArray<readonly [number, string, number?]> = [
  // [oid, name, array oid]
  [16, 'bool', 1000],
  [17, 'bytea', 1001],
  [18, '"char"', 1002], // quoted: bare char means bpchar(1)
  [19, 'name', 1003],
  [20, 'int8', 1016],
  [21, 'int2', 1005],
  [22, 'int2vector', 1006],
  [23, 'int4', 1007],
  [24, 'regproc', 1008],
  [25, 'text', 1009],
  [26, 'oid', 1028],
  [27, 'tid', 1010],
  [28, 'xid', 1011],
  [29, 'cid', 1012],
  [30, 'oidvector', 1013],
  [114, 'json', 199],
  [142, 'xml', 143],
  [600, 'point', 1017],
  [601, 'lseg', 1018],
  [602, 'path', 1019],
  [603, 'box', 1020],
  [604, 'polygon', 1027],
  [628, 'line', 629],
  [650, 'cidr', 651],
  [700, 'float4', 1021],
  [701, 'float8', 1022],
  [718, 'circle', 719],
  [774, 'macaddr8', 775],
  [790, 'money', 791],
  [829, 'macaddr', 1040],
  [869, 'inet', 1041],
  [1033, 'aclitem', 1034],
  [1042, 'bpchar', 1014],
  [1043, 'varchar', 1015],
  [1082, 'date', 1182],
  [1083, 'time', 1183],
  [1114, 'timestamp', 1115],
  [1184, 'timestamptz', 1185],
  [1186, 'interval', 1187],
  [1266, 'timetz', 1270],
  [1560, 'bit', 1561],
  [1562, 'varbit', 1563],
  [1700, 'numeric', 1231],
  [1790, 'refcursor', 2201],
  [2202, 'regprocedure', 2207],
  [2203, 'regoper', 2208],
  [2204, 'regoperator', 2209],
  [2205, 'regclass', 2210],
  [2206, 'regtype', 2211],
  [2950, 'uuid', 2951],
  [2970, 'txid_snapshot', 2949],
  [3220, 'pg_lsn', 3221],
  [3614, 'tsvector', 3643],
  [3615, 'tsquery', 3645],
  [3734, 'regconfig', 3735],
  [3769, 'regdictionary', 3770],
  [3802, 'jsonb', 3807],
  [4072, 'jsonpath', 4073],
  [4089, 'regnamespace', 4090],
  [4096, 'regrole', 4097],
  [5038, 'pg_snapshot', 5039],
  [5069, 'xid8', 271],
];

const RANGES: ReadonlyArray<readonly [number, string, number, number]> = [
  // [oid, name, array oid, element (subtype) oid]
  [3904, 'int4range', 3905, 23],
  [3906, 'numrange', 3907, 1700],
  [3908, 'tsrange', 3909, 1114],
  [3910, 'tstzrange', 3911, 1184],
  [3912, 'daterange', 3913, 1082],
  [3926, 'int8range', 3927, 20],
];

const MULTIRANGES: ReadonlyArray<readonly [number, string, number, number]> = [
  [4451, 'int4multirange', 6150, 3904],
  [4532, 'nummultirange', 6151, 3906],
  [4533, 'tsmultirange', 6152, 3908],
  [4534, 'tstzmultirange', 6153, 3910],
  [4535, 'datemultirange', 6155, 3912],
  [4536, 'int8multirange', 6157, 3926],
];

const table = new Map<number, PgType>();
function add(type: PgType, arrayOid: number): void {
  table.set(type.oid, Object.freeze(type));
  table.set(
    arrayOid,
    Object.freeze({ oid: arrayOid, name: `${type.name}[]`, kind: 'array', elementOid: type.oid }),
  );
}
for (const [oid, name, arrayOid] of BASE) add({ oid, name, kind: 'base' }, arrayOid!);
for (const [oid, name, arrayOid, sub] of RANGES) add({ oid, name, kind: 'range', elementOid: sub }, arrayOid);
for (const [oid, name, arrayOid, range] of MULTIRANGES)
  add({ oid, name, kind: 'multirange', elementOid: range }, arrayOid);
table.set(2249, Object.freeze({ oid: 2249, name: 'record', kind: 'pseudo' }));

export function builtinType(oid: number): PgType | undefined {
  return table.get(oid);
}
