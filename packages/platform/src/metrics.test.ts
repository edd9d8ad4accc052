import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { observeListening, recordDbTimeout } from './metrics.js';

describe('metrics on a meter provider of their own', () => {
  it('records parley.db.statement_timeouts and parley.db.listening on the provider given, never registering a global one', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const global = metrics.getMeterProvider();
    const stop = observeListening('metrics_test_channel', () => true, provider);
    try {
      recordDbTimeout('statement_timeout', 2, provider);
      const { resourceMetrics } = await reader.collect();
      const found = new Map(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => [m.descriptor.name, m.dataPoints] as const)));
      expect(found.get('parley.db.statement_timeouts')?.[0]).toMatchObject({
        value: 2,
        attributes: { 'parley.db.timeout_cause': 'statement_timeout' },
      });
      expect(found.get('parley.db.listening')).toContainEqual(
        expect.objectContaining({ value: 1, attributes: { 'parley.db.listen_channel': 'metrics_test_channel' } }),
      );
      expect(metrics.getMeterProvider()).toBe(global);
    } finally {
      stop();
      await provider.shutdown();
    }
  });
});
