import { describe, expect, it } from 'vitest';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import { ApiKeyService } from '@parley/proto/parley/api/v1/api_keys_pb.js';
import { AuditService } from '@parley/proto/parley/api/v1/audit_pb.js';
import { SecretService } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { backoffDelay, isRetrySafe } from './retry.js';

describe('isRetrySafe', () => {
  it('repeats reads and dry runs only', () => {
    const safe = (m: { name: string; idempotency: number }) => isRetrySafe(m as Parameters<typeof isRetrySafe>[0]);
    expect(safe(AgentService.method.listAgents)).toBe(true);
    expect(safe(AgentService.method.getGuardrailPolicy)).toBe(true);
    expect(safe(AgentService.method.testGuardrailPolicy)).toBe(true);
    expect(safe(AuditService.method.verifyLog)).toBe(true);
    expect(safe(AgentService.method.createAgent)).toBe(false);
    expect(safe(AgentService.method.setGuardrailPolicy)).toBe(false);
    expect(safe(SecretService.method.putSecret)).toBe(false);
    expect(safe(ApiKeyService.method.createApiKey)).toBe(false);
    expect(safe(ApiKeyService.method.revokeApiKey)).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('doubles up to the cap, with jitter between half and all of the ceiling', () => {
    const at = (attempt: number, r: number) => backoffDelay(attempt, { initialDelayMs: 100, maxDelayMs: 1000, random: () => r });
    expect([1, 2, 3, 4, 5].map((a) => at(a, 0))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((a) => at(a, 0.999999))).toEqual([100, 200, 400, 800, 1000]);
  });
});
