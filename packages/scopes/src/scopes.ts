// Scopes and roles are data: the edge's per-module RPC→scope tables are typed by Scope, identity
// checks grants against ROLE_SCOPES, and README's permission matrix mirrors these tables.

/** SCOPES are the permissions an API key can carry, each with what it allows. */
export const SCOPES = {
  'sessions:create': 'create and revoke session tokens for browsers and devices',
  'agents:read': 'read agents and their guardrail policies',
  'agents:write': 'create, change and delete agents and their guardrail policies',
  'secrets:write': 'store and rotate provider credentials (never read them back)',
  'audit:read': 'query, export and verify the audit log',
  'conversations:read': 'list conversations and read their transcripts (decrypted; every read is audited)',
  'conversations:end': 'end a live conversation from the operator side',
  'calls:place': "place outbound phone calls from an agent's number (refused by its sleep windows, do-not-contact and fatigue rules)",
  'calls:do_not_contact': "put people on and take them off the workspace's do-not-contact list, and read whether one is on it",
  'privacy:run': 'run retention, data export and deletion (DSAR) jobs',
  'privacy:read': 'read retention rules, legal holds, purge runs, privacy jobs and the data map',
  'api_keys:admin': 'create, list, rotate and revoke API keys (never beyond your own scopes)',
  'members:admin': 'add, change and remove members',
  'webhooks:admin': 'create, list, rotate and delete webhook endpoints; read the delivery log and replay deliveries',
  'connections:admin': "create, list, change and delete connections (external systems an agent's tools reach) and their operations",
  'deployment:admin': 'create, list and suspend workspaces and add their first owner (deployment-wide; never part of a workspace role)',
} as const;

/** Scope is one of SCOPES. */
export type Scope = keyof typeof SCOPES;

/**
 * MANAGEMENT_SCOPES are the scopes that administer credentials and people: they can mint, rotate
 * or revoke keys and add or promote members, so a holder can perpetuate or widen its own access.
 * Every other scope only acts on the workspace's data. A key rotated away (in its overlap) keeps
 * only its data scopes, so a leaked old key can neither mint successors nor lock out its owner.
 */
export const MANAGEMENT_SCOPES: readonly Scope[] = ['api_keys:admin', 'members:admin'];

/** isManagementScope tells whether a scope is one of MANAGEMENT_SCOPES. */
export function isManagementScope(scope: string): boolean {
  return (MANAGEMENT_SCOPES as readonly string[]).includes(scope);
}

/** ALL_SCOPES lists SCOPES' names. */
export const ALL_SCOPES = Object.keys(SCOPES) as Scope[];

/**
 * DEPLOYMENT_SCOPES act on the whole deployment, not on one workspace: they come from the
 * deployment's own admin list (an OIDC group claim or bootstrap admin e-mails), never from a
 * workspace role, so no workspace owner can grant them.
 */
export const DEPLOYMENT_SCOPES: readonly Scope[] = ['deployment:admin'];

/** WORKSPACE_SCOPES are the scopes a workspace role can hold: all but DEPLOYMENT_SCOPES. */
export const WORKSPACE_SCOPES: readonly Scope[] = ALL_SCOPES.filter((s) => !DEPLOYMENT_SCOPES.includes(s));

/** ROLES are a member's possible roles, most powerful first. */
export const ROLES = ['owner', 'admin', 'developer', 'viewer'] as const;

/** Role is one of ROLES. */
export type Role = (typeof ROLES)[number];

/** ROLE_SCOPES is the permission matrix: the scopes a member of each role (and their keys) may hold. */
export const ROLE_SCOPES: Readonly<Record<Role, readonly Scope[]>> = {
  owner: WORKSPACE_SCOPES,
  admin: WORKSPACE_SCOPES,
  developer: ['sessions:create', 'agents:read', 'agents:write', 'secrets:write', 'api_keys:admin'],
  viewer: ['agents:read', 'audit:read'],
};

/** isScope tells whether a string names a scope. */
export function isScope(value: string): value is Scope {
  return Object.hasOwn(SCOPES, value);
}

/** isRole tells whether a string names a role. */
export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** roleRank orders roles: a lower number is more powerful. */
export function roleRank(role: Role): number {
  return ROLES.indexOf(role);
}

/** allowedByRole tells whether a role permits a scope. */
export function allowedByRole(role: Role, scope: string): boolean {
  return (ROLE_SCOPES[role] as readonly string[]).includes(scope);
}
