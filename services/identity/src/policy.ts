import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';
import { WorkspaceAdminService } from '@parley/proto/parley/identity/v1/workspaces_pb.js';

/**
 * callerPolicies is the identity service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it. Everything an API key holder
 * does arrives through the edge; the orchestrator only reads the JWKS and verifies sessions.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(IdentityService, {
    authenticateApiKey: ['edge'],
    getJwks: ['edge', 'voice-orchestrator'],
    createApiKey: ['edge'],
    listApiKeys: ['edge'],
    rotateApiKey: ['edge'],
    revokeApiKey: ['edge'],
    addMember: ['edge'],
    listMembers: ['edge'],
    updateMemberRole: ['edge'],
    removeMember: ['edge'],
    createSession: ['edge'],
    verifySession: ['edge', 'voice-orchestrator'],
    // An inbound phone call's token: minted for the orchestrator once it has verified the call's signature.
    createCallSession: ['voice-orchestrator'],
    revokeSession: ['edge'],
    // Retention purges of operational rows: lifecycle's scheduler only.
    purgeExpiredSessions: ['lifecycle'],
    purgeAuthFailures: ['lifecycle'],
    // A DSAR forget of the sessions that name a person: lifecycle only.
    forgetSubjectSessions: ['lifecycle'],
  }),
  // Operator sign-in happens at the edge (OIDC); identity holds the sessions.
  defineCallerPolicy(OperatorService, {
    signInOperator: ['edge'],
    authenticateOperator: ['edge'],
    exchangeOperatorCode: ['edge'],
    refreshOperatorToken: ['edge'],
    signOutOperator: ['edge'],
    listOperatorWorkspaces: ['edge'],
  }),
  // Deployment administration arrives through the edge's public WorkspaceService.
  defineCallerPolicy(WorkspaceAdminService, {
    createWorkspace: ['edge'],
    listWorkspaces: ['edge'],
    suspendWorkspace: ['edge'],
    addWorkspaceOwner: ['edge'],
  }),
];
