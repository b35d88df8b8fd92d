import { defaultOptions, removeSoak } from './soak.ts';

// `tsx soak/cleanup.ts <base>...`: removes what an interrupted soak run left (slot,
// publication, tables, topics, teal state rows); <base> is the `soak_<seed>_<id>` it printed.
const opts = defaultOptions();
const bases = process.argv.slice(2);
if (bases.length === 0 || bases.some((b) => !/^soak_\d+_[a-z0-9]+$/.test(b))) {
  console.error('usage: tsx soak/cleanup.ts soak_<seed>_<id>...');
  process.exit(2);
}
for (const base of bases) {
  await removeSoak(opts, base);
  console.log(`removed ${base}`);
}
process.exit(0);
