// Tracing and voice knobs in the chart: the trace sampler of every service, the proxies whose
// traceparent the edge continues, and the voice-orchestrator's embedded TTS workers with a CPU
// request sized for them; each read back through the service's own config loader.
import { describe, expect, it } from 'vitest';
import { loadEdgeConfig } from '@parley/edge/config';
import { loadKernelConfig, SERVICE_NAMES } from '@parley/platform';
import { loadOrchestratorConfig } from '@parley/voice-orchestrator';
import { render, valuesFile } from './render.js';
import { deploymentOf, envOf, PRODUCTION, renderedEnv } from './chart-fixture.js';

describe('chart: tracing and voice knobs', () => {
  it('samples one new trace in ten with production values, and keeps every trace by default', async () => {
    for (const [values, ratio] of [
      [[PRODUCTION], 0.1],
      [[], 1],
    ] as const) {
      const objects = await render(values);
      for (const service of SERVICE_NAMES) {
        const env = renderedEnv(deploymentOf(objects, service).spec.template.spec.containers[0]);
        expect(loadKernelConfig(service, '0.0.0', env).telemetry.sampler, service).toEqual({ kind: 'parentbased_traceidratio', ratio });
      }
    }
  }, 120_000);

  it('passes the sampler, trace proxies and TTS workers from values', async () => {
    const values = valuesFile(`
telemetry: { sampler: traceidratio, samplerRatio: 0.25 }
config:
  edge: { traceProxies: [10.0.0.0/8, 192.168.1.0/24] }
  voice-orchestrator: { ttsEmbeddedWorkers: 3 }
`);
    const objects = await render([PRODUCTION, values]);
    const edgeEnv = renderedEnv(deploymentOf(objects, 'edge').spec.template.spec.containers[0]);
    expect(envOf(deploymentOf(objects, 'edge')).get('PARLEY_EDGE_TRACE_PROXIES').value).toBe('10.0.0.0/8,192.168.1.0/24');
    expect(loadEdgeConfig(edgeEnv).traceProxies).not.toEqual(loadEdgeConfig({ ...edgeEnv, PARLEY_EDGE_TRACE_PROXIES: '' }).traceProxies);
    expect(loadKernelConfig('edge', '0.0.0', edgeEnv).telemetry.sampler).toEqual({ kind: 'traceidratio', ratio: 0.25 });
    const voice = deploymentOf(objects, 'voice-orchestrator').spec.template.spec.containers[0];
    expect(loadOrchestratorConfig(renderedEnv(voice)).embeddedTtsWorkers).toBe(3);
  }, 120_000);

  it('gives the voice-orchestrator one embedded TTS worker and more CPU than the other services', async () => {
    const objects = await render([]);
    const voice = deploymentOf(objects, 'voice-orchestrator').spec.template.spec.containers[0];
    expect(loadOrchestratorConfig(renderedEnv(voice)).embeddedTtsWorkers).toBe(1);
    expect(voice.resources.requests.cpu).toBe('500m');
    expect(voice.resources.limits.memory).toBe('512Mi');
    expect(deploymentOf(objects, 'edge').spec.template.spec.containers[0].resources.requests.cpu).toBe('100m');
  }, 120_000);

  it('refuses an unknown sampler and a ratio above 1 in the schema', async () => {
    await expect(render([valuesFile('telemetry: { sampler: sometimes }\n')])).rejects.toThrow(/sampler/);
    await expect(render([valuesFile('telemetry: { samplerRatio: 2 }\n')])).rejects.toThrow(/samplerRatio/);
  }, 120_000);
});
