import { describe, expect, it } from 'vitest';
import { loadDevStackConfig } from './stack.js';

describe('dev stack configuration', () => {
  it('passes every OTEL_* variable through to the services, except one service name for all', () => {
    const config = loadDevStackConfig(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.5',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=dev',
        OTEL_SERVICE_NAME: 'everything',
        OTEL_EMPTY: '',
        PARLEY_LOG_LEVEL: 'warn',
      },
      '/tmp/parley-root',
    );
    expect(config.otel).toEqual({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.5',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=dev',
    });
  });
});
