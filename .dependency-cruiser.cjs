// The dependency rules of docs/architecture.md, checked by `npm run deps:check` (part of
// `npm test`): no cycles, packages point one way (errors at the bottom, services on top),
// and the pure modules (codecs, decoders, transforms, apply planning, pure halves of the
// services) load nothing that does I/O. A type-only import is erased at run time, so it
// never counts as loading anything.

/** Outside modules that do I/O when loaded or used: sockets, files, processes, clients, logging. */
const IO_MODULES = [
  '^(node:)?(fs|fs/promises|net|tls|http|https|http2|dgram|dns|child_process|cluster|worker_threads|readline)$',
  '^node_modules/(pg|pg-pool|pino|prom-client|kafkajs|@platformatic/kafka|fastify|@fastify/[^/]+|tsx)/',
];

/** Pure modules: bytes and values in, bytes and values out. Their unit tests need no server. */
const PURE = [
  '^packages/errors/src/',
  '^packages/change-event/src/',
  '^packages/pgoutput/src/(?!file-spill-store\\.ts$|index\\.ts$)',
  '^packages/postgres/src/(sql|keyset|unique-indexes|connection-options)\\.ts$',
  '^packages/runtime/src/format\\.ts$',
  '^packages/config/src/(define-config|did-you-mean|table-names|transforms|process-settings)\\.ts$',
  '^services/consumer/src/(apply-plan|apply-sql|green-shape|row-mapping|skip-rule|schema-policy|error-policy|batch-item)\\.ts$',
  '^services/control/src/(verify-diff|verify-plan|verify-normalize|verify-report|status-derive|types)\\.ts$',
  '^services/control/src/check/check-(facts|findings|report)\\.ts$',
  '^services/producer/src/flush-tracker\\.ts$',
];

/** Which workspace packages a package may import; anything else is upward or sideways. */
const LAYERS = {
  errors: [],
  'change-event': ['errors'],
  pgoutput: ['errors', 'change-event'],
  runtime: ['errors'],
  config: ['errors', 'change-event'],
  postgres: ['errors', 'change-event', 'pgoutput'],
  kafka: ['errors', 'change-event', 'runtime'],
};

const layerRules = Object.entries(LAYERS).map(([pkg, allowed]) => ({
  name: `layer-${pkg}`,
  comment: `packages/${pkg} may import only ${allowed.length ? allowed.join(', ') : 'no other workspace package'}`,
  severity: 'error',
  from: { path: `^packages/${pkg}/` },
  to: {
    path: '^(packages|services)/',
    pathNot: [`^packages/${pkg}/`, ...allowed.map((p) => `^packages/${p}/`)],
  },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle means two modules cannot be understood (or tested) apart.',
      severity: 'error',
      from: { path: '^(packages|services)/' },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'services-only-through-cli',
      comment: 'A service may use another service only from the CLI, which wires them together.',
      severity: 'error',
      from: { path: '^services/(producer|consumer|control)/' },
      to: { path: '^services/', pathNot: '^services/$1/' },
    },
    {
      name: 'pure-loads-no-io',
      comment: 'A pure module (see PURE) must not load a module that does I/O.',
      severity: 'error',
      from: { path: PURE, pathNot: '\\.test\\.ts$' },
      to: { path: IO_MODULES, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'pure-imports-only-pure',
      comment: "A pure module loads only other pure modules of teal's (a type-only import is fine).",
      severity: 'error',
      from: { path: PURE, pathNot: '\\.test\\.ts$' },
      to: { path: '^(packages|services)/', pathNot: PURE, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/\\.vite|\\.teal/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default'],
      extensions: ['.ts', '.mjs', '.js', '.json'],
    },
  },
};
