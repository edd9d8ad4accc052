import { randomBytes, randomUUID } from 'node:crypto';
import { isWorkspaceSuspended } from '../workspace.store.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { auditedTransactions, fromPrincipal, noDetails } from '@parley/audit-outbox';
import { createGroupCommit, requireUuid, withTenant } from '@parley/db';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { scopedPrincipal } from '@parley/scopes';
import { DEFAULT_SESSION_TTL_SECONDS, MAX_SESSION_TTL_SECONDS, SessionTokenError, signSessionToken } from '@parley/session-token';
import * as sessions from '../session.store.js';
import type { IdentityDeps, IdentityHandlers } from './deps.js';

/** CALL_SESSION_TTL_SECONDS bounds a call's token: Twilio opens the media stream right after fetching the TwiML. */
const CALL_SESSION_TTL_SECONDS = 60;
/** SESSION_BATCH_MAX bounds how many sessions one group-committed transaction records. */
const SESSION_BATCH_MAX = 64;
/** CALL_SID is the shape of a Twilio call's SID. */
const CALL_SID = /^CA[0-9a-f]{32}$/;

function parseOrigin(origin: string): string | null {
  if (origin === '') return null;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new InvalidArgumentError('origin must be an origin such as https://app.example.com', { field: 'origin' });
  }
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1';
  if (url.origin !== origin || (url.protocol !== 'https:' && !(local && url.protocol === 'http:'))) {
    throw new InvalidArgumentError('origin must be scheme://host[:port] with https (http only for localhost), no path', {
      field: 'origin',
    });
  }
  return origin;
}

/**
 * sessionHandlers mint session tokens for a forwarded principal, verify them for the
 * voice-orchestrator (a token connects once), revoke them, and publish the signing keys.
 */
export function sessionHandlers(
  deps: IdentityDeps,
): IdentityHandlers<'getJwks' | 'createSession' | 'createCallSession' | 'verifySession' | 'revokeSession'> {
  const { db, config, ring, verifier } = deps;
  const audited = auditedTransactions(db, deps.onAudit);
  // Concurrent sessions of one workspace are recorded together, one transaction per batch; each
  // caller gets its token only once the transaction holding its row committed (a batch failed
  // over one row retries each alone, so a replayed CallSid fails only its own call; a caller who
  // gave up while waiting is left out, so no session exists whose token nobody received). An idle
  // workspace's batch starts one event-loop turn after its first row (gather): callers answered
  // together come back together and go in one batch, not one alone and the rest behind it.
  const recordSession = createGroupCommit<sessions.NewSession, undefined>(
    async (tenantId, rows) => {
      await withTenant(db, tenantId, (trx) => sessions.insertSessions(trx, rows));
      return rows.map(() => undefined);
    },
    { maxSize: SESSION_BATCH_MAX, what: 'sessions', gather: true },
  );
  // Signs a session token for an agent of the tenant and records the session it may connect once.
  const mintSession = async (
    tenantId: string,
    agentId: string,
    session: {
      ttlSeconds: number;
      origin: string | null;
      subjectRef: string | null;
      createdByKeyId: string | null;
      callSid?: string;
      subjectId?: string;
    },
    signal: AbortSignal,
  ) => {
    const sid = randomUUID();
    const jti = randomBytes(18).toString('base64url');
    const key = ring.current();
    const { token, claims } = await signSessionToken(key.privateKey, key.kid, {
      issuer: config.sessionIssuer,
      audience: config.sessionAudience,
      tenant: tenantId,
      agent: agentId,
      sid,
      jti,
      ...(session.origin !== null ? { origin: session.origin } : {}),
      ...(session.subjectRef !== null ? { subjectRef: session.subjectRef } : {}),
      ttlSeconds: session.ttlSeconds,
    });
    const expiresAt = new Date(claims.exp * 1000);
    await recordSession.submit(
      tenantId,
      {
        id: sid,
        jti,
        agentId,
        subjectRef: session.subjectRef,
        origin: session.origin,
        createdByKeyId: session.createdByKeyId,
        expiresAt,
        ...(session.callSid === undefined ? {} : { callSid: session.callSid }),
        ...(session.subjectId === undefined ? {} : { subjectId: session.subjectId }),
      },
      signal,
    );
    return { sid, token, expiresAt };
  };
  return {
    getJwks() {
      return { jwksJson: ring.jwksJson(), maxAgeSeconds: 60 };
    },

    async createSession(req, ctx) {
      const p = scopedPrincipal(ctx, 'sessions:create');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const ttl = req.ttlSeconds === 0 ? DEFAULT_SESSION_TTL_SECONDS : req.ttlSeconds;
      if (ttl < 30 || ttl > MAX_SESSION_TTL_SECONDS)
        throw new InvalidArgumentError(`ttl_seconds must be between 30 and ${MAX_SESSION_TTL_SECONDS}`, { field: 'ttl_seconds' });
      if (req.subjectRef.length > 200)
        throw new InvalidArgumentError('subject_ref must be at most 200 characters', { field: 'subject_ref' });
      const origin = parseOrigin(req.origin);
      await deps.agents.requireAgent(p.tenantId, agentId, ctx.signal);
      const { sid, token, expiresAt } = await mintSession(
        p.tenantId,
        agentId,
        {
          ttlSeconds: ttl,
          origin,
          subjectRef: req.subjectRef === '' ? null : req.subjectRef,
          createdByKeyId: p.kind === 'api_key' ? p.id : null,
        },
        ctx.signal,
      );
      // The token rides in the fragment: browsers do not send it to servers or in Referer headers.
      const sessionUrl = `${config.sessionUrl}/v1/sessions/${sid}#token=${token}`;
      return { sessionId: sid, token, expiresAt: timestampFromDate(expiresAt), sessionUrl };
    },

    async createCallSession(req, ctx) {
      // Only the orchestrator may ask (allow-list), after verifying the call's signature: there is no principal.
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const agentId = requireUuid(req.agentId, 'agent_id');
      // An orchestrator of the previous release sends no call_sid while a rolling upgrade runs: its
      // calls are answered (replays then refused only by its own memory) rather than dropped. The
      // next release makes call_sid required.
      if (req.callSid === '')
        deps.logger.warn(
          { tenant_id: tenantId, agent_id: agentId },
          'a call session was asked for without call_sid (an orchestrator of the previous release): its replay is not recorded',
        );
      else if (!CALL_SID.test(req.callSid))
        throw new InvalidArgumentError('call_sid must be the Twilio CallSid of the call: CA followed by 32 lowercase hex digits', {
          field: 'call_sid',
        });
      // The person an outbound call was placed to (the orchestrator read it from the signed webhook URL).
      const subjectId = req.subjectId === '' ? undefined : requireUuid(req.subjectId, 'subject_id');
      // The person must be the workspace's: the session binds the call's conversation to them, and
      // forgetting them deletes it. Asked beside the agent, so it adds no round trip.
      await Promise.all([
        deps.agents.requireAgent(tenantId, agentId, ctx.signal),
        subjectId === undefined ? undefined : deps.agents.requireSubject(tenantId, subjectId, ctx.signal),
      ]);
      // One session per call: the unique (tenant, call_sid) makes a replayed webhook fail here, at any replica.
      const { sid, token } = await mintSession(
        tenantId,
        agentId,
        {
          ttlSeconds: CALL_SESSION_TTL_SECONDS,
          origin: null,
          subjectRef: null,
          createdByKeyId: null,
          ...(req.callSid === '' ? {} : { callSid: req.callSid }),
          ...(subjectId === undefined ? {} : { subjectId }),
        },
        ctx.signal,
      ).catch((err: unknown) => {
        if (err instanceof AlreadyExistsError)
          throw new AlreadyExistsError('this CallSid was already answered: a call webhook is answered once', { cause: err });
        throw err;
      });
      return { sessionId: sid, token };
    },

    async verifySession(req) {
      const claims = await verifier.verify(req.token, {
        ...(req.tenantId !== '' ? { tenantId: req.tenantId } : {}),
        ...(req.origin !== '' ? { origin: req.origin } : {}),
      });
      const { state, callSid, subjectId } = await withTenant(db, claims.tenant, async (trx) =>
        req.consume
          ? sessions.consumeSession(trx, claims.sid, claims.jti)
          : { state: await sessions.sessionState(trx, claims.sid, claims.jti), callSid: null, subjectId: null },
      );
      if (state === 'replayed') throw new SessionTokenError('replayed', 'this token was already used to connect; create a new session');
      if (state === 'revoked') throw new SessionTokenError('revoked', 'this session was revoked');
      if (state === 'expired') throw new SessionTokenError('expired', 'token has expired; create a new session');
      if (state === 'unknown') throw new SessionTokenError('claims', 'no such session');
      if (await isWorkspaceSuspended(db, claims.tenant)) throw new SessionTokenError('revoked', 'this workspace is suspended');
      return {
        claims: {
          tenantId: claims.tenant,
          agentId: claims.agent,
          sessionId: claims.sid,
          jti: claims.jti,
          origin: claims.origin ?? '',
          subjectRef: claims.subject_ref ?? '',
          expiresAt: timestampFromDate(new Date(claims.exp * 1000)),
          subjectId: subjectId ?? '',
          callSid: callSid ?? '',
        },
      };
    },

    async revokeSession(req, ctx) {
      const p = scopedPrincipal(ctx, 'sessions:create');
      const sid = requireUuid(req.sessionId, 'session_id');
      await audited(p.tenantId, async (trx, record) => {
        if (!(await sessions.revokeSession(trx, sid))) throw new NotFoundError(`session ${sid} does not exist in this workspace`);
        if (p.kind !== 'session')
          await record({ ...fromPrincipal(p), action: 'session.revoke', target: { type: 'session', id: sid }, details: noDetails() });
      });
      return {};
    },
  };
}
