// A meter provider of a test file's own, handed to what it measures (never the process's global
// one, which the files sharing a worker would see), and read.
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
 * localMeterReader is a meter provider of the test's own with a reader on it: pass `provider` to
 * what is measured (createDb's and listenForNotifications's meterProvider); `stop` shuts it down.
 */
export function localMeterReader(): { reader: CollectingReader; provider: MeterProvider; stop(): Promise<void> } {
  const reader = new CollectingReader();
  const provider = new MeterProvider({ readers: [reader] });
  return { reader, provider, stop: () => provider.shutdown() };
}
