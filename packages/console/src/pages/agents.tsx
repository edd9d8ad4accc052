// Agents and their guardrail policies: the list and a create form; an agent's page with its
// policy in a form (no-go zones) and in a raw JSON editor over the same draft, saved with the
// version it was read at; and a "try it" pane that runs TestGuardrailPolicy on the draft.
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { href, navigate } from '../router.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, useAction, useLoad, when } from '../ui.js';

/** ZONE_ACTIONS are a no-go zone's possible actions (see packages/guardrails/README.md). */
const ZONE_ACTIONS = ['replace', 'escalate', 'handoff', 'end'] as const;

/** Zone is the part of a version-2 no-go zone the form edits; other keys are kept as they are. */
interface Zone {
  readonly id: string;
  readonly phrases: readonly string[];
  readonly action: string;
  readonly response: string;
  readonly rest: JsonObject;
}

function zonesOf(doc: JsonObject): Zone[] {
  const zones = Array.isArray(doc['noGoZones']) ? doc['noGoZones'] : [];
  return zones.map((z) => {
    const o = (typeof z === 'object' && z !== null && !Array.isArray(z) ? z : {}) as JsonObject;
    const { id, phrases, action, response, ...rest } = o;
    return {
      id: typeof id === 'string' ? id : '',
      phrases: Array.isArray(phrases) ? phrases.filter((p): p is string => typeof p === 'string') : [],
      action: typeof action === 'string' ? action : 'replace',
      response: typeof response === 'string' ? response : '',
      rest,
    };
  });
}

function withZones(doc: JsonObject, zones: readonly Zone[]): JsonObject {
  return {
    ...doc,
    noGoZones: zones.map((z): JsonValue => ({
      ...z.rest,
      id: z.id,
      phrases: [...z.phrases],
      action: z.action,
      ...(z.response === '' ? {} : { response: z.response }),
    })),
  };
}

function AgentList({ api }: PageProps) {
  const agents = useLoad(async () => (await api.agents.listAgents({ pageSize: 100 })).agents);
  const create = useAction();
  const [name, setName] = useState('');
  const [prompt, setPrompt] = useState('');
  const onCreate = (e: Event) => {
    e.preventDefault();
    void create.run(async () => {
      const res = await api.agents.createAgent({ name, prompt });
      if (res.agent !== undefined) navigate(href('agents', res.agent.id));
    });
  };
  return (
    <>
      <PageTitle>Agents</PageTitle>
      <LoadState loaded={agents} />
      {agents.data === undefined ? null : agents.data.length === 0 ? (
        <Notice>No agents yet: create one below.</Notice>
      ) : (
        <table>
          <caption>Agents of this workspace</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Policy version</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {agents.data.map((a) => (
              <tr key={a.id}>
                <td>
                  <a href={href('agents', a.id)}>{a.name}</a>
                </td>
                <td>{a.policyVersion}</td>
                <td>{when(a.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onCreate} aria-labelledby="create-agent">
        <h2 id="create-agent">Create an agent</h2>
        <Field label="Name">
          <input id="agent-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Prompt" hint="What the agent is told before every conversation.">
          <textarea id="agent-prompt" rows={4} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
        </Field>
        <ErrorNote error={create.error} />
        <button type="submit" disabled={create.busy}>
          Create agent
        </button>
      </form>
    </>
  );
}

/** PhrasesInput edits a list as comma-separated text; the text is its own, so typing a comma or a space is never undone. */
function PhrasesInput({ phrases, onChange }: { phrases: readonly string[]; onChange: (p: string[]) => void }) {
  const [text, setText] = useState(phrases.join(', '));
  return (
    <input
      class="zone-phrases"
      value={text}
      onInput={(e) => {
        setText(e.currentTarget.value);
        onChange(
          e.currentTarget.value
            .split(',')
            .map((p) => p.trim())
            .filter((p) => p !== ''),
        );
      }}
    />
  );
}

function ZoneForm({ doc, onChange }: { doc: JsonObject; onChange: (d: JsonObject) => void }) {
  if (doc['version'] !== 2)
    return (
      <Notice>
        This policy is a version {String(doc['version'])} document: edit it in the raw editor (it is upgraded to version 2 on read).
      </Notice>
    );
  const zones = zonesOf(doc);
  const set = (i: number, patch: Partial<Zone>) =>
    onChange(
      withZones(
        doc,
        zones.map((z, j) => (j === i ? { ...z, ...patch } : z)),
      ),
    );
  return (
    <fieldset class="zones">
      <legend>No-go zones</legend>
      {zones.length === 0 ? <p>No zones: the agent may talk about anything.</p> : null}
      {zones.map((z, i) => (
        <div class="zone" key={i} role="group" aria-label={`Zone ${i + 1}`}>
          <Field label="Zone id" hint="a-z, 0-9, _ and -; the rule id is no_go:<id>">
            <input class="zone-id" value={z.id} onInput={(e) => set(i, { id: e.currentTarget.value })} />
          </Field>
          <Field label="Phrases" hint="Comma-separated; whole words, any case.">
            <PhrasesInput phrases={z.phrases} onChange={(phrases) => set(i, { phrases })} />
          </Field>
          <Field label="Action">
            <select class="zone-action" value={z.action} onChange={(e) => set(i, { action: e.currentTarget.value })}>
              {ZONE_ACTIONS.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Response" hint="What the agent says instead (required for replace).">
            <input class="zone-response" value={z.response} onInput={(e) => set(i, { response: e.currentTarget.value })} />
          </Field>
          <button
            type="button"
            onClick={() =>
              onChange(
                withZones(
                  doc,
                  zones.filter((_, j) => j !== i),
                ),
              )
            }
          >
            Remove zone {z.id}
          </button>
        </div>
      ))}
      <button
        type="button"
        id="add-zone"
        onClick={() => onChange(withZones(doc, [...zones, { id: '', phrases: [], action: 'replace', response: '', rest: {} }]))}
      >
        Add a no-go zone
      </button>
    </fieldset>
  );
}

interface TryResult {
  readonly kind: string;
  readonly ruleId: string;
  readonly reason: string;
  readonly text: string;
}

function TryIt({ api, doc }: Pick<PageProps, 'api'> & { doc: JsonObject }) {
  const [text, setText] = useState('');
  const [type, setType] = useState('assistant_sentence');
  const [result, setResult] = useState<TryResult | undefined>(undefined);
  const action = useAction();
  const onTry = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      setResult(undefined);
      const res = await api.agents.testGuardrailPolicy({
        policy: { case: 'guardrailPolicy', value: doc },
        // Now, in this browser's time zone: sleep windows and holidays apply as they would to a caller here.
        now: timestampNow(),
        timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        events: [
          { type: 'conversation_start', direction: 'inbound' },
          { type, text },
        ],
      });
      const d = res.results.at(-1)?.decision;
      const details = d?.details ?? {};
      setResult({
        kind: d?.kind ?? 'allow',
        ruleId: d?.ruleId ?? '',
        reason: d?.reason ?? '',
        text: typeof details['text'] === 'string' ? details['text'] : typeof details['message'] === 'string' ? details['message'] : '',
      });
    });
  };
  return (
    <section class="card" aria-labelledby="try-it">
      <h2 id="try-it">Try it</h2>
      <p class="hint">
        Runs the draft policy above (saved or not) on one sentence, now, as a new person's first conversation in your time zone.
      </p>
      <form onSubmit={onTry}>
        <Field label="Who says it">
          <select id="try-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="assistant_sentence">the agent</option>
            <option value="user_turn">the caller</option>
          </select>
        </Field>
        <Field label="Sentence">
          <input id="try-text" required value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </Field>
        <ErrorNote error={action.error} />
        <button type="submit" id="try-run" disabled={action.busy}>
          Try
        </button>
      </form>
      {result === undefined ? null : (
        <div id="try-result" class={`decision ${result.kind === 'allow' ? 'allowed' : 'refused'}`} role="status" data-kind={result.kind}>
          {result.kind === 'allow' ? (
            <p>
              <strong>Allowed.</strong> The policy lets this through.
            </p>
          ) : (
            <>
              <p>
                <strong>Refused</strong>: {result.kind} by rule <code>{result.ruleId}</code>.
              </p>
              {result.reason === '' ? null : <p>{result.reason}</p>}
              {result.text === '' ? null : (
                <p>
                  Said instead: <q>{result.text}</q>
                </p>
              )}
            </>
          )}
        </div>
      )}
    </section>
  );
}

function AgentDetail({ api, id }: PageProps & { id: string }) {
  const agent = useLoad(async () => (await api.agents.getAgent({ agentId: id })).agent, [id]);
  const [draft, setDraft] = useState<JsonObject | undefined>(undefined);
  const [raw, setRaw] = useState('');
  const [rawError, setRawError] = useState('');
  const [version, setVersion] = useState<number | undefined>(undefined);
  const [tab, setTab] = useState<'form' | 'raw'>('form');
  const [saved, setSaved] = useState('');
  const save = useAction();
  const a = agent.data;
  if (a !== undefined && draft === undefined) {
    const doc = a.guardrailPolicy ?? { version: 2 };
    setDraft(doc);
    setRaw(JSON.stringify(doc, null, 2));
    setVersion(a.policyVersion);
  }
  const change = (d: JsonObject) => {
    setDraft(d);
    setRaw(JSON.stringify(d, null, 2));
    setSaved('');
  };
  const editRaw = (text: string) => {
    setRaw(text);
    setSaved('');
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the policy must be a JSON object');
      setDraft(parsed as JsonObject);
      setRawError('');
    } catch (e) {
      setRawError(e instanceof Error ? e.message : String(e));
    }
  };
  const onSave = (e: Event) => {
    e.preventDefault();
    if (draft === undefined) return;
    void save.run(async () => {
      const res = await api.agents.setGuardrailPolicy({ agentId: id, guardrailPolicy: draft, expectedPolicyVersion: version ?? 0 });
      setVersion(res.agent?.policyVersion);
      setSaved(`Saved as policy version ${res.agent?.policyVersion ?? '?'}.`);
    });
  };
  return (
    <>
      <p>
        <a href={href('agents')}>← All agents</a>
      </p>
      <PageTitle>{a?.name ?? 'Agent'}</PageTitle>
      <LoadState loaded={agent} />
      {a === undefined || draft === undefined ? null : (
        <>
          <dl class="facts">
            <dt>Id</dt>
            <dd>
              <code>{a.id}</code>
            </dd>
            <dt>Created</dt>
            <dd>{when(a.createdAt)}</dd>
            <dt>Policy version</dt>
            <dd id="policy-version">{version}</dd>
          </dl>
          <form class="card" onSubmit={onSave} aria-labelledby="policy">
            <h2 id="policy">Guardrail policy</h2>
            <div
              role="tablist"
              aria-label="Policy editor"
              onKeyDown={(e) => {
                // Arrow keys move between the two tabs (the WAI-ARIA tabs pattern).
                if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
                e.preventDefault();
                const next = tab === 'form' ? 'raw' : 'form';
                setTab(next);
                document.getElementById(`tab-${next}`)?.focus();
              }}
            >
              <button
                type="button"
                role="tab"
                id="tab-form"
                aria-selected={tab === 'form'}
                tabIndex={tab === 'form' ? 0 : -1}
                onClick={() => setTab('form')}
              >
                Form
              </button>
              <button
                type="button"
                role="tab"
                id="tab-raw"
                aria-selected={tab === 'raw'}
                tabIndex={tab === 'raw' ? 0 : -1}
                onClick={() => setTab('raw')}
              >
                Raw JSON
              </button>
            </div>
            {tab === 'form' ? (
              <div role="tabpanel" aria-labelledby="tab-form">
                <ZoneForm doc={draft} onChange={change} />
              </div>
            ) : (
              <div role="tabpanel" aria-labelledby="tab-raw">
                <Field label="Policy document (JSON)" hint="Version 2 (version 1 is still accepted). See packages/guardrails/README.md.">
                  <textarea id="policy-raw" rows={18} spellcheck={false} value={raw} onInput={(e) => editRaw(e.currentTarget.value)} />
                </Field>
                {rawError === '' ? null : (
                  <p class="error" role="alert">
                    Not valid JSON: {rawError}
                  </p>
                )}
              </div>
            )}
            <ErrorNote error={save.error} />
            {saved === '' ? null : <Notice>{saved}</Notice>}
            <button type="submit" id="policy-save" disabled={save.busy || rawError !== ''}>
              Save policy
            </button>
          </form>
          <TryIt api={api} doc={draft} />
        </>
      )}
    </>
  );
}

/** AgentsPage is /console/agents (the list) and /console/agents/<id> (one agent and its policy). */
export function AgentsPage(props: PageProps) {
  return props.id === undefined ? <AgentList {...props} /> : <AgentDetail {...props} id={props.id} />;
}
