// API keys: the list with each key's expiry, create (with an optional expiry; the secret shown
// once, in a box the person dismisses), rotate with an overlap, and revoke. Scopes offered are the
// operator's own: a key never exceeds its maker.
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, ShownOnce, useAction, useLoad, when } from '../ui.js';

/** EXPIRY_DAYS are the lifetimes offered at create (0: the key does not expire). */
const EXPIRY_DAYS = [0, 7, 30, 90, 365] as const;

/** ApiKeysPage is /console/api-keys. */
export function ApiKeysPage({ api, session }: PageProps) {
  const keys = useLoad(async () => (await api.apiKeys.listApiKeys({})).apiKeys);
  const action = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<readonly string[]>([]);
  const [secret, setSecret] = useState('');
  const [expiryDays, setExpiryDays] = useState<number>(90);
  const grantable = session.scopes.filter((s) => s !== 'deployment:admin');
  const onCreate = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const res = await api.apiKeys.createApiKey({
        name,
        scopes: [...scopes],
        ...(expiryDays === 0 ? {} : { expiresAt: timestampFromDate(new Date(Date.now() + expiryDays * 86_400_000)) }),
      });
      setSecret(res.secret);
      setName('');
      setScopes([]);
      keys.reload();
    });
  };
  const rotate = (id: string) =>
    void action.run(async () => {
      const res = await api.apiKeys.rotateApiKey({ apiKeyId: id, overlapSeconds: 3600 });
      setSecret(res.secret);
      keys.reload();
    });
  const revoke = (id: string, keyName: string) => {
    if (!window.confirm(`Revoke the key "${keyName}"? Calls with it fail at once.`)) return;
    void action.run(async () => {
      await api.apiKeys.revokeApiKey({ apiKeyId: id });
      keys.reload();
    });
  };
  return (
    <>
      <PageTitle>API keys</PageTitle>
      {secret === '' ? null : (
        <ShownOnce
          id="key-secret"
          title="Copy the new key now"
          hint="This is the only time it is shown; Parley keeps only a hash of it."
          secret={secret}
          onDismiss={() => setSecret('')}
        />
      )}
      <ErrorNote error={action.error} />
      <LoadState loaded={keys} />
      {keys.data === undefined ? null : keys.data.length === 0 ? (
        <Notice>No API keys.</Notice>
      ) : (
        <table id="api-keys">
          <caption>API keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Scopes</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => {
              const revoked = k.revokedAt !== undefined;
              return (
                <tr key={k.id} data-key={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.prefix}</code>
                  </td>
                  <td>{k.scopes.join(', ')}</td>
                  <td>{when(k.createdAt)}</td>
                  <td>{when(k.lastUsedAt) || 'never'}</td>
                  <td class="expires">{when(k.expiresAt) || 'never'}</td>
                  <td>
                    {revoked
                      ? `revoked ${when(k.revokedAt)}`
                      : k.expiresAt !== undefined && timestampDate(k.expiresAt).getTime() <= Date.now()
                        ? 'expired'
                        : 'active'}
                  </td>
                  <td>
                    {revoked ? null : (
                      <>
                        <button type="button" onClick={() => rotate(k.id)} disabled={action.busy}>
                          Rotate<span class="sr-only"> {k.name}</span>
                        </button>{' '}
                        <button type="button" class="danger" onClick={() => revoke(k.id, k.name)} disabled={action.busy}>
                          Revoke<span class="sr-only"> {k.name}</span>
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onCreate} aria-labelledby="create-key">
        <h2 id="create-key">Create a key</h2>
        <Field label="Name">
          <input id="key-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Expires" hint="After this the key stops working; rotate it before then.">
          <select id="key-expiry" value={String(expiryDays)} onChange={(e) => setExpiryDays(Number(e.currentTarget.value))}>
            {EXPIRY_DAYS.map((d) => (
              <option key={d} value={String(d)}>
                {d === 0 ? 'never' : `in ${d} days`}
              </option>
            ))}
          </select>
        </Field>
        <fieldset>
          <legend>Scopes (at most your own)</legend>
          {grantable.map((s) => (
            <label key={s} class="check">
              <input
                type="checkbox"
                value={s}
                checked={scopes.includes(s)}
                onChange={(e) => setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
              />{' '}
              {s}
            </label>
          ))}
        </fieldset>
        <button type="submit" id="key-create" disabled={action.busy}>
          Create key
        </button>
      </form>
    </>
  );
}
