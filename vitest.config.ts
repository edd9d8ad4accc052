import { defineConfig } from 'vitest/config';

// One test run for the whole workspace. Workspace packages resolve to their TypeScript sources
// through the "@parley/source" export condition, so tests never need a rebuilt dist; the
// processes that tests spawn run from dist, which `npm test` builds first.
/**
 * CROSS_TENANT_WORKER_TESTS are the test files that run or watch a worker which takes rows of every
 * tenant: integrations' webhook delivery worker, and the audit outbox relays whose rows these
 * tests read (or seed and count) before a relay empties them.
 */
const CROSS_TENANT_WORKER_TESTS = [
  'test/integrations/**/*.test.ts',
  'test/edge/webhooks.test.ts',
  'test/orchestrator/webhooks.test.ts',
  'test/audit/coverage.test.ts',
  'test/audit/outbox.test.ts',
  'test/audit/recovery.test.ts',
  'test/audit/relay.test.ts',
  'test/tenant-data/audit-events.test.ts',
  'test/secrets/audit-events.test.ts',
  // Seeds an outbox row and a delivery row for every tenant table and counts them afterwards.
  'test/db/isolation.test.ts',
  // Runs lifecycle's purge, which sweeps expired sessions of every tenant.
  'test/lifecycle/retention.test.ts',
  // Its lifecycle polls for every tenant's unfinished privacy jobs (and takes over expired leases).
  'test/lifecycle/forget.test.ts',
  // Looks for this stack's audit relay spans.
  'test/observability/telemetry.test.ts',
];

/**
 * PROCESS_GLOBAL_TESTS are the test files that register OpenTelemetry's process-wide providers
 * (startTelemetry, runService): a second registration in the same process is ignored, so they must
 * not share a worker with each other, nor hand theirs to the files after them.
 */
const PROCESS_GLOBAL_TESTS = [
  'test/kernel/runtime.test.ts',
  'test/kernel/tracing.test.ts',
  'test/kernel/grpc-js-connection.test.ts',
  'test/kernel/unobserved-spans.test.ts',
];

/** UNIT_TESTS are the tests that sit next to their code (no Postgres, no processes). */
const UNIT_TESTS = ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts'];

export default defineConfig({
  resolve: { conditions: ['@parley/source'] },
  ssr: { resolve: { conditions: ['@parley/source'], externalConditions: ['@parley/source'] } },
  // The global setup runs in vitest's own environment: it must resolve workspace packages to
  // their sources too, or a stale dist would be used silently.
  environments: {
    __vitest__: {
      consumer: 'server',
      resolve: { conditions: ['@parley/source', 'node'], externalConditions: ['@parley/source'], external: true },
    },
  },
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      {
        // Unit tests next to their code start no process and touch no database or global state, so
        // they share a worker's loaded modules instead of importing the kernel, protobuf and
        // OpenTelemetry again per file (isolate: false): about a third of their CPU time.
        extends: true,
        test: {
          name: 'unit',
          include: UNIT_TESTS,
          exclude: ['**/node_modules/**', '**/dist/**'],
          isolate: false,
        },
      },
      {
        // The files of one worker share its loaded modules (isolate: false) instead of importing the
        // kernel, protobuf, OpenTelemetry and the fixtures again per file: about a second of CPU per
        // file. Each file still starts its own processes and re-runs its own module; the fixtures keep
        // no state at module level (test/src/pg.ts's is set only by the cross-tenant project).
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', ...CROSS_TENANT_WORKER_TESTS, ...PROCESS_GLOBAL_TESTS],
          globalSetup: ['test/setup/global.ts'],
          isolate: false,
        },
      },
      {
        // No database: these run in-process servers only, each file in a fresh process.
        extends: true,
        test: {
          name: 'process-globals',
          include: PROCESS_GLOBAL_TESTS,
          exclude: ['**/node_modules/**', '**/dist/**'],
        },
      },
      {
        // Webhook delivery workers and audit relays take the rows of every tenant, so two test
        // files with such workers on one database would deliver, refuse or drain each other's
        // rows. Each of these files gets a database of its own, cloned from this project's
        // migrated template, so they run side by side with each other and with `main`.
        extends: true,
        test: {
          name: 'cross-tenant-workers',
          include: CROSS_TENANT_WORKER_TESTS,
          exclude: ['**/node_modules/**', '**/dist/**'],
          globalSetup: ['test/setup/global.ts'],
          provide: { databasePerFile: true },
          // The setup file runs before every file, so each points test/src/pg.ts at its own database
          // even though a worker's files share that module (isolate: false, as in `main`).
          setupFiles: ['test/setup/database-per-file.ts'],
          isolate: false,
        },
      },
    ],
  },
});
