import { Code } from '@connectrpc/connect';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadKernelConfig, parseResourceAttributes } from './config.js';
import { createSampler, rpcSystemOf, SERVER_ERROR_CODES, statusCodeName } from './telemetry.js';

const base = { PARLEY_TLS_CERT: 'c', PARLEY_TLS_KEY: 'k', PARLEY_TLS_CA: 'a' };

describe('telemetry configuration', () => {
  it('reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the sampler and PARLEY_BUILD_VERSION', () => {
    const config = loadKernelConfig('secrets', '0.1.0', {
      ...base,
      OTEL_SERVICE_NAME: 'secrets-eu',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod, team=a%2Cb',
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      PARLEY_BUILD_VERSION: '1.2.3+abc',
    });
    expect(config.telemetry.serviceName).toBe('secrets-eu');
    expect(config.telemetry.resourceAttributes).toEqual({ 'deployment.environment.name': 'prod', team: 'a,b' });
    expect(config.telemetry.sampler).toEqual({ kind: 'traceidratio', ratio: 0.25 });
    expect(config.version).toBe('1.2.3+abc');
  });

  it('reads OTEL_BSP_SCHEDULE_DELAY for the span batch, 5 s by default, and names it when wrong', () => {
    expect(loadKernelConfig('secrets', '0', { ...base, OTEL_BSP_SCHEDULE_DELAY: '100' }).telemetry.spanExportDelayMs).toBe(100);
    expect(loadKernelConfig('secrets', '0', base).telemetry.spanExportDelayMs).toBe(5_000);
    expect(() => loadKernelConfig('secrets', '0', { ...base, OTEL_BSP_SCHEDULE_DELAY: 'soon' })).toThrow(/OTEL_BSP_SCHEDULE_DELAY/);
  });

  it('defaults to the service name and a parent-based sampler keeping every new trace', () => {
    const config = loadKernelConfig('secrets', '0.1.0', base);
    expect(config.telemetry).toMatchObject({ serviceName: 'secrets', sampler: { kind: 'parentbased_traceidratio', ratio: 1 } });
    expect(config.version).toBe('0.1.0');
  });

  it('names the variable when a sampler setting or a resource attribute is wrong', () => {
    expect(() => loadKernelConfig('secrets', '0', { ...base, OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => loadKernelConfig('secrets', '0', { ...base, OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => parseResourceAttributes('novalue')).toThrow(ConfigError);
    expect(() => parseResourceAttributes('k=%E0%A4%A')).toThrow(/percent-encoding/);
  });
});

describe('RPC status conventions', () => {
  it('names codes the gRPC way for gRPC and the Connect way for Connect', () => {
    expect(statusCodeName(Code.DeadlineExceeded, 'grpc')).toBe('DEADLINE_EXCEEDED');
    expect(statusCodeName(Code.NotFound, 'connectrpc')).toBe('not_found');
    expect(statusCodeName(0, 'grpc')).toBe('OK');
    expect(rpcSystemOf('application/grpc+proto')).toBe('grpc');
    expect(rpcSystemOf('application/json')).toBe('connectrpc');
  });

  it('counts only server faults as server errors', () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(
      [Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss].sort(),
    );
    for (const code of [Code.NotFound, Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.ResourceExhausted])
      expect(SERVER_ERROR_CODES.has(code)).toBe(false);
  });
});

describe('samplers', () => {
  const decide = (kind: Parameters<typeof createSampler>[0]['kind'], ratio: number, parentSampled?: boolean) => {
    const parent =
      parentSampled === undefined
        ? ROOT_CONTEXT
        : trace.setSpanContext(ROOT_CONTEXT, {
            traceId: '0af7651916cd43dd8448eb211c80319c',
            spanId: 'b7ad6b7169203331',
            traceFlags: parentSampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
            isRemote: true,
          });
    return createSampler({ kind, ratio }).shouldSample(parent, 'ffffffffffffffffffffffffffffffff', 'op', SpanKind.SERVER, {}, []).decision;
  };

  it('follows the parent when parent-based, and the ratio for new traces', () => {
    expect(decide('parentbased_traceidratio', 0, true)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide('parentbased_traceidratio', 1, false)).toBe(SamplingDecision.NOT_RECORD);
    expect(decide('parentbased_traceidratio', 0)).toBe(SamplingDecision.NOT_RECORD);
    expect(decide('parentbased_traceidratio', 1)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide('always_off', 1, true)).toBe(SamplingDecision.NOT_RECORD);
  });
});
