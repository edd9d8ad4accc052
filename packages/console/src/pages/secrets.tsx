// Secrets: metadata only. A value goes in through a password field, is sent once, and the field
// is cleared at once; nothing the API returns carries it, and the page never renders it back.
// Delete asks for confirmation first: agents that name the secret can no longer use it.
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, useAction, useLoad, when } from '../ui.js';

/** PROVIDER_KINDS are what a secret can be for (secrets.proto). */
const PROVIDER_KINDS = ['llm', 'stt', 'tts', 'telephony', 'webhook', 'tool'] as const;

function RotateForm({
  api,
  secretId,
  version,
  onDone,
}: Pick<PageProps, 'api'> & { secretId: string; version: number; onDone: () => void }) {
  const [value, setValue] = useState('');
  const action = useAction();
  const onSubmit = (e: Event) => {
    e.preventDefault();
    const v = value;
    setValue('');
    void action.run(async () => {
      await api.secrets.rotateSecret({ secretId, value: v, expectedVersion: version });
      onDone();
    });
  };
  return (
    <form class="inline" onSubmit={onSubmit}>
      <Field label="New value">
        <input type="password" autocomplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </Field>
      <button type="submit" disabled={action.busy}>
        Rotate
      </button>
      <ErrorNote error={action.error} />
    </form>
  );
}

/** SecretsPage is /console/secrets. */
export function SecretsPage({ api }: PageProps) {
  const secrets = useLoad(async () => (await api.secrets.listSecrets({ pageSize: 100 })).secrets);
  const put = useAction();
  const [name, setName] = useState('');
  const [kind, setKind] = useState<string>('llm');
  const [value, setValue] = useState('');
  const [done, setDone] = useState('');
  const remove = useAction();
  const onDelete = (id: string, secretName: string) => {
    if (!window.confirm(`Delete the secret "${secretName}" and every version of it? Agents that use it can no longer start conversations.`))
      return;
    setDone('');
    void remove.run(async () => {
      await api.secrets.deleteSecret({ secretId: id });
      setDone(`Deleted ${secretName}.`);
      secrets.reload();
    });
  };
  const onPut = (e: Event) => {
    e.preventDefault();
    const v = value;
    // The value leaves the page's state before the call: nothing keeps it once it is sent.
    setValue('');
    setDone('');
    void put.run(async () => {
      const res = await api.secrets.putSecret({ name, providerKind: kind, value: v });
      setDone(`Stored ${res.secret?.name ?? name} (version ${res.secret?.version ?? '?'}).`);
      setName('');
      secrets.reload();
    });
  };
  return (
    <>
      <PageTitle>Secrets</PageTitle>
      <p>Provider credentials are encrypted when they arrive and are never shown again, here or anywhere: only their metadata is.</p>
      <LoadState loaded={secrets} />
      <ErrorNote error={remove.error} />
      {secrets.data === undefined ? null : secrets.data.length === 0 ? (
        <Notice>No secrets yet.</Notice>
      ) : (
        <table id="secrets">
          <caption>Secrets (metadata only)</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Ends in</th>
              <th scope="col">Version</th>
              <th scope="col">Set by</th>
              <th scope="col">Set at</th>
              <th scope="col">Last used</th>
              <th scope="col">Rotate</th>
              <th scope="col">Delete</th>
            </tr>
          </thead>
          <tbody>
            {secrets.data.map((s) => (
              <tr key={s.id}>
                <td>{s.name}</td>
                <td>{s.providerKind}</td>
                <td>{s.hint === '' ? '—' : `…${s.hint}`}</td>
                <td>{s.version}</td>
                <td>{s.setBy}</td>
                <td>{when(s.setAt)}</td>
                <td>{when(s.lastUsedAt) || 'never'}</td>
                <td>
                  <RotateForm api={api} secretId={s.id} version={s.version} onDone={secrets.reload} />
                </td>
                <td>
                  <button type="button" class="danger" disabled={remove.busy} onClick={() => onDelete(s.id, s.name)}>
                    Delete<span class="sr-only"> {s.name}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onPut} aria-labelledby="put-secret">
        <h2 id="put-secret">Put a secret</h2>
        <Field label="Name" hint="Agents refer to it by this name.">
          <input id="secret-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Kind">
          <select id="secret-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            {PROVIDER_KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Value" hint="Write-only: it is encrypted at once and never returned.">
          <input
            id="secret-value"
            type="password"
            autocomplete="off"
            required
            value={value}
            onInput={(e) => setValue(e.currentTarget.value)}
          />
        </Field>
        <ErrorNote error={put.error} />
        {done === '' ? null : <Notice>{done}</Notice>}
        <button type="submit" id="secret-put" disabled={put.busy}>
          Store secret
        </button>
      </form>
    </>
  );
}
