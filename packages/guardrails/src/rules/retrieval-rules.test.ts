import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';

describe('retrieval', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    retrieval: { allowedSources: ['kb', 'faq'], allowedDataClasses: ['public'], maxPassages: 2 },
  });
  it('drops passages of another tenant, of a forbidden source or class, and past the maximum, each with its reason', () => {
    const passages = [
      { id: 'p1', tenantId: 't1', source: 'kb', dataClass: 'public' },
      { id: 'p2', tenantId: 't2', source: 'kb', dataClass: 'public' },
      { id: 'p3', tenantId: 't1', source: 'crm', dataClass: 'public' },
      { id: 'p4', tenantId: 't1', source: 'faq', dataClass: 'internal' },
      { id: 'p5', tenantId: 't1', source: 'faq', dataClass: 'public' },
      { id: 'p6', tenantId: 't1', source: 'kb', dataClass: 'public' },
    ];
    const { decisions } = checker.evaluate({ type: 'retrieval', passages }, ctx(initialGuardrailState(T0)));
    expect(decisions.map(strip)).toEqual([
      {
        kind: 'drop_passage',
        ruleId: 'retrieval:tenant',
        reason: 'passages of another tenant (or with no tenant in the context) are never used',
        passageIds: ['p2'],
      },
      { kind: 'drop_passage', ruleId: 'retrieval:source', reason: 'source not among the allowed sources (kb, faq)', passageIds: ['p3'] },
      {
        kind: 'drop_passage',
        ruleId: 'retrieval:data_class',
        reason: 'data class not among the allowed classes (public)',
        passageIds: ['p4'],
      },
      { kind: 'drop_passage', ruleId: 'retrieval:max_passages', reason: 'more than 2 passages', passageIds: ['p6'] },
    ]);
  });
  it('drops every passage when the context names no tenant', () => {
    const r = checker.evaluate(
      { type: 'retrieval', passages: [{ id: 'a', tenantId: 't1', source: 'kb', dataClass: 'public' }] },
      { now: T0, state: initialGuardrailState(T0) },
    );
    expect(strip(r.decision)).toMatchObject({ kind: 'drop_passage', ruleId: 'retrieval:tenant', passageIds: ['a'] });
  });
});
