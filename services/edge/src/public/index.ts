// The public API (parley.api.v1) as modules: one per public service, each with its scope table
// (typed by @parley/scopes' Scope, so a misspelt or missing scope does not compile). To add an
// area, write services/edge/src/public/<area>.ts with definePublicModule and add it to
// PUBLIC_MODULES below; the auth interceptor and the audit coverage test pick it up from here.
import type { ConnectRouter } from '@connectrpc/connect';
import { accountModule } from './account.js';
import { agentsModule } from './agents.js';
import { apiKeysModule } from './api-keys.js';
import { auditModule } from './audit.js';
import { callsModule } from './calls.js';
import { connectionsModule } from './connections.js';
import { conversationsModule } from './conversations.js';
import type { PublicDeps } from './deps.js';
import { membersModule } from './members.js';
import type { PublicModule } from './module.js';
import { privacyModule } from './privacy.js';
import { retentionModule } from './retention.js';
import { secretsModule } from './secrets.js';
import { sessionsModule } from './sessions.js';
import { webhooksModule } from './webhooks.js';
import { workspacesModule } from './workspaces.js';

/** PUBLIC_MODULES are the public services the edge serves. */
export const PUBLIC_MODULES: readonly PublicModule<PublicDeps>[] = [
  accountModule,
  apiKeysModule,
  membersModule,
  sessionsModule,
  agentsModule,
  auditModule,
  secretsModule,
  conversationsModule,
  callsModule,
  webhooksModule,
  connectionsModule,
  retentionModule,
  privacyModule,
  workspacesModule,
];

/** registerPublicRoutes registers every public module's handlers. */
export function registerPublicRoutes(
  router: ConnectRouter,
  deps: PublicDeps,
  modules: readonly PublicModule<PublicDeps>[] = PUBLIC_MODULES,
): void {
  for (const m of modules) m.register(router, deps);
}

export { forward, type PublicDeps } from './deps.js';
export { definePublicModule, publicPrincipal, type PublicModule } from './module.js';
