// Hostile text through the real public stack (issue 18): strings Postgres cannot store (NUL,
// unpaired surrogates, invalid UTF-8) and session tokens with stray characters. Every refusal is
// the caller's error code with a message naming what to fix, never INTERNAL, and nothing is written.
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { afterTheAbuse, agentId, ownerKey, rowsMatching, stack } from './hardening-stack.js';

/** hardeningTextCases registers the tests of hostile text (NUL, unpaired surrogates, invalid UTF-8, stray token characters), on the hardening stack of the file that calls it. */
export function hardeningTextCases(): void {
  describe('NUL characters in request strings', () => {
    const refusedFor = async (path: string, body: unknown, field: RegExp) => {
      const res = await stack.call(path, body, ownerKey);
      expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.code).toBe('invalid_argument');
      expect(res.body.message as string, path).toMatch(field);
      expect(res.body.message as string).toMatch(/NUL character \(U\+0000\)/);
    };

    it('answers INVALID_ARGUMENT naming the field on every kind of public RPC, and writes nothing', async () => {
      const marker = `nul-${Date.now()}`;
      await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: `${marker}\u0000x`, prompt: 'p' }, /^name /);
      await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: marker, prompt: 'a\u0000b' }, /^prompt /);
      await refusedFor(
        '/parley.api.v1.AgentService/CreateAgent',
        { name: marker, prompt: 'p', voice: { style: { tags: ['calm', 'x\u0000'] } } },
        /^voice\.style\.tags\[1\] /,
      );
      await refusedFor('/parley.api.v1.AgentService/CreateAgent', { name: marker, secretRefs: { llm: 'a\u0000' } }, /^secret_refs\.llm /);
      await refusedFor(
        '/parley.api.v1.MemberService/AddMember',
        { email: `${marker}\u0000@example.com`, displayName: 'X', role: 'viewer' },
        /^email /,
      );
      await refusedFor(
        '/parley.api.v1.MemberService/AddMember',
        { email: `${marker}@example.com`, displayName: 'X\u0000', role: 'viewer' },
        /^display_name /,
      );
      await refusedFor('/parley.api.v1.ApiKeyService/CreateApiKey', { name: `${marker}\u0000`, scopes: ['agents:read'] }, /^name /);
      await refusedFor('/parley.api.v1.ApiKeyService/CreateApiKey', { name: marker, scopes: ['agents:read\u0000'] }, /^scopes\[0\] /);
      await refusedFor('/parley.api.v1.AgentService/ListAgents', { pageToken: 'abc\u0000' }, /^page_token /);
      await refusedFor('/parley.api.v1.AuditService/ListEvents', { filter: { actorId: 'x\u0000' } }, /^filter\.actor_id /);
      await refusedFor('/parley.api.v1.SessionService/CreateSession', { agentId, subjectRef: 'user\u0000' }, /^subject_ref /);
      await refusedFor('/parley.api.v1.AgentService/UpdateAgent', { agentId, name: 'n\u0000' }, /^name /);
      expect(await rowsMatching('parley_tenant_data.agents', marker)).toBe(0);
      expect(await rowsMatching('parley_identity.members', marker)).toBe(0);
      expect(await rowsMatching('parley_identity.api_keys', marker)).toBe(0);
    });

    it('refuses an unpaired surrogate (no UTF-8 form), naming the field', async () => {
      const res = await stack.call('/parley.api.v1.AgentService/CreateAgent', { name: 'x\ud800', prompt: 'p' }, ownerKey);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.code).toBe('invalid_argument');
      expect(res.body.message).toMatch(/\bname\b/);
    });

    it('refuses invalid UTF-8 in a JSON body instead of storing U+FFFD', async () => {
      const marker = `utf8-${Date.now()}`;
      const body = Buffer.concat([Buffer.from(`{"name":"${marker}`), Buffer.from([0xc3, 0x28]), Buffer.from('","prompt":"p"}')]);
      const res = await stack.raw(
        'POST',
        '/parley.api.v1.AgentService/CreateAgent',
        {
          'content-type': 'application/json',
          authorization: `Bearer ${ownerKey}`,
        },
        body,
      );
      expect(res.status, res.text).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ code: 'invalid_argument' });
      expect(await rowsMatching('parley_tenant_data.agents', marker)).toBe(0);
    });

    it('is enforced by every internal service too, not only the edge', async () => {
      const asOrchestrator = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
      const err = await asOrchestrator
        .createSubject({ tenantId: stack.bootstrap.tenantId, externalRef: 'ref\u0000', email: 'a@example.com' })
        .catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toMatch(/^external_ref contains a NUL character/);
      const asEdge = await stack.clientAs('edge', 'identity', IdentityService);
      const verify = await asEdge.verifySession({ token: 'a.b.c\u0000' }).catch((e: unknown) => ConnectError.from(e));
      expect((verify as ConnectError).code).toBe(Code.InvalidArgument);
      expect(stack.logs.some((l) => /"level":"error"/.test(l) && /NUL|0x00/.test(l))).toBe(false);
    });
  });

  describe('session tokens with stray characters', () => {
    it('refuses token + "\\n", a space inside the signature and padding at VerifySession', async () => {
      const created = await stack.call('/parley.api.v1.SessionService/CreateSession', { agentId }, ownerKey);
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const token = created.body.token as string;
      const orchestrator = await stack.clientAs('voice-orchestrator', 'identity', IdentityService);
      const sig = token.lastIndexOf('.') + 5;
      for (const variant of [`${token}\n`, `${token} `, `${token.slice(0, sig)} ${token.slice(sig)}`, `${token}=`]) {
        const err = await orchestrator.verifySession({ token: variant }).catch((e: unknown) => ConnectError.from(e));
        expect(err, JSON.stringify(variant.slice(-8))).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.Unauthenticated);
        expect((err as ConnectError).rawMessage).toMatch(/compact form/);
      }
      // The untouched token still verifies (and is consumed once).
      expect((await orchestrator.verifySession({ token, consume: true })).claims?.sessionId).toBe(created.body.sessionId);
    });
  });

  /** H2Answer is what a raw HTTP/2 request got back: status, headers, trailers and body. */

  afterTheAbuse();
}
