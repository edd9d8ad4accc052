import { CallService } from '@parley/proto/parley/api/v1/calls_pb.js';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule, publicPrincipal } from './module.js';

/**
 * callsModule serves parley.api.v1.CallService, forwarded to the voice orchestrator, which checks
 * the number and the agent's guardrail policy before dialling and records the `call.place` event.
 */
export const callsModule = definePublicModule(CallService, { placeCall: 'calls:place' }, (router, deps: PublicDeps) => {
  const orchestrator = deps.client('voice-orchestrator', OrchestratorService);
  router.service(CallService, {
    async placeCall(req, ctx) {
      const res = await orchestrator.placeCall({ tenantId: publicPrincipal(ctx).tenantId, agentId: req.agentId, to: req.to }, forward(ctx));
      return { callSid: res.callSid };
    },
  });
});
