// Every service process pays for each module it loads at start-up (about a millisecond of CPU
// apiece), and the test run starts hundreds of them. Libraries that only some requests need are
// loaded by those requests: this pins that down for the heaviest ones.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('../dist/module-loads-child.js', import.meta.url));

/** Steps are the module URLs the child loaded by each of its steps (test/src/module-loads-child.ts). */
type Steps = Record<'import' | 'holidays' | 'fetch' | 'otlp', string[]>;

let steps: Steps;

beforeAll(async () => {
  steps = await new Promise<Steps>((resolve, reject) => {
    const child = fork(CHILD, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve(m as Steps));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the child exited with ${code} without reporting`)));
  });
});

const fromPackage = (urls: string[], name: string) => urls.filter((u) => u.includes(`/node_modules/${name}/`));

describe('start-up imports', () => {
  it('importing the kernel, guardrails and egress packages loads neither date-holidays, undici nor the OTLP exporters', () => {
    expect(steps.import.some((u) => u.includes('/packages/guardrails/dist/'))).toBe(true);
    expect(fromPackage(steps.import, 'date-holidays')).toEqual([]);
    expect(fromPackage(steps.import, 'undici')).toEqual([]);
    expect(fromPackage(steps.import, '@opentelemetry/exporter-trace-otlp-http')).toEqual([]);
    expect(fromPackage(steps.import, '@opentelemetry/exporter-metrics-otlp-http')).toEqual([]);
  });

  it('compiling a policy with a holiday calendar loads date-holidays', () => {
    expect(fromPackage(steps.holidays, 'date-holidays')).not.toEqual([]);
  });

  it('the first egress request loads undici', () => {
    expect(fromPackage(steps.fetch, 'undici')).not.toEqual([]);
  });

  it("an egress client made with preload (the orchestrator's provider door) loads undici before any request", async () => {
    const preloaded = await new Promise<Record<'import' | 'preload', string[]>>((resolve, reject) => {
      const child = fork(CHILD, ['preload'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.once('message', (m) => resolve(m as Record<'import' | 'preload', string[]>));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`the child exited with ${code} without reporting`)));
    });
    expect(fromPackage(preloaded.import, 'undici')).toEqual([]);
    expect(fromPackage(preloaded.preload, 'undici')).not.toEqual([]);
  });

  it('telemetry with an OTLP endpoint loads the OTLP exporters, as ES modules (one @opentelemetry/core for the process)', () => {
    expect(fromPackage(steps.otlp, '@opentelemetry/exporter-trace-otlp-http')).not.toEqual([]);
    expect(fromPackage(steps.otlp, '@opentelemetry/exporter-metrics-otlp-http')).not.toEqual([]);
    const commonJs = [...steps.import, ...steps.otlp].filter((u) => u.includes('/@opentelemetry/') && u.endsWith('.cjs'));
    expect(commonJs).toEqual([]);
  });
});
