// @parley/client against a real public stack (edge, identity, tenant-data, secrets, audit,
// integrations as processes on real Postgres): typed services, page iteration across pages, typed
// errors for refused credentials and scopes, and retries on UNAVAILABLE — through a connection that
// is refused until the edge "comes back", and through a local Connect server that answers
// UNAVAILABLE twice (a stand-in for an edge whose peer is briefly down).
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer } from 'node:net';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collect,
  items,
  pages,
  PermissionDeniedApiError,
  UnauthenticatedApiError,
  UnavailableApiError,
  NotFoundApiError,
  ParleyApiError,
  type ParleyClient,
} from '@parley/client';
import { createParleyNodeClient } from '@parley/client/node';
import { freePort } from '@parley/devstack';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import type { PublicStack, SharedPublicStack } from '../edge/fixture.js';

/** stack is the public stack of the file that registered these tests (set before they run). */
let stack: PublicStack;
let client: ParleyClient;

const clientFor = (apiKey: string, extra: Partial<Parameters<typeof createParleyNodeClient>[0]> = {}) =>
  createParleyNodeClient({ baseUrl: stack.publicUrl, ca: stack.ca, apiKey, ...extra });

/** clientCases registers the tests of @parley/client against the public stack, on the file's public stack. */
export function clientCases(shared: SharedPublicStack): void {
  beforeAll(() => {
    stack = shared.stack;
    client = clientFor(stack.bootstrap.apiKey);
  });

  describe('the typed client against the public stack', () => {
    it('tells the caller who it is and lists agents', async () => {
      const me = await client.account.whoAmI({});
      expect(me.tenantId).toBe(stack.bootstrap.tenantId);
      const { agent } = await client.agents.createAgent({ name: 'client-first', prompt: 'Be brief.' });
      const { agents } = await client.agents.listAgents({});
      expect(agents.map((a) => a.id)).toContain(agent?.id);
    });

    it('iterates every agent across pages, passing each page token back until the last page', async () => {
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        const { agent } = await client.agents.createAgent({ name: `paged-${i}`, prompt: 'x' });
        created.push(agent?.id ?? '');
      }
      const seenPages = await collect(pages(client.agents.listAgents, { pageSize: 3 }));
      expect(seenPages.length).toBeGreaterThanOrEqual(3);
      expect(seenPages.slice(0, -1).every((p) => p.agents.length === 3 && p.nextPageToken !== '')).toBe(true);
      expect(seenPages.at(-1)?.nextPageToken).toBe('');
      const all = await collect(items(client.agents.listAgents, { pageSize: 3 }, (r) => r.agents));
      const ids = all.map((a) => a.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(expect.arrayContaining(created));
      expect(all.length).toBe(seenPages.reduce((n, p) => n + p.agents.length, 0));
    });

    it('surfaces a refused key as UnauthenticatedApiError, a missing scope as PermissionDeniedApiError, a missing agent as NotFoundApiError', async () => {
      const bogus = clientFor(`pk_test_${'x'.repeat(40)}`);
      const refused = await bogus.agents.listAgents({}).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(UnauthenticatedApiError);
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as UnauthenticatedApiError).code).toBe(Code.Unauthenticated);
      expect((refused as UnauthenticatedApiError).procedure).toContain('/parley.api.v1.AgentService/ListAgents');

      const { secret } = await client.apiKeys.createApiKey({ name: 'sessions-only', scopes: ['sessions:create'] });
      const narrow = clientFor(secret);
      const denied = await narrow.agents.listAgents({}).catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(PermissionDeniedApiError);
      expect((denied as Error).message).toMatch(/agents:read/);

      const missing = await client.agents.getAgent({ agentId: '0190d3b2-0000-7000-8000-000000000000' }).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(NotFoundApiError);
    });

    it("refuses a message over the edge's 1 MiB limit before sending it, so the connection keeps delivering later answers", async () => {
      // Its own client, so its own HTTP/2 connection: what an oversized call leaves behind stays here.
      const c = clientFor(stack.bootstrap.apiKey);
      const prompt = 'x'.repeat(6 * 1024 * 1024);
      const refusals = [];
      for (const name of ['too-big-1', 'too-big-2']) refusals.push(await c.agents.createAgent({ name, prompt }).catch((e: unknown) => e));
      // A write on the same connection after them: the edge creates the agent, and the caller must be told so.
      const answer = await c.agents.createAgent({ name: 'after-too-big', prompt: 'x' }).catch((e: unknown) => e);
      const { agents } = await client.agents.listAgents({ pageSize: 500 });
      expect(agents.map((a) => a.name)).toContain('after-too-big');
      expect(answer instanceof Error ? answer.message : (answer as { agent?: { name: string } }).agent?.name).toBe('after-too-big');
      for (const refused of refusals) {
        expect(refused).toBeInstanceOf(ParleyApiError);
        expect((refused as ParleyApiError).code, (refused as Error).message).toBe(Code.ResourceExhausted);
        expect((refused as Error).message).toMatch(/larger than configured \w+ 1048576/);
      }
      expect(agents.map((a) => a.name)).not.toContain('too-big-1');
    });

    it('asks the token source again after UNAUTHENTICATED (the hook a refreshing OIDC source uses)', async () => {
      let invalidated = 0;
      let calls = 0;
      const source = {
        token: () => (calls++ === 0 ? 'pk_test_revoked_or_expired' : stack.bootstrap.apiKey),
        invalidate: () => void invalidated++,
      };
      const c = createParleyNodeClient({ baseUrl: stack.publicUrl, ca: stack.ca, credentials: source });
      await expect(c.account.whoAmI({})).rejects.toBeInstanceOf(UnauthenticatedApiError);
      expect(invalidated).toBe(1);
      expect((await c.account.whoAmI({})).tenantId).toBe(stack.bootstrap.tenantId);
    });

    it('retries while the API refuses connections and succeeds once it is back, for reads and (never sent) writes alike', async () => {
      // A TCP relay to the edge on a port that is closed at first: the edge "restarting".
      const port = await freePort();
      const edgePort = Number(new URL(stack.publicUrl).port);
      const retries: number[] = [];
      const flaky = createParleyNodeClient({
        baseUrl: `https://localhost:${port}`,
        ca: stack.ca,
        apiKey: stack.bootstrap.apiKey,
        httpVersion: '1.1',
        retry: { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 300, onRetry: ({ attempt }) => retries.push(attempt) },
      });
      let relay: TcpServer | undefined;
      // The port opens once the client has been refused and is retrying (not after a fixed 500 ms,
      // which on a loaded machine could outlast its whole retry budget of about 3 s).
      const opened = (async () => {
        const deadline = Date.now() + 30_000;
        while (retries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await new Promise<void>((resolve) => {
          relay = createTcpServer((socket) => {
            const upstream = tcpConnect(edgePort, '127.0.0.1');
            socket.pipe(upstream).pipe(socket);
            socket.on('error', () => upstream.destroy());
            upstream.on('error', () => socket.destroy());
          }).listen(port, '127.0.0.1', () => resolve());
        });
      })();
      try {
        const { agents } = await flaky.agents.listAgents({});
        expect(agents.length).toBeGreaterThan(0);
        expect(retries.length).toBeGreaterThanOrEqual(1);
        await opened;
        const { agent } = await flaky.agents.createAgent({ name: 'after-restart', prompt: 'x' });
        expect(agent?.name).toBe('after-restart');
      } finally {
        await opened;
        await new Promise((r) => relay?.close(r));
      }
    });

    it('gives up after maxAttempts with UnavailableApiError when nothing ever answers', async () => {
      const port = await freePort();
      const retries: number[] = [];
      const dead = createParleyNodeClient({
        baseUrl: `https://localhost:${port}`,
        apiKey: stack.bootstrap.apiKey,
        retry: { maxAttempts: 3, initialDelayMs: 10, onRetry: ({ attempt }) => retries.push(attempt) },
      });
      await expect(dead.agents.listAgents({})).rejects.toBeInstanceOf(UnavailableApiError);
      expect(retries).toEqual([1, 2]);
    });
  });

  describe('retries against a server that answers UNAVAILABLE', () => {
    let server: Server;
    let baseUrl: string;
    const calls = { listAgents: 0, createAgent: 0 };

    beforeAll(async () => {
      const routes = (router: ConnectRouter) =>
        router.service(AgentService, {
          listAgents() {
            calls.listAgents += 1;
            if (calls.listAgents <= 2)
              throw new ConnectError('a Parley service is temporarily unavailable; retry shortly', Code.Unavailable);
            return { agents: [{ id: 'a1', name: 'back' }], nextPageToken: '' };
          },
          createAgent() {
            calls.createAgent += 1;
            throw new ConnectError('a Parley service is temporarily unavailable; retry shortly', Code.Unavailable);
          },
        });
      server = createHttpServer(connectNodeAdapter({ routes }));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const address = server.address();
      baseUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    });

    afterAll(async () => {
      await new Promise((r) => server.close(r));
    });

    it('repeats a read that failed UNAVAILABLE twice, backing off, and returns the third answer', async () => {
      const waits: number[] = [];
      const c = createParleyNodeClient({
        baseUrl,
        httpVersion: '1.1',
        apiKey: 'pk_test_local',
        retry: { initialDelayMs: 50, random: () => 0.5, onRetry: ({ delayMs }) => waits.push(delayMs) },
      });
      const { agents } = await c.agents.listAgents({});
      expect(agents[0]?.name).toBe('back');
      expect(calls.listAgents).toBe(3);
      // Exponential: 50 then 100 ceilings, half of each fixed and half jittered (random 0.5).
      expect(waits).toEqual([38, 75]);
    });

    it('does not repeat a create the server may have carried out, and surfaces UnavailableApiError', async () => {
      const c = createParleyNodeClient({ baseUrl, httpVersion: '1.1', apiKey: 'pk_test_local', retry: { initialDelayMs: 10 } });
      await expect(c.agents.createAgent({ name: 'x' })).rejects.toBeInstanceOf(UnavailableApiError);
      expect(calls.createAgent).toBe(1);
    });
  });
}
