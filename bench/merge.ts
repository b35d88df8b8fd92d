// Merges the reports of several `npm run bench` runs at the same sizes into one table
// (e.g. teal and native,debezium run one after the other):
//   npx tsx bench/merge.ts bench/results/A.json bench/results/B.json [--out bench/results/NAME]
// Every system keeps its own run's figures; the header lists every command and load.
import { readFileSync, writeFileSync } from 'node:fs';
import { markdown, type Report } from './lib/report.ts';

const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const out = outIdx >= 0 ? args.splice(outIdx, 2)[1] : undefined;
const reports = args.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Report);
if (reports.length < 2) throw new Error('usage: tsx bench/merge.ts A.json B.json [...] [--out BASE]');
const sizes = (r: Report) => JSON.stringify({ ...r.options, systems: undefined, workloads: undefined });
for (const r of reports)
  if (sizes(r) !== sizes(reports[0])) throw new Error(`${r.date}: different sizes, not comparable`);
const merged: Report = {
  ...reports[0],
  date: reports.map((r) => r.date).join(' + '),
  command: reports.map((r) => `${r.command}${r.commit ? ` (commit ${r.commit})` : ''}`).join('`, then `'),
  commit: undefined,
  load: {
    start: reports[0].load?.start ?? [],
    end: reports.at(-1)?.load?.end,
  },
  limit: reports.find((r) => r.limit)?.limit,
  limitRuns: reports.find((r) => r.limit)?.limitRuns,
  scaling: reports.find((r) => r.scaling)?.scaling,
  systems: Object.assign({}, ...reports.map((r) => r.systems)),
  options: { ...reports[0].options, systems: reports.flatMap((r) => Object.keys(r.systems)) },
};
// Ratios need teal first, as run.ts orders them.
const order = ['teal', 'native', 'debezium'];
merged.systems = Object.fromEntries(
  Object.entries(merged.systems).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)),
);
const md = markdown(merged);
if (out) {
  writeFileSync(`${out}.json`, `${JSON.stringify({ merged: true, parts: reports, ...merged }, null, 2)}\n`);
  writeFileSync(`${out}.md`, md);
}
process.stdout.write(md);
