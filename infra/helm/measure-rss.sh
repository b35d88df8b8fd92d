#!/usr/bin/env bash
# Peak RSS (VmHWM) of `teal producer --api`, `teal consumer --api` and `teal api` run apart, as
# the chart runs them, against the local environment: a 300k-row snapshot, then one 300k-row
# transaction (streamed, protocol v2). The figures in docs/deployment.md#resources come from it.
#   bash infra/helm/measure-rss.sh        (ROWS=... to change the size)
# It drops its databases and slot at the end; its topics (<name>.*) stay in the broker.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=deploy_rss_$$
ROWS=${ROWS:-300000}
psql_b() { psql -qAt "postgres://postgres@127.0.0.1:5433/$1" -c "$2"; }
psql_g() { psql -qAt "postgres://postgres@127.0.0.1:5434/$1" -c "$2"; }
psql_b app "CREATE DATABASE $N"; psql_g app "CREATE DATABASE $N"
DDL="CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric, t timestamptz)"
psql_b $N "$DDL"; psql_g $N "$DDL"
psql_b $N "INSERT INTO items SELECT g, md5(g::text) || repeat('x', 100), g * 1.5, now() FROM generate_series(1, $ROWS) g"
D=$(mktemp -d); echo "export default { tables: ['public.items'], kafka: { partitions: 4 } };" > $D/teal.config.ts
export TEAL_BLUE_URL=postgres://postgres@127.0.0.1:5433/$N TEAL_GREEN_URL=postgres://postgres@127.0.0.1:5434/$N \
  TEAL_KAFKA_BROKERS=127.0.0.1:9092 TEAL_SLOT=$N TEAL_PUBLICATION=$N TEAL_TOPIC_PREFIX=$N TEAL_CONSUMER_GROUP=$N \
  TEAL_API_TOKEN=x TEAL_LOG_LEVEL=warn
(cd $D && TEAL_API_PORT=18971 MALLOC_ARENA_MAX=2 exec node --max-semi-space-size=16 --heap-growing-percent=50 $ROOT/bin/teal.mjs producer --api) > $D/p.log 2>&1 & P=$!
(cd $D && TEAL_API_PORT=18972 MALLOC_ARENA_MAX=2 exec node --max-semi-space-size=16 --heap-growing-percent=50 $ROOT/bin/teal.mjs consumer --api) > $D/c.log 2>&1 & C=$!
hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$1/status; }
wait_rows() { local s=$(date +%s); until [ "$(psql_g $N 'SELECT count(*) FROM items' 2>/dev/null)" = "$1" ]; do sleep 2; [ $(( $(date +%s) - s )) -lt 900 ] || { echo timeout; break; }; done; echo "$(( $(date +%s) - s )) s"; }
echo "snapshot of $ROWS rows: $(wait_rows $ROWS); producer peak $(hwm $P), consumer peak $(hwm $C)"
psql_b $N "INSERT INTO items SELECT g, md5(g::text) || repeat('y', 100), g * 2.5, now() FROM generate_series($ROWS + 1, 2 * $ROWS) g"
echo "one $ROWS-row transaction: $(wait_rows $((2 * ROWS))); producer peak $(hwm $P), consumer peak $(hwm $C)"
(cd $D && TEAL_API_PORT=18973 MALLOC_ARENA_MAX=2 exec node --max-semi-space-size=16 --heap-growing-percent=50 $ROOT/bin/teal.mjs api) > $D/a.log 2>&1 & A=$!
until curl -sf -H 'Authorization: Bearer x' http://127.0.0.1:18973/status >/dev/null; do sleep 1; done
for i in 1 2 3 4 5; do curl -sf -H 'Authorization: Bearer x' http://127.0.0.1:18973/metrics >/dev/null; done
echo "api after 5 scrapes: peak $(hwm $A)"
kill $P $C $A; wait $P $C $A 2>/dev/null || true
sleep 2; psql_b $N "SELECT pg_drop_replication_slot('$N')" >/dev/null || true
psql_b app "DROP DATABASE $N WITH (FORCE)"; psql_g app "DROP DATABASE $N WITH (FORCE)"
rm -rf $D
echo $N
