import type { MessageInitShape } from '@bufbuild/protobuf';
import { AuditService as PublicAuditService, type AuditEventSchema, type AuditEventFilter } from '@parley/proto/parley/api/v1/audit_pb.js';
import { AuditService, type EventFilterSchema, type StoredEvent } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { forward, forwardLongRead, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

function eventOf(s: StoredEvent): MessageInitShape<typeof AuditEventSchema> {
  const e = s.event;
  return {
    id: e?.id ?? '',
    seq: s.seq,
    actorKind: e?.actorKind ?? '',
    actorId: e?.actorId ?? '',
    action: e?.action ?? '',
    targetType: e?.targetType ?? '',
    targetId: e?.targetId ?? '',
    outcome: e?.outcome ?? '',
    ...(e?.description === undefined ? {} : { description: e.description }),
    sourceAddress: e?.sourceAddress ?? '',
    userAgent: e?.userAgent ?? '',
    traceId: e?.traceId ?? '',
    ...(e?.occurredAt === undefined ? {} : { occurredAt: e.occurredAt }),
    ...(s.recordedAt === undefined ? {} : { recordedAt: s.recordedAt }),
    prevHash: s.prevHash,
    hash: s.hash,
  };
}

function filterOf(f: AuditEventFilter | undefined): MessageInitShape<typeof EventFilterSchema> | undefined {
  if (f === undefined) return undefined;
  return {
    actorKind: f.actorKind,
    actorId: f.actorId,
    action: f.action,
    targetType: f.targetType,
    targetId: f.targetId,
    ...(f.since === undefined ? {} : { since: f.since }),
    ...(f.until === undefined ? {} : { until: f.until }),
  };
}

/** auditModule serves parley.api.v1.AuditService: reads of the workspace's audit log, forwarded to the audit service with the caller's principal (the tenant comes from it). */
export const auditModule = definePublicModule(
  PublicAuditService,
  {
    listEvents: 'audit:read',
    exportEvents: 'audit:read',
    verifyLog: 'audit:read',
    getPublicKeys: 'audit:read',
  },
  (router, deps: PublicDeps) => {
    const audit = deps.client('audit', AuditService);
    router.service(PublicAuditService, {
      async listEvents(req, ctx) {
        const filter = filterOf(req.filter);
        const res = await audit.listEvents(
          { ...(filter === undefined ? {} : { filter }), pageSize: req.pageSize, pageToken: req.pageToken },
          forward(ctx),
        );
        return { events: res.events.map(eventOf), nextPageToken: res.nextPageToken };
      },
      async *exportEvents(req, ctx) {
        const options = forwardLongRead(ctx, deps.longReadDeadlineMs);
        for await (const line of audit.exportEvents({ fromSeq: req.fromSeq, toSeq: req.toSeq }, options)) yield { ndjson: line.ndjson };
      },
      async verifyLog(req, ctx) {
        const r = await audit.verifyLog({ fromSeq: req.fromSeq, toSeq: req.toSeq }, forwardLongRead(ctx, deps.longReadDeadlineMs));
        return {
          ok: r.ok,
          firstFailedSeq: r.firstFailedSeq,
          reason: r.reason,
          verifiedFromSeq: r.verifiedFromSeq,
          verifiedToSeq: r.verifiedToSeq,
          checkpointsVerified: r.checkpointsVerified,
          lastCheckpointSeq: r.lastCheckpointSeq,
        };
      },
      // The keys are the deployment's, not the tenant's: public by nature, but handed only to a
      // caller that may read the log they vouch for.
      async getPublicKeys(_req, ctx) {
        const r = await audit.getPublicKeys({}, forward(ctx));
        return {
          keys: r.keys.map((k) => ({
            keyId: k.keyId,
            publicKeyPem: k.publicKeyPem,
            ...(k.createdAt === undefined ? {} : { createdAt: k.createdAt }),
          })),
        };
      },
    });
  },
);
