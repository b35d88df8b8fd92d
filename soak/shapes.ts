import type pg from 'pg';
import type { Rng } from './rng.ts';

// The schema shapes real databases have (issue 12), each an opt-in part of the soak's load
// (`--shapes`): a partitioned table, a secondary unique constraint whose values move between
// rows, identity and stored generated columns, an FK pair truncated together, rows of several
// MB. Each shape owns its tables on blue and green (green records every row version it is
// written with, as items and ledger do), a seed, one transaction's worth of writes, and,
// for the FK pair, the TRUNCATE the schedule runs.

export const SHAPE_KINDS = ['identity', 'fk-truncate', 'unique', 'partitioned', 'big-rows'] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];
/** On by default: the shapes whose fixes are on main (a short soak passes with them; all five since 19af814). */
export const DEFAULT_SHAPES: ShapeKind[] = [...SHAPE_KINDS];

export function parseShapes(list: string): ShapeKind[] {
  const kinds = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (kinds.length === 1 && kinds[0] === 'none') return [];
  if (kinds.length === 1 && kinds[0] === 'all') return [...SHAPE_KINDS];
  for (const k of kinds) {
    if (!(SHAPE_KINDS as readonly string[]).includes(k))
      throw new Error(`--shapes: unknown shape "${k}" (known: ${SHAPE_KINDS.join(', ')}, all, none)`);
  }
  return kinds as ShapeKind[];
}

export interface ShapeStats {
  /** Transactions per shape. */
  transactions: Record<string, number>;
  /** Secondary-unique values moved from one row to another (swaps, delete + reuse). */
  uniqueMoves: number;
  /** Rows moved from one partition to another. */
  partitionMoves: number;
  /** TRUNCATEs of the FK pair (parent and child together, or CASCADE). */
  fkTruncates: number;
  /** Several-MB rows written (inserts and updates that rewrite the big value). */
  bigRowWrites: number;
}

export function emptyShapeStats(): ShapeStats {
  return { transactions: {}, uniqueMoves: 0, partitionMoves: 0, fkTruncates: 0, bigRowWrites: 0 };
}

export interface Shape {
  kind: ShapeKind;
  /** Tables to replicate and compare, with their key columns (digest order). */
  tables: Array<{ name: string; keys: string[] }>;
  /** DDL on blue and on green (green's without the audit triggers, added by the caller). */
  ddl: string;
  /** Tables green records row versions of: [table, key columns]. */
  audited: Array<[string, string[]]>;
  seed(db: pg.ClientBase, rng: Rng): Promise<void>;
  /** One transaction's statements (the caller runs BEGIN/COMMIT). */
  step(db: pg.ClientBase, rng: Rng, stats: ShapeStats): Promise<void>;
}

/** Every table any shape may create under `base` (for cleanup, whatever shapes a run had). */
export function allShapeTables(base: string): string[] {
  return SHAPE_KINDS.flatMap((k) => makeShape(k, base).tables.map((t) => t.name));
}

const hexSql = (n32: string) =>
  `(SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, ${n32}) g)`;

export function makeShape(kind: ShapeKind, base: string, ver = `${base}_ver`): Shape {
  const nextVer = `nextval('${ver}')`;
  switch (kind) {
    case 'identity': {
      // Green's id is GENERATED ALWAYS too (teal writes it with OVERRIDING SYSTEM VALUE) and
      // green computes its own total (never written, never read by the snapshot).
      const t = `${base}_ident`;
      return {
        kind,
        tables: [{ name: t, keys: ['id'] }],
        ddl: `CREATE TABLE ${t} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ver bigint NOT NULL,
            qty int NOT NULL,
            price numeric(12, 2) NOT NULL,
            total numeric GENERATED ALWAYS AS (qty * price) STORED,
            note text);`,
        audited: [[t, ['id']]],
        async seed(db, rng) {
          for (let i = 0; i < 50; i++)
            await db.query(`INSERT INTO ${t} (ver, qty, price, note) VALUES (${nextVer}, $1, $2, $3)`, [
              rng.int(1, 100),
              `${rng.int(0, 9999)}.${rng.int(10, 99)}`,
              rng.chance(0.2) ? null : `n${rng.hex(6)}`,
            ]);
        },
        async step(db, rng) {
          const r = rng.next();
          if (r < 0.4)
            await db.query(`INSERT INTO ${t} (ver, qty, price, note) VALUES (${nextVer}, $1, $2, $3)`, [
              rng.int(1, 100),
              `${rng.int(0, 9999)}.${rng.int(10, 99)}`,
              `n${rng.hex(6)}`,
            ]);
          else if (r < 0.85)
            await db.query(
              `UPDATE ${t} SET qty = qty + 1, price = price + 0.01, ver = ${nextVer}
                WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`,
            );
          else await db.query(`DELETE FROM ${t} WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`);
        },
      };
    }
    case 'fk-truncate': {
      const parent = `${base}_parent`;
      const child = `${base}_child`;
      return {
        kind,
        tables: [
          { name: parent, keys: ['id'] },
          { name: child, keys: ['id'] },
        ],
        ddl: `CREATE TABLE ${parent} (id bigint PRIMARY KEY, ver bigint NOT NULL, name text NOT NULL);
          CREATE TABLE ${child} (id bigint PRIMARY KEY, ver bigint NOT NULL,
            parent_id bigint NOT NULL REFERENCES ${parent} (id), qty int NOT NULL);`,
        audited: [
          [parent, ['id']],
          [child, ['id']],
        ],
        async seed(db, rng) {
          for (let i = 0; i < 20; i++) await fkFamily(db, rng, parent, child, nextVer);
        },
        async step(db, rng) {
          const r = rng.next();
          if (r < 0.35) await fkFamily(db, rng, parent, child, nextVer);
          else if (r < 0.8)
            await db.query(
              `UPDATE ${child} SET qty = qty + 1, ver = ${nextVer} WHERE id = (SELECT id FROM ${child} ORDER BY random() LIMIT 1)`,
            );
          else {
            // A parent with its children, children first (blue enforces the FK).
            const { rows } = await db.query<{ id: string }>(
              `SELECT id::text FROM ${parent} ORDER BY random() LIMIT 1`,
            );
            if (rows[0]) {
              await db.query(`DELETE FROM ${child} WHERE parent_id = $1`, [rows[0].id]);
              await db.query(`DELETE FROM ${parent} WHERE id = $1`, [rows[0].id]);
            }
          }
        },
      };
    }
    case 'unique': {
      // Secondary UNIQUE email whose values move between rows: swaps through a temporary value
      // in one transaction, and a deleted row's email taken by a new row.
      const t = `${base}_uniq`;
      return {
        kind,
        tables: [{ name: t, keys: ['id'] }],
        ddl: `CREATE TABLE ${t} (id bigint PRIMARY KEY, ver bigint NOT NULL, email text NOT NULL UNIQUE, n int NOT NULL);`,
        audited: [[t, ['id']]],
        async seed(db) {
          await db.query(
            `INSERT INTO ${t} SELECT g, ${nextVer}, 'u' || g || '@example.com', 0 FROM generate_series(1, 200) g`,
          );
        },
        async step(db, rng, stats) {
          const r = rng.next();
          const { rows } = await db.query<{ id: string; email: string }>(
            `SELECT id::text, email FROM ${t} ORDER BY random() LIMIT 2`,
          );
          if (rows.length < 2) return;
          const [a, b] = rows;
          if (r < 0.5) {
            await db.query(`UPDATE ${t} SET email = 'swap-' || id, ver = ${nextVer} WHERE id = $1`, [a.id]);
            await db.query(`UPDATE ${t} SET email = $2, ver = ${nextVer} WHERE id = $1`, [b.id, a.email]);
            await db.query(`UPDATE ${t} SET email = $2, ver = ${nextVer} WHERE id = $1`, [a.id, b.email]);
            stats.uniqueMoves += 2;
          } else if (r < 0.8) {
            // The email leaves one row and lands on a new one (another key, maybe another partition).
            await db.query(`DELETE FROM ${t} WHERE id = $1`, [a.id]);
            await db.query(`INSERT INTO ${t} VALUES ((SELECT max(id) + 1 FROM ${t}), ${nextVer}, $1, 0)`, [
              a.email,
            ]);
            stats.uniqueMoves++;
          } else {
            await db.query(`UPDATE ${t} SET n = n + 1, ver = ${nextVer} WHERE id = $1`, [b.id]);
          }
        },
      };
    }
    case 'partitioned': {
      // Replicated through its root (publish_via_partition_root); rows move between partitions.
      const t = `${base}_part`;
      const parts = [0, 1, 2, 3]
        .map((r) => `CREATE TABLE ${t}_r${r} PARTITION OF ${t} FOR VALUES IN (${r});`)
        .join('\n');
      return {
        kind,
        tables: [{ name: t, keys: ['id'] }],
        ddl: `CREATE TABLE ${t} (id bigint NOT NULL, region int NOT NULL, ver bigint NOT NULL, v text,
            PRIMARY KEY (id, region)) PARTITION BY LIST (region);
          ${parts}`,
        audited: [[t, ['id', 'region']]],
        async seed(db) {
          await db.query(
            `INSERT INTO ${t} SELECT g, g % 4, ${nextVer}, 'seed' FROM generate_series(1, 200) g`,
          );
        },
        async step(db, rng, stats) {
          const r = rng.next();
          if (r < 0.3)
            await db.query(
              `INSERT INTO ${t} VALUES ((SELECT coalesce(max(id), 0) + 1 FROM ${t}), $1, ${nextVer}, $2)`,
              [rng.int(0, 3), rng.hex(8)],
            );
          else if (r < 0.6) {
            // The partition key changes: the row moves to another partition.
            const res = await db.query(
              `UPDATE ${t} SET region = (region + 1) % 4, ver = ${nextVer}
                WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`,
            );
            stats.partitionMoves += res.rowCount ?? 0;
          } else if (r < 0.9)
            await db.query(
              `UPDATE ${t} SET v = $1, ver = ${nextVer} WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`,
              [rng.hex(8)],
            );
          else await db.query(`DELETE FROM ${t} WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`);
        },
      };
    }
    case 'big-rows': {
      // Rows of 2-6 MB of random hex (no compression helps), inserted, rewritten, left
      // unchanged by updates of other columns (TOAST unchanged), deleted.
      const t = `${base}_big`;
      const bigValue = (rng: Rng) => hexSql(String(rng.int(2, 6) * 32_768));
      return {
        kind,
        tables: [{ name: t, keys: ['id'] }],
        ddl: `CREATE TABLE ${t} (id bigint PRIMARY KEY, ver bigint NOT NULL, n int NOT NULL, blob text NOT NULL);
          ALTER TABLE ${t} ALTER COLUMN blob SET STORAGE EXTERNAL;`,
        audited: [[t, ['id']]],
        async seed(db, rng) {
          for (let i = 1; i <= 3; i++)
            await db.query(`INSERT INTO ${t} VALUES ($1, ${nextVer}, 0, ${bigValue(rng)})`, [i]);
        },
        async step(db, rng, stats) {
          // Few several-MB writes (each is MBs through WAL, Kafka and green on two shared cores).
          const r = rng.next();
          if (r < 0.1) {
            await db.query(
              `INSERT INTO ${t} VALUES ((SELECT coalesce(max(id), 0) + 1 FROM ${t}), ${nextVer}, 0, ${bigValue(rng)})`,
            );
            stats.bigRowWrites++;
          } else if (r < 0.2) {
            await db.query(
              `UPDATE ${t} SET blob = ${bigValue(rng)}, ver = ${nextVer} WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`,
            );
            stats.bigRowWrites++;
          } else if (r < 0.9)
            await db.query(
              `UPDATE ${t} SET n = n + 1, ver = ${nextVer} WHERE id = (SELECT id FROM ${t} ORDER BY random() LIMIT 1)`,
            );
          else if ((await db.query(`SELECT 1 FROM ${t}`)).rowCount! > 2)
            await db.query(`DELETE FROM ${t} WHERE id = (SELECT min(id) FROM ${t})`);
        },
      };
    }
  }
}

async function fkFamily(db: pg.ClientBase, rng: Rng, parent: string, child: string, nextVer: string) {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO ${parent} VALUES ((SELECT coalesce(max(id), 0) + 1 FROM ${parent}), ${nextVer}, $1) RETURNING id::text`,
    [`p${rng.hex(6)}`],
  );
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++)
    await db.query(
      `INSERT INTO ${child} VALUES ((SELECT coalesce(max(id), 0) + 1 FROM ${child}), ${nextVer}, $1, $2)`,
      [rows[0].id, rng.int(1, 50)],
    );
}

/** TRUNCATE of the FK pair, both together or through CASCADE (alternating), then a few families again. */
export async function truncateFkPair(db: pg.ClientBase, base: string, rng: Rng, stats: ShapeStats) {
  const parent = `${base}_parent`;
  const child = `${base}_child`;
  const sql = stats.fkTruncates % 2 === 0 ? `TRUNCATE ${parent}, ${child}` : `TRUNCATE ${parent} CASCADE`;
  await db.query('BEGIN');
  await db.query(sql);
  for (let i = 0; i < 5; i++) await fkFamily(db, rng, parent, child, `nextval('${base}_ver')`);
  await db.query('COMMIT');
  stats.fkTruncates++;
}

/** Green's audit: one generic trigger function, (label, key columns...) as its arguments. */
export function auditTriggers(audit: string, tables: Array<[string, string[]]>): string {
  const fn = `${audit}_row`;
  const triggers = tables
    .map(
      ([t, keys]) =>
        `CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${fn}(${[t, ...keys].map((a) => `'${a}'`).join(', ')});
         ALTER TABLE ${t} ENABLE ALWAYS TRIGGER audit;`,
    )
    .join('\n');
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE j jsonb := to_jsonb(NEW); k text := '';
    BEGIN
      FOR i IN 1 .. TG_NARGS - 1 LOOP
        k := k || CASE WHEN i > 1 THEN '/' ELSE '' END || (j ->> TG_ARGV[i]);
      END LOOP;
      INSERT INTO ${audit} VALUES (TG_ARGV[0], k, (j ->> 'ver')::bigint);
      RETURN NULL;
    END $$;
    ${triggers}`;
}
