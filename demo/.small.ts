import { runDemo } from '/work/main/demo/run.ts';

const s = await runDemo({ users: 2000, orders: 6000, workloadMs: 3000, print: true, apiPort: 18081 });
console.log(JSON.stringify(s.cutover));
process.exit(0);
