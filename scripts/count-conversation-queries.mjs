// Counts what conversations cost Postgres on the dev stack (one replica of each service):
// statements (pg_stat_statements, by login role, i.e. by service) and rows written (per schema),
// over CONVERSATIONS conversations (CreateSession, start, TURNS user turns, end), minus what the
// stack does on its own (relays, timers, workers) in an idle window of the same length.
// Run after `pnpm run build`: node scripts/count-conversation-queries.mjs [conversations] [turns]
// Writes the figures as JSON to stdout; README's "Capacity model" quotes one run.
import { mkdtemp, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(join(root, 'test', 'package.json'));
const { default: pg } = await import(require.resolve('pg'));
const { default: WebSocket } = await import(require.resolve('ws'));
const { loadDevStackConfig, startDevStack } = await import(join(root, 'packages/devstack/dist/index.js'));

const CONVERSATIONS = Number(process.argv[2] ?? 20);
const TURNS = Number(process.argv[3] ?? 1);
const dir = await mkdtemp(join(tmpdir(), 'parley-cost-'));
const env = { PARLEY_DEV_DIR: dir, PARLEY_DEV_PORT_BASE: '14600', PARLEY_LOG_LEVEL: 'warn' };
const quiet = () => undefined;

// First start: create the data folder, then have Postgres load pg_stat_statements from the next start on.
let stack = await startDevStack(loadDevStackConfig(env, root), quiet);
let admin = new pg.Client({ connectionString: stack.info.databaseUrl });
await admin.connect();
await admin.query(`alter system set shared_preload_libraries = 'pg_stat_statements'`);
// track = top (the default): statements the services sent, i.e. round trips, not those run
// inside functions.
await admin.query(`alter system set pg_stat_statements.track = 'top'`);
await admin.end();
await stack.stop();
stack = await startDevStack(loadDevStackConfig(env, root), quiet);
admin = new pg.Client({ connectionString: stack.info.databaseUrl });
await admin.connect();
await admin.query('create extension if not exists pg_stat_statements');
const ca = await readFile(stack.info.caCert);
const { apiKey, agentId } = stack.info.bootstrap;

function post(path, body) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${stack.info.edgeUrl}${path}`,
      { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
            : reject(new Error(`${path}: ${res.statusCode} ${Buffer.concat(chunks)}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function conversation(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(stack.info.sessionUrl, { ca });
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', token })));
    let turns = 0;
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString('utf8'));
      if (frame.type === 'ready') ws.send(JSON.stringify({ type: 'user_text', text: 'hello' }));
      if (frame.type === 'assistant_text' && frame.final === true) {
        turns++;
        ws.send(JSON.stringify(turns < TURNS ? { type: 'user_text', text: `turn ${turns}` } : { type: 'end' }));
      }
    });
    ws.once('close', (code) => (code === 1000 ? resolve() : reject(new Error(`closed ${code}`))));
  });
}

async function snapshot() {
  const statements = await admin.query(
    `select r.rolname as role, sum(s.calls)::bigint as calls
       from pg_stat_statements s join pg_roles r on r.oid = s.userid
      where r.rolname like 'parley\\_%' and r.rolname <> current_user group by r.rolname`,
  );
  const rows = await admin.query(
    `select schemaname as schema, sum(n_tup_ins)::bigint as ins, sum(n_tup_upd)::bigint as upd, sum(n_tup_del)::bigint as del
       from pg_stat_user_tables where schemaname like 'parley\\_%' group by schemaname`,
  );
  const commits = await admin.query(`select xact_commit::bigint as n from pg_stat_database where datname = current_database()`);
  await admin.query('select pg_stat_clear_snapshot()');
  return {
    commits: { all: Number(commits.rows[0].n) },
    calls: Object.fromEntries(statements.rows.map((r) => [r.role, Number(r.calls)])),
    rows: Object.fromEntries(rows.rows.map((r) => [r.schema, Number(r.ins) + Number(r.upd) + Number(r.del)])),
    ins: Object.fromEntries(rows.rows.map((r) => [r.schema, Number(r.ins)])),
  };
}
const diff = (a, b) => Object.fromEntries(Object.keys({ ...a, ...b }).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));

// Let start-up work settle, then an idle window.
await new Promise((r) => setTimeout(r, 5_000));
const idle0 = await snapshot();
const t0 = Date.now();
await new Promise((r) => setTimeout(r, 10_000));
const idle1 = await snapshot();
const idleMs = Date.now() - t0;

const busy0 = await snapshot();
const t1 = Date.now();
for (let i = 0; i < CONVERSATIONS; i++) {
  const { token } = await post('/parley.api.v1.SessionService/CreateSession', { agentId });
  await conversation(token);
}
// Outbox relays and the webhook worker finish within a few seconds.
await new Promise((r) => setTimeout(r, 5_000));
const busyMs = Date.now() - t1;
const busy1 = await snapshot();

const scale = busyMs / idleMs;
const perConversation = (busy, idle) =>
  Object.fromEntries(Object.entries(busy).map(([k, v]) => [k, Math.round(((v - (idle[k] ?? 0) * scale) / CONVERSATIONS) * 10) / 10]));
const result = {
  conversations: CONVERSATIONS,
  turnsPerConversation: TURNS,
  idleMs,
  busyMs,
  statementsPerConversationByRole: perConversation(diff(busy0.calls, busy1.calls), diff(idle0.calls, idle1.calls)),
  // Every transaction in the database, the measuring queries' own (4 per snapshot pair) included.
  commitsPerConversation: perConversation(diff(busy0.commits, busy1.commits), diff(idle0.commits, idle1.commits)),
  rowsWrittenPerConversationBySchema: perConversation(diff(busy0.rows, busy1.rows), diff(idle0.rows, idle1.rows)),
  rowsInsertedPerConversationBySchema: perConversation(diff(busy0.ins, busy1.ins), diff(idle0.ins, idle1.ins)),
  idleStatementsPerSecondByRole: Object.fromEntries(
    Object.entries(diff(idle0.calls, idle1.calls)).map(([k, v]) => [k, Math.round((v / idleMs) * 10000) / 10]),
  ),
};
console.log(JSON.stringify(result, null, 2));
await admin.end();
await stack.stop();
