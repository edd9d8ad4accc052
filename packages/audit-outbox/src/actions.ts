// The registry of audit action names, as data: the audit service refuses any other name, the
// coverage test maps privileged RPCs onto it, and operators filter on it.

/** AuditActionSpec describes one action name: what it acts on and whether it is a read of sensitive data. */
export interface AuditActionSpec {
  /** targetType is the `target.type` every event of this action carries. */
  readonly targetType: string;
  /** access marks reads of sensitive data (recorded as access events), as opposed to changes. */
  readonly access: boolean;
  /** summary is a short human description for listings and docs. */
  readonly summary: string;
}

const change = (targetType: string, summary: string): AuditActionSpec => ({ targetType, access: false, summary });
const access = (targetType: string, summary: string): AuditActionSpec => ({ targetType, access: true, summary });

/**
 * AUDIT_ACTIONS is every action name an audit event may carry, `<target>.<verb>`. Adding an
 * action is adding a line here; renaming one breaks the filters operators saved, so don't.
 */
export const AUDIT_ACTIONS = {
  'workspace.create': change('workspace', 'a workspace was created'),
  'workspace.update': change('workspace', 'workspace settings changed'),
  'workspace.suspend': change('workspace', 'a workspace was suspended: its keys, sessions and operators stopped'),
  'member.add': change('member', 'a member was added'),
  'member.role_change': change('member', "a member's role changed"),
  'member.remove': change('member', 'a member was removed'),
  'api_key.create': change('api_key', 'a workspace API key was created'),
  'api_key.rotate': change('api_key', "a workspace API key's secret was replaced"),
  'api_key.revoke': change('api_key', 'a workspace API key was revoked'),
  'api_key.scopes_change': change('api_key', "an API key's scopes changed"),
  'session.revoke': change('session', 'a session token was revoked'),
  'signing_key.rotate': change('signing_key', 'the session-token signing key was rotated'),
  'agent.create': change('agent', 'an agent was created'),
  'agent.update': change('agent', 'an agent was changed'),
  'agent.delete': change('agent', 'an agent was deleted'),
  'guardrail_policy.set': change('agent', "an agent's guardrail policy was replaced"),
  'secret.create': change('secret', 'a provider credential was stored'),
  'secret.rotate': change('secret', 'a new version of a provider credential was stored'),
  'secret.delete': change('secret', 'a provider credential was deleted'),
  'secret.resolve': access('secret', 'a provider credential was decrypted for a conversation'),
  'kek.rotate': change('kek', 'the key-encryption key was rotated'),
  'subject.do_not_contact': change('subject', 'a person was put on or taken off the do-not-contact list (no outbound calls)'),
  'subject_key.shred': change('subject', "an end user's data key was destroyed (crypto-shredding)"),
  'transcript.read': access('conversation', 'a transcript was read'),
  'conversation.end': change('conversation', 'an operator ended a live conversation'),
  'call.place': change('agent', 'an outbound phone call was placed for an agent after its guardrail policy allowed it'),
  'call.handoff': change('conversation', 'a live phone call was transferred to a human number by a guardrail rule'),
  'recording.read': access('recording', 'a recording was read'),
  'webhook_endpoint.create': change('webhook_endpoint', 'a webhook endpoint was created'),
  'webhook_endpoint.update': change('webhook_endpoint', 'a webhook endpoint was changed'),
  'webhook_endpoint.delete': change('webhook_endpoint', 'a webhook endpoint was deleted'),
  'webhook_secret.rotate': change('webhook_endpoint', "a webhook endpoint's signing secret was rotated"),
  'webhook_delivery.replay': change('webhook_delivery', 'a finished webhook delivery was queued again by an operator'),
  'tool.create': change('tool', 'a tool definition was created'),
  'tool.update': change('tool', 'a tool definition was changed'),
  'tool.delete': change('tool', 'a tool definition was deleted'),
  'connection.create': change('connection', 'a connection (external system for tools) was created'),
  'connection.update': change('connection', 'a connection or its operations changed'),
  'connection.delete': change('connection', 'a connection was deleted'),
  'connection.call': access('connection', "an agent's tool call reached a connection with its credential"),
  'retention_policy.set': change('retention_policy', 'a retention policy was changed'),
  'retention.purge': change('retention_policy', 'data past its retention was purged'),
  'legal_hold.set': change('legal_hold', 'a legal hold on a subject or conversation was placed or released'),
  'privacy_request.export': change('privacy_request', 'a data export (DSAR) was requested'),
  'privacy_request.forget': change('privacy_request', 'an erasure (DSAR forget) was requested'),
  'privacy_request.failed': change('privacy_request', 'a DSAR job was given up after its attempts (the reason is kept on the job)'),
  'privacy_request.export_read': access('privacy_request', 'a DSAR export was downloaded'),
  'audit.export': access('audit_log', 'the audit log was exported'),
  'audit.purge': change('audit_log', 'audit events past retention were purged'),
  'operator.sign_in': change('member', 'an operator signed in through the identity provider'),
  'operator.sign_out': change('member', 'an operator signed out'),
} as const satisfies Record<string, AuditActionSpec>;

/** AuditAction is a registered action name. */
export type AuditAction = keyof typeof AUDIT_ACTIONS;

/** AUDIT_ACTION_NAMES lists the registered action names. */
export const AUDIT_ACTION_NAMES: readonly AuditAction[] = Object.keys(AUDIT_ACTIONS) as AuditAction[];

/** isAuditAction tells whether a string is a registered action name. */
export function isAuditAction(value: string): value is AuditAction {
  return Object.hasOwn(AUDIT_ACTIONS, value);
}

/** ACTOR_KINDS are who may act: an operator, a workspace API key, a Parley service, or the system itself (schedulers). */
export const ACTOR_KINDS = ['member', 'api_key', 'service', 'system'] as const;

/** ActorKind is one of ACTOR_KINDS. */
export type ActorKind = (typeof ACTOR_KINDS)[number];

/** OUTCOMES are how an action ended. A failed change rolls back, so its event comes from a separate transaction. */
export const OUTCOMES = ['success', 'failure', 'denied'] as const;

/** Outcome is one of OUTCOMES. */
export type Outcome = (typeof OUTCOMES)[number];
