// Retrieval rules: which passages the model may see (own tenant, allowed sources and classes, a cap).
import type { GuardrailPolicy } from '../policy-schema.js';
import type { Decision, RetrievalEvent } from '../types.js';

/** retrievalDecisions drops the passages the policy does not allow, one decision per rule with the ids it dropped. */
export function retrievalDecisions(policy: GuardrailPolicy, event: RetrievalEvent, tenantId: string | undefined): Decision[] {
  const r = policy.retrieval;
  const drops = new Map<string, { reason: string; ids: string[] }>();
  const drop = (ruleId: string, reason: string, id: string) => {
    const d = drops.get(ruleId) ?? { reason, ids: [] };
    d.ids.push(id);
    drops.set(ruleId, d);
  };
  let kept = 0;
  for (const p of event.passages) {
    if (tenantId === undefined || p.tenantId !== tenantId) {
      drop('retrieval:tenant', 'passages of another tenant (or with no tenant in the context) are never used', p.id);
    } else if (r?.allowedSources !== undefined && !r.allowedSources.includes(p.source)) {
      drop('retrieval:source', `source not among the allowed sources (${r.allowedSources.join(', ')})`, p.id);
    } else if (r?.allowedDataClasses !== undefined && !r.allowedDataClasses.includes(p.dataClass)) {
      drop('retrieval:data_class', `data class not among the allowed classes (${r.allowedDataClasses.join(', ')})`, p.id);
    } else if (kept >= (r?.maxPassages ?? 5)) {
      drop('retrieval:max_passages', `more than ${r?.maxPassages ?? 5} passages`, p.id);
    } else {
      kept++;
    }
  }
  return [...drops].map(([ruleId, d]) => ({ kind: 'drop_passage', ruleId, reason: d.reason, passageIds: d.ids }));
}
