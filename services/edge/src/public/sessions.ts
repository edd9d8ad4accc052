import { SessionService } from '@parley/proto/parley/api/v1/sessions_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/** sessionsModule serves parley.api.v1.SessionService, forwarded to identity. */
export const sessionsModule = definePublicModule(
  SessionService,
  { createSession: 'sessions:create', revokeSession: 'sessions:create' },
  (router, deps: PublicDeps) => {
    const identity = deps.client('identity', IdentityService);
    router.service(SessionService, {
      async createSession(req, ctx) {
        const res = await identity.createSession(
          { agentId: req.agentId, subjectRef: req.subjectRef, origin: req.origin, ttlSeconds: req.ttlSeconds },
          forward(ctx),
        );
        return { sessionId: res.sessionId, token: res.token, expiresAt: res.expiresAt, sessionUrl: res.sessionUrl };
      },
      async revokeSession(req, ctx) {
        await identity.revokeSession({ sessionId: req.sessionId }, forward(ctx));
        return {};
      },
    });
  },
);
