import { create, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { CreateAgentRequestSchema, TestGuardrailPolicyRequestSchema } from '@parley/proto/parley/api/v1/agents_pb.js';
import { ListEventsRequestSchema } from '@parley/proto/parley/api/v1/audit_pb.js';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { findTextFault, textFaultError } from './text-fields.js';

const faultOf = <D extends DescMessage>(schema: D, init: MessageInitShape<D>) => findTextFault(schema, create(schema, init));

describe('findTextFault', () => {
  it('accepts ordinary text, including emoji, and leaves bytes-free messages alone', () => {
    expect(faultOf(CreateAgentRequestSchema, { name: 'Support 🤖', prompt: 'Be helpful.', voice: { greeting: ['hi', { a: 'é' }] } })).toBe(
      undefined,
    );
  });

  it('names a top-level string field holding a NUL', () => {
    expect(faultOf(CreateAgentRequestSchema, { name: 'bad\u0000name' })).toEqual({ path: 'name', problem: 'nul' });
  });

  it('names a field inside a nested message', () => {
    expect(faultOf(ListEventsRequestSchema, { filter: { actorId: 'x\u0000' } })).toEqual({ path: 'filter.actor_id', problem: 'nul' });
  });

  it('names map values and map keys', () => {
    expect(faultOf(CreateAgentRequestSchema, { secretRefs: { llm: 'a\u0000' } })).toEqual({ path: 'secret_refs.llm', problem: 'nul' });
    expect(faultOf(CreateAgentRequestSchema, { secretRefs: { 'l\u0000m': 'a' } })?.path).toBe('secret_refs["l\\u0000m"] (the key)');
  });

  it('walks google.protobuf.Struct contents: nested objects, lists and keys', () => {
    expect(faultOf(CreateAgentRequestSchema, { voice: { opts: { list: ['ok', 'b\u0000d'] } } })).toEqual({
      path: 'voice.opts.list[1]',
      problem: 'nul',
    });
    expect(faultOf(CreateAgentRequestSchema, { guardrailPolicy: { 'k\u0000': 1 } })?.path).toBe('guardrail_policy["k\\u0000"] (the key)');
  });

  it('finds refused text in a oneof member and in a repeated Struct, and nothing in their clean forms', () => {
    expect(faultOf(TestGuardrailPolicyRequestSchema, { policy: { case: 'agentId', value: 'a\u0000' } })).toEqual({
      path: 'agent_id',
      problem: 'nul',
    });
    expect(faultOf(TestGuardrailPolicyRequestSchema, { policy: { case: 'guardrailPolicy', value: { rules: ['x\ud800'] } } })).toEqual({
      path: 'guardrail_policy.rules[0]',
      problem: 'unpaired-surrogate',
    });
    expect(faultOf(TestGuardrailPolicyRequestSchema, { events: [{ type: 'ok' }, { text: 'b\u0000d' }] })?.path).toBe('events[1].text');
    expect(
      faultOf(TestGuardrailPolicyRequestSchema, {
        policy: { case: 'guardrailPolicy', value: { rules: ['fine', 'é🤖'] } },
        events: [{ type: 'assistant_sentence', text: 'hello' }],
        timeZone: 'Europe/Paris',
      }),
    ).toBe(undefined);
  });

  it('refuses unpaired surrogates, which have no UTF-8 form', () => {
    expect(faultOf(CreateAgentRequestSchema, { prompt: 'x\ud800y' })).toEqual({ path: 'prompt', problem: 'unpaired-surrogate' });
  });

  it('turns a fault into INVALID_ARGUMENT naming the field', () => {
    const err = textFaultError({ path: 'filter.actor_id', problem: 'nul' });
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.field).toBe('filter.actor_id');
    expect(err.message).toMatch(/^filter\.actor_id contains a NUL character/);
  });
});
