// A meter provider a test file registers as the process's global one while it runs, and reads.
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** CollectingReader is a metric reader that the test asks for the current values (cumulative). */
export class CollectingReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}

  /** point returns the value of metric `name` (its OpenTelemetry name) where attribute `key` is `value`, if there is one. */
  async point(name: string, key: string, value: string): Promise<number | undefined> {
    const { resourceMetrics } = await this.collect();
    for (const scope of resourceMetrics.scopeMetrics)
      for (const metric of scope.metrics) {
        if (metric.descriptor.name !== name) continue;
        const found = metric.dataPoints.find((p) => p.attributes[key] === value);
        if (found !== undefined) return found.value as number;
      }
    return undefined;
  }
}

/**
 * globalMeterReader registers a meter provider of the test's own as the global one (the kernel's
 * startTelemetry would also take the process's tracer and context manager); `stop` unregisters it.
 * It returns false from `start` when another provider is registered already.
 */
export function globalMeterReader(): { reader: CollectingReader; start(): boolean; stop(): Promise<void> } {
  const reader = new CollectingReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    reader,
    start: () => metrics.setGlobalMeterProvider(provider),
    async stop() {
      metrics.disable();
      await provider.shutdown();
    },
  };
}
