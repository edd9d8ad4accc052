import { defineConfig } from 'vitest/config';

// One test run for the whole workspace. Workspace packages resolve to their TypeScript sources
// through the "@parley/source" export condition, so tests never need a rebuilt dist; the
// processes that tests spawn run from dist, which `npm test` builds first.
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
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
