import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { FailedPreconditionError, NotFoundError } from '@parley/platform';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Agent, AgentUpdate, TenantDataDb } from './db/tables.js';
import { boundedObject, name200, uuid } from './fields.js';
import { DEFAULT_GUARDRAIL_POLICY, parseGuardrailPolicy } from './guardrail-policy.js';
import { parseInput } from './validate.js';
import { providerSettingsSchema } from '@parley/conversation';

type Trx = TenantTransaction<TenantDataDb>;

const secretRefs = z
  .record(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'keys must be purposes such as llm, stt, tts'), uuid)
  .refine((v) => Object.keys(v).length <= 16, 'must name at most 16 secrets');

const agentFields = {
  name: name200,
  prompt: z.string().max(32_000),
  voice: boundedObject(8 * 1024),
  // The orchestrator owns what provider settings mean; an agent it could not run is refused here, on write.
  providerSettings: boundedObject(16 * 1024).superRefine((value, ctx) => {
    const parsed = providerSettingsSchema.safeParse(value);
    if (!parsed.success)
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  }),
  secretRefs,
  guardrailPolicy: z.unknown(),
};

/** NewAgent is what createAgent accepts; the guardrail policy must compile (@parley/guardrails, version 1 or 2). */
export interface NewAgent {
  name: string;
  prompt?: string;
  voice?: Record<string, unknown>;
  providerSettings?: Record<string, unknown>;
  secretRefs?: Record<string, string>;
  guardrailPolicy?: unknown;
}

/** AgentPatch is what updateAgent accepts; a new guardrail policy bumps policy_version. */
export type AgentPatch = Partial<NewAgent>;

const newAgentSchema = z.strictObject({
  ...agentFields,
  prompt: agentFields.prompt.default(''),
  voice: agentFields.voice.default({}),
  providerSettings: agentFields.providerSettings.default({}),
  secretRefs: agentFields.secretRefs.default({}),
  guardrailPolicy: agentFields.guardrailPolicy.optional(),
});
const patchSchema = z.strictObject(agentFields).partial();

/** createAgent validates and inserts an agent of the transaction's tenant. */
export async function createAgent(trx: Trx, input: NewAgent): Promise<Agent> {
  const a = parseInput(newAgentSchema, input);
  const policy = a.guardrailPolicy === undefined ? DEFAULT_GUARDRAIL_POLICY : parseGuardrailPolicy(a.guardrailPolicy);
  return trx
    .insertInto('agents')
    .values({
      id: uuidv7(),
      name: a.name,
      prompt: a.prompt,
      voice: JSON.stringify(a.voice),
      provider_settings: JSON.stringify(a.providerSettings),
      secret_refs: JSON.stringify(a.secretRefs),
      guardrail_policy: JSON.stringify(policy),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * getAgent returns an agent by id; another tenant's agent is NotFound, like a missing one. With
 * `forUpdate` the row stays locked until the transaction ends, so a change that follows (and the
 * audit event describing it) sees exactly the state it replaces.
 */
export async function getAgent(trx: Trx, agentId: string, options: { forUpdate?: boolean } = {}): Promise<Agent> {
  const id = requireUuid(agentId, 'agent_id');
  let query = trx.selectFrom('agents').selectAll().where('id', '=', id);
  if (options.forUpdate === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`agent ${id} not found`);
  return row;
}

/** listAgents pages through the tenant's agents in creation order (ids are UUIDv7). */
export async function listAgents(trx: Trx, page: PageRequest = {}): Promise<Page<Agent>> {
  return paginate(trx.selectFrom('agents').selectAll(), page, { list: 'agents', column: 'id', type: 'string' });
}

/** updateAgent changes the given fields; a new guardrail policy is validated and bumps policy_version. */
export async function updateAgent(trx: Trx, agentId: string, patch: AgentPatch): Promise<Agent> {
  const id = requireUuid(agentId, 'agent_id');
  const p = parseInput(patchSchema, patch);
  const set: AgentUpdate = { updated_at: sql<Date>`now()` as unknown as Date };
  if (p.name !== undefined) set.name = p.name;
  if (p.prompt !== undefined) set.prompt = p.prompt;
  if (p.voice !== undefined) set.voice = JSON.stringify(p.voice);
  if (p.providerSettings !== undefined) set.provider_settings = JSON.stringify(p.providerSettings);
  if (p.secretRefs !== undefined) set.secret_refs = JSON.stringify(p.secretRefs);
  let query = trx.updateTable('agents').set(set).where('id', '=', id);
  if (p.guardrailPolicy !== undefined) {
    query = query.set({
      guardrail_policy: JSON.stringify(parseGuardrailPolicy(p.guardrailPolicy)),
      policy_version: sql<number>`policy_version + 1` as unknown as number,
    });
  }
  const row = await query.returningAll().executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`agent ${id} not found`);
  return row;
}

/**
 * setGuardrailPolicy replaces an agent's guardrail policy and bumps policy_version. With
 * expectedVersion, the change applies only if the agent is still at that version (optimistic
 * locking): otherwise FailedPrecondition, and nothing changes.
 */
export async function setGuardrailPolicy(trx: Trx, agentId: string, policy: unknown, expectedVersion?: number): Promise<Agent> {
  const id = requireUuid(agentId, 'agent_id');
  const document = parseGuardrailPolicy(policy);
  let query = trx
    .updateTable('agents')
    .set({
      guardrail_policy: JSON.stringify(document),
      policy_version: sql<number>`policy_version + 1` as unknown as number,
      updated_at: sql<Date>`now()` as unknown as Date,
    })
    .where('id', '=', id);
  if (expectedVersion !== undefined) query = query.where('policy_version', '=', expectedVersion);
  const row = await query.returningAll().executeTakeFirst();
  if (row !== undefined) return row;
  const current = await getAgent(trx, id); // NotFound when missing
  throw new FailedPreconditionError(
    `the agent's policy_version is ${current.policy_version}, not the expected ${expectedVersion ?? '-'}: read the agent again and reapply the change`,
  );
}

/** deleteAgent removes an agent; one that still has conversations is refused (InvalidArgument). */
export async function deleteAgent(trx: Trx, agentId: string): Promise<void> {
  const id = requireUuid(agentId, 'agent_id');
  const result = await trx.deleteFrom('agents').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`agent ${id} not found`);
}
