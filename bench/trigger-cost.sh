#!/bin/bash
# bash bench/trigger-cost.sh [REV] -- apply cost of the change-capture triggers (docs/cutover.md): 200 upsert statements of 5000 rows (the consumer's
# batch size) and 40 deletes of 5000 rows, into a 1M-row table, with and without the triggers. With REV (a commit, e.g. de87484)
# also with the trigger function as it was there (one teal.verify_changed row per key before 0cbd3ee), in the same rounds.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=$1
FN=$(mktemp)
G="psql -X -q -h 127.0.0.1 -p 5434 -U postgres"
$G -d postgres -c "DROP DATABASE IF EXISTS ov_cost" -c "CREATE DATABASE ov_cost"
function_of() { # the CREATE FUNCTION of online-verify-store.ts, in this checkout or at a commit
  if [ -n "$1" ]; then git -C "$ROOT" show "$1:services/control/src/online-verify-store.ts"; else cat "$ROOT/services/control/src/online-verify-store.ts"; fi |
    sed -n '/^CREATE OR REPLACE FUNCTION/,/^\$fn\$/p' | sed "s/^\$fn\$\`;\$/\$fn\$;/"
}
run() {
  $G -d ov_cost <<SQL
DROP TABLE IF EXISTS t; CREATE TABLE t (id int PRIMARY KEY, v text, n int);
INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 1000000) g;
CREATE SCHEMA IF NOT EXISTS teal;
-- as packages/postgres/src/green-state.ts makes it (key: the rows of the one-key-per-row function)
CREATE TABLE IF NOT EXISTS teal.verify_changed (green_table text NOT NULL, key jsonb, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), keys jsonb[]);
CREATE INDEX IF NOT EXISTS verify_changed_table_xid ON teal.verify_changed (green_table, xid);
TRUNCATE teal.verify_changed;
VACUUM ANALYZE t;
SQL
  if [ "$1" != none ]; then
    function_of "$( [ "$1" = triggers ] || echo "$REV")" > "$FN"
    $G -d ov_cost -f "$FN"
    $G -d ov_cost <<'SQL'
CREATE TRIGGER teal_changed_insert AFTER INSERT ON t REFERENCING NEW TABLE AS teal_new FOR EACH STATEMENT EXECUTE FUNCTION teal.record_changed_keys('public.t', 'jsonb_build_array("id"::text)');
CREATE TRIGGER teal_changed_update AFTER UPDATE ON t REFERENCING OLD TABLE AS teal_old NEW TABLE AS teal_new FOR EACH STATEMENT EXECUTE FUNCTION teal.record_changed_keys('public.t', 'jsonb_build_array("id"::text)');
CREATE TRIGGER teal_changed_delete AFTER DELETE ON t REFERENCING OLD TABLE AS teal_old FOR EACH STATEMENT EXECUTE FUNCTION teal.record_changed_keys('public.t', 'jsonb_build_array("id"::text)');
ALTER TABLE t ENABLE ALWAYS TRIGGER teal_changed_insert; ALTER TABLE t ENABLE ALWAYS TRIGGER teal_changed_update; ALTER TABLE t ENABLE ALWAYS TRIGGER teal_changed_delete;
SQL
  fi
  local t0=$(date +%s.%N)
  $G -d ov_cost <<'SQL'
SET session_replication_role = replica;
DO $$ BEGIN
  FOR b IN 0..199 LOOP
    -- half new keys, half existing ones (updated), as the consumer's upserts
    INSERT INTO t SELECT CASE WHEN g % 2 = 0 THEN 1000000 + b * 5000 + g ELSE (b * 5000 + g) % 1000000 + 1 END, 'x' || g, g
      FROM generate_series(1, 5000) g
      ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = EXCLUDED.n;
  END LOOP;
  FOR b IN 0..39 LOOP
    DELETE FROM t WHERE id > b * 10000 AND id <= b * 10000 + 5000;
  END LOOP;
END $$;
SQL
  local t1=$(date +%s.%N)
  local captured=$($G -d ov_cost -At -c "SELECT count(*) || ' rows, ' || coalesce(sum(coalesce(cardinality(keys), 1)), 0) || ' keys' FROM teal.verify_changed")
  echo "$1: $(echo "$t1 - $t0" | bc) s for 1,200,000 row changes; captured: $captured"
}
for i in 1 2 3; do
  run none
  run triggers
  if [ -n "$REV" ]; then run "at-$REV"; fi
done
$G -d postgres -c "DROP DATABASE ov_cost"
rm -f "$FN"
