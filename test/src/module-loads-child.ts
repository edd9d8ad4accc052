// A child process for test/stack/lazy-imports.test.ts: it records every module Node loads, imports
// the built packages that services import at start-up, then uses them step by step, and sends back
// the URLs loaded by each step.
import { registerHooks } from 'node:module';

let loaded: string[] = [];
registerHooks({
  load(url, context, next) {
    loaded.push(url);
    return next(url, context);
  },
});
const steps: Record<string, string[]> = {};
const step = (name: string) => {
  steps[name] = loaded;
  loaded = [];
};

const platform = await import('@parley/platform');
const guardrails = await import('@parley/guardrails');
const egress = await import('@parley/egress');
step('import');
if (process.argv[2] === 'preload') {
  // A client made with preload loads undici without any request (the orchestrator's, at start).
  egress.createEgressHttp({ preload: true });
  for (let i = 0; i < 500 && !loaded.some((u) => u.includes('/node_modules/undici/')); i++) await new Promise((r) => setTimeout(r, 10));
  step('preload');
  process.send?.(steps, () => process.exit(0));
  await new Promise(() => undefined);
}
guardrails.compileGuardrailPolicy({ version: 2, sleepWindows: { windows: [], holidays: { country: 'DE' } } });
step('holidays');
// An allowed target where nothing listens: the request gets as far as connecting, and fails there.
const policy = egress.createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [9] });
await egress
  .createEgressFetch({ policy })('https://127.0.0.1:9/')
  .catch(() => undefined);
step('fetch');
// Nothing listens at the endpoint: the exporters are made, and the shutdown's last export fails quietly.
await platform.startTelemetry({ serviceName: 'module-loads', serviceVersion: 'test', otlpEndpoint: 'http://127.0.0.1:9' }).shutdown();
step('otlp');
process.send?.(steps, () => process.exit(0));
