import { Code, ConnectError, type Client } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ConfigError, FailedPreconditionError, InvalidArgumentError } from '@parley/platform';
import { CallService, type DoNotContactEntrySchema } from '@parley/proto/parley/api/v1/calls_pb.js';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { TenantDataService, type Subject } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule, publicPrincipal } from './module.js';

// The person a do-not-contact request names: exactly one of a phone number and a subject id.
function personOf(req: { phone: string; subjectId: string }): { phone: string } | { subjectId: string } {
  if ((req.phone === '') === (req.subjectId === ''))
    throw new InvalidArgumentError('give exactly one of phone (E.164, e.g. +14155550123) and subject_id', { field: 'phone' });
  return req.phone !== '' ? { phone: req.phone } : { subjectId: req.subjectId };
}

function entryOf(subject: Subject | undefined): MessageInitShape<typeof DoNotContactEntrySchema> {
  if (subject === undefined) return { subjectId: '', doNotContact: false };
  return {
    subjectId: subject.id,
    doNotContact: subject.doNotContact,
    ...(subject.doNotContactSince === undefined ? {} : { since: subject.doNotContactSince }),
  };
}

/**
 * callsModule serves parley.api.v1.CallService: PlaceCall is forwarded to the voice orchestrator,
 * which checks the number, the do-not-contact list and the agent's guardrail policy before
 * dialling and records the `call.place` event; the do-not-contact list is tenant-data's (a mark
 * on the person, recorded with its `subject.do_not_contact` event).
 */
export const callsModule = definePublicModule(
  CallService,
  { placeCall: 'calls:place', setDoNotContact: 'calls:do_not_contact', getDoNotContact: 'calls:do_not_contact' },
  (router, deps: PublicDeps) => {
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
    const tenantData = deps.client('tenant-data', TenantDataService);
    router.service(CallService, {
      async placeCall(req, ctx) {
        const res = await client().placeCall({ tenantId: publicPrincipal(ctx).tenantId, agentId: req.agentId, to: req.to }, forward(ctx));
        return { callSid: res.callSid };
      },
      async setDoNotContact(req, ctx) {
        const tenantId = publicPrincipal(ctx).tenantId;
        const res = await tenantData.setDoNotContact({ tenantId, ...personOf(req), doNotContact: req.doNotContact }, forward(ctx));
        return { entry: entryOf(res.subject) };
      },
      async getDoNotContact(req, ctx) {
        const tenantId = publicPrincipal(ctx).tenantId;
        const who = personOf(req);
        try {
          const res =
            'phone' in who
              ? await tenantData.findSubject({ tenantId, phone: who.phone }, forward(ctx))
              : await tenantData.getSubject({ tenantId, subjectId: who.subjectId }, forward(ctx));
          return { entry: entryOf(res.subject) };
        } catch (err) {
          // A number Parley has never seen is on no list; an unknown subject id stays NOT_FOUND.
          if ('phone' in who && err instanceof ConnectError && err.code === Code.NotFound) return { entry: entryOf(undefined) };
          throw err;
        }
      },
    });
  },
);
