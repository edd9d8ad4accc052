import type { Client } from '@connectrpc/connect';
import { ConfigError, FailedPreconditionError } from '@parley/platform';
import { CallService } from '@parley/proto/parley/api/v1/calls_pb.js';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule, publicPrincipal } from './module.js';

/**
 * callsModule serves parley.api.v1.CallService, forwarded to the voice orchestrator, which checks
 * the number and the agent's guardrail policy before dialling and records the `call.place` event.
 */
export const callsModule = definePublicModule(CallService, { placeCall: 'calls:place' }, (router, deps: PublicDeps) => {
  // Made at the first call: an edge without PARLEY_VOICE_ORCHESTRATOR_URL still serves the rest of the API.
  let orchestrator: Client<typeof OrchestratorService> | undefined;
  const client = (): Client<typeof OrchestratorService> => {
    try {
      return (orchestrator ??= deps.client('voice-orchestrator', OrchestratorService));
    } catch (err) {
      if (err instanceof ConfigError)
        throw new FailedPreconditionError(
          'this deployment places no calls: its edge has no voice-orchestrator (PARLEY_VOICE_ORCHESTRATOR_URL)',
        );
      throw err;
    }
  };
  router.service(CallService, {
    async placeCall(req, ctx) {
      const res = await client().placeCall({ tenantId: publicPrincipal(ctx).tenantId, agentId: req.agentId, to: req.to }, forward(ctx));
      return { callSid: res.callSid };
    },
  });
});
