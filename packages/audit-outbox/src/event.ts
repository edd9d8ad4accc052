import { create, toJson, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { trace } from '@opentelemetry/api';
import { isUuid, type TenantTransaction } from '@parley/db';
import type { HandlerContext } from '@connectrpc/connect';
import { callerOf, InvalidArgumentError, principalOf, type Principal } from '@parley/platform';
import { AuditEventSchema, type AuditEvent } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { v7 as uuidv7 } from 'uuid';
import { ACTOR_KINDS, AUDIT_ACTIONS, isAuditAction, OUTCOMES, type ActorKind, type AuditAction, type Outcome } from './actions.js';
import type { AuditDetails } from './details.js';
import { insertOutboxRows, type NewOutboxRow } from './outbox.store.js';

/** AuditActor is who performed the action. */
export interface AuditActor {
  readonly kind: ActorKind;
  /** id is the member id, API key id, service name or system job name. */
  readonly id: string;
}

/** AuditTarget is what the action was performed on. */
export interface AuditTarget {
  /** type must be the action's registered target type (AUDIT_ACTIONS[action].targetType). */
  readonly type: string;
  readonly id: string;
}

/** AuditSource is where the request came from, as the edge saw it. */
export interface AuditSource {
  readonly address: string;
  readonly userAgent: string;
}

/** AuditEventInput is what a service says about one privileged action. */
export interface AuditEventInput {
  readonly tenantId: string;
  readonly actor: AuditActor;
  readonly action: AuditAction;
  readonly target: AuditTarget;
  /** outcome defaults to "success": the event commits only if the change does. */
  readonly outcome?: Outcome;
  /** details must come from auditDetails / auditChanges / noDetails (redacted by construction). */
  readonly details: AuditDetails;
  /** source is taken from the forwarded principal (see fromPrincipal); absent for service and system actors. */
  readonly source?: AuditSource;
  /** id defaults to a fresh UUIDv7; pass one only to make a retried request idempotent. */
  readonly id?: string;
  /** occurredAt defaults to now. */
  readonly occurredAt?: Date;
  /** traceId defaults to the active OpenTelemetry span's trace id. */
  readonly traceId?: string;
}

/**
 * fromPrincipal turns the end principal the edge forwarded into the tenant, actor and source
 * of an event. A browser session is not an operator and performs no privileged action; it is
 * refused so that a handler cannot attribute one to it by accident.
 */
export function fromPrincipal(p: Principal): { tenantId: string; actor: AuditActor; source: AuditSource } {
  if (p.kind === 'session')
    throw new InvalidArgumentError(
      'a session principal cannot be the actor of a privileged action; record it as the service acting for it',
    );
  return { tenantId: p.tenantId, actor: { kind: p.kind, id: p.id }, source: { address: p.source, userAgent: p.userAgent } };
}

/** serviceActor is the actor for an action a Parley service performs on its own (e.g. voice-orchestrator resolving a secret). */
export function serviceActor(service: string): AuditActor {
  return { kind: 'service', id: service };
}

/**
 * callingService is the actor for a service calling on its own, with no end principal: the
 * caller's service name (the allow-lists admit only named services, so it is set past
 * authorization), else its SPIFFE ID, which still says who it was.
 */
export function callingService(ctx: HandlerContext): AuditActor {
  const caller = callerOf(ctx);
  return serviceActor(caller.service ?? caller.spiffeId);
}

/** Acting is the tenant, actor and (for an end principal) source of an audit event. */
export type Acting = { tenantId: string; actor: AuditActor; source?: AuditSource };

/**
 * changeActor is who made a change: the end principal the edge forwarded (fromPrincipal refuses a
 * browser session, which may not change anything), else the calling service itself (identity
 * creating a workspace, or an internal caller without a principal).
 */
export function changeActor(ctx: HandlerContext, tenantId: string): Acting {
  const p = principalOf(ctx);
  if (p !== undefined) return { ...fromPrincipal(p), tenantId };
  return { tenantId, actor: callingService(ctx) };
}

/**
 * readActor is who read sensitive data: the forwarded operator or API key, else the calling
 * service (lifecycle exporting a subject's data). A session principal cannot be an actor, so a
 * read on a session's behalf is the service's own.
 */
export function readActor(ctx: HandlerContext, tenantId: string): Acting {
  const p = principalOf(ctx);
  if (p !== undefined && p.kind !== 'session') return { ...fromPrincipal(p), tenantId };
  return { tenantId, actor: callingService(ctx) };
}

/** systemActor is the actor for scheduled jobs (retention purge, key rotation timers). */
export function systemActor(job: string): AuditActor {
  return { kind: 'system', id: job };
}

function activeTraceId(): string {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx !== undefined && /^[0-9a-f]{32}$/.test(ctx.traceId) && !/^0+$/.test(ctx.traceId) ? ctx.traceId : '';
}

/**
 * ORIGIN_SPAN_KEY is the outbox JSON key holding the span that recorded the event, beside the
 * event's own fields (the relay reads events ignoring unknown keys): with the event's trace id
 * it makes the relay's span link to the request that caused the event.
 */
export const ORIGIN_SPAN_KEY = 'parleyOriginSpanId';

/**
 * buildAuditEvent validates an input and returns the wire event (id, time and trace id
 * filled in). recordAuditEvent uses it; it is exported for the audit service's own events and
 * for tests.
 */
export function buildAuditEvent(input: AuditEventInput): AuditEvent {
  if (!isUuid(input.tenantId)) throw new InvalidArgumentError('audit event tenantId must be a UUID');
  if (!ACTOR_KINDS.includes(input.actor.kind)) throw new InvalidArgumentError(`audit actor kind must be one of ${ACTOR_KINDS.join(', ')}`);
  if (input.actor.id.length === 0 || input.actor.id.length > 200) throw new InvalidArgumentError('audit actor id must be 1-200 characters');
  if (!isAuditAction(input.action))
    throw new InvalidArgumentError(`"${String(input.action)}" is not a registered audit action; add it to AUDIT_ACTIONS`);
  const expected = AUDIT_ACTIONS[input.action].targetType;
  if (input.target.type !== expected)
    throw new InvalidArgumentError(`audit action ${input.action} targets a ${expected}, not a ${input.target.type}`);
  if (input.target.id.length === 0 || input.target.id.length > 200)
    throw new InvalidArgumentError('audit target id must be 1-200 characters');
  const outcome = input.outcome ?? 'success';
  if (!OUTCOMES.includes(outcome)) throw new InvalidArgumentError(`audit outcome must be one of ${OUTCOMES.join(', ')}`);
  const id = input.id ?? uuidv7();
  if (!isUuid(id)) throw new InvalidArgumentError('audit event id must be a UUID');
  const occurredAt = input.occurredAt ?? new Date();
  return create(AuditEventSchema, {
    id,
    tenantId: input.tenantId,
    actorKind: input.actor.kind,
    actorId: input.actor.id,
    action: input.action,
    targetType: input.target.type,
    targetId: input.target.id,
    outcome,
    // Struct holds JSON; the round trip drops anything JSON cannot carry.
    description: JSON.parse(JSON.stringify(input.details)) as JsonObject,
    sourceAddress: (input.source?.address ?? '').slice(0, 100),
    userAgent: (input.source?.userAgent ?? '').slice(0, 256),
    traceId: input.traceId ?? activeTraceId(),
    occurredAt: timestampFromDate(occurredAt),
  });
}

/** auditEventJson is the event in protobuf JSON form, as the outbox stores it. */
export function auditEventJson(event: AuditEvent): JsonObject {
  return toJson(AuditEventSchema, event) as JsonObject;
}

/**
 * outboxRowOf validates an input and returns its outbox row (the event's protobuf JSON, with the
 * span that recorded it, for the relay's link); recordAuditEvent and the audited transactions
 * insert it.
 */
export function outboxRowOf(input: AuditEventInput): NewOutboxRow {
  const event = buildAuditEvent(input);
  const active = trace.getActiveSpan()?.spanContext();
  const json: JsonObject =
    active !== undefined && active.traceId === event.traceId && trace.isSpanContextValid(active)
      ? { ...auditEventJson(event), [ORIGIN_SPAN_KEY]: active.spanId }
      : auditEventJson(event);
  return { tenant_id: event.tenantId, id: event.id, event: JSON.stringify(json) };
}

/**
 * recordAuditEvent writes an audit event to the calling service's outbox inside the caller's
 * tenant transaction, so the event commits if and only if the privileged change commits. The
 * relay delivers it later. Returns the event id.
 */
export async function recordAuditEvent<DB>(trx: TenantTransaction<DB>, input: AuditEventInput): Promise<string> {
  const row = outboxRowOf(input);
  await insertOutboxRows(trx, [row]);
  return row.id;
}
