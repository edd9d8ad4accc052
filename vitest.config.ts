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
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', ...CROSS_TENANT_WORKER_TESTS],
          globalSetup: ['test/setup/global.ts'],
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
          setupFiles: ['test/setup/database-per-file.ts'],
        },
      },
    ],
  },
});
