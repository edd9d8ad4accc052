// Workspaces (deployment administrators only, scope deployment:admin): every workspace of the
// deployment, a new one with its first owner, another owner for one, and suspension, after which
// the workspace's keys, sessions and operators stop at once (identity checks on every call).
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, useAction, useLoad, when } from '../ui.js';

/** WorkspacesPage is /console/workspaces. */
export function WorkspacesPage({ api, session }: PageProps) {
  const workspaces = useLoad(async () => (await api.workspaces.listWorkspaces({})).workspaces);
  const action = useAction();
  const [done, setDone] = useState('');
  const [name, setName] = useState('');
  const [ownerEmail, setOwnerEmail] = useState('');
  const [ownerName, setOwnerName] = useState('');
  const [target, setTarget] = useState('');
  const [addEmail, setAddEmail] = useState('');
  const onCreate = (e: Event) => {
    e.preventDefault();
    setDone('');
    void action.run(async () => {
      const res = await api.workspaces.createWorkspace({ name, ownerEmail, ownerDisplayName: ownerName });
      setDone(`Created ${res.workspace?.name ?? name} (${res.workspace?.id ?? '?'}); ${ownerEmail} is its owner.`);
      setName('');
      setOwnerEmail('');
      setOwnerName('');
      workspaces.reload();
    });
  };
  const onAddOwner = (e: Event) => {
    e.preventDefault();
    setDone('');
    void action.run(async () => {
      await api.workspaces.addWorkspaceOwner({ workspaceId: target, email: addEmail });
      setDone(`${addEmail} is now an owner of ${target}.`);
      setAddEmail('');
    });
  };
  const suspend = (id: string, label: string) => {
    if (!window.confirm(`Suspend ${label}? Its API keys, sessions and operators stop at once.`)) return;
    setDone('');
    void action.run(async () => {
      await api.workspaces.suspendWorkspace({ workspaceId: id });
      setDone(`Suspended ${label}.`);
      workspaces.reload();
    });
  };
  const live = workspaces.data?.filter((w) => w.suspendedAt === undefined) ?? [];
  return (
    <>
      <PageTitle>Workspaces</PageTitle>
      <p class="hint">Deployment administration: every workspace of this deployment.</p>
      <ErrorNote error={action.error} />
      {done === '' ? null : <Notice>{done}</Notice>}
      <LoadState loaded={workspaces} />
      {workspaces.data === undefined ? null : (
        <table id="workspaces">
          <caption>Workspaces, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
              <th scope="col">Suspend</th>
            </tr>
          </thead>
          <tbody>
            {workspaces.data.map((w) => (
              <tr key={w.id} data-workspace={w.id}>
                <td>
                  {w.name}
                  {w.id === session.workspaceId ? ' (this one)' : ''}
                </td>
                <td>
                  <code>{w.id}</code>
                </td>
                <td>{when(w.createdAt)}</td>
                <td>{w.suspendedAt === undefined ? 'active' : `suspended ${when(w.suspendedAt)}`}</td>
                <td>
                  {w.suspendedAt === undefined ? (
                    <button type="button" class="danger" disabled={action.busy} onClick={() => suspend(w.id, w.name || w.id)}>
                      Suspend<span class="sr-only"> {w.name || w.id}</span>
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onCreate} aria-labelledby="create-workspace">
        <h2 id="create-workspace">Create a workspace</h2>
        <Field label="Name">
          <input id="workspace-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="First owner's e-mail" hint="They sign in with it at your identity provider.">
          <input id="workspace-owner" type="email" required value={ownerEmail} onInput={(e) => setOwnerEmail(e.currentTarget.value)} />
        </Field>
        <Field label="First owner's name">
          <input id="workspace-owner-name" value={ownerName} onInput={(e) => setOwnerName(e.currentTarget.value)} />
        </Field>
        <button type="submit" id="workspace-create" disabled={action.busy}>
          Create workspace
        </button>
      </form>
      <form class="card" onSubmit={onAddOwner} aria-labelledby="add-owner">
        <h2 id="add-owner">Add an owner</h2>
        <Field label="Workspace">
          <select id="owner-workspace" required value={target} onChange={(e) => setTarget(e.currentTarget.value)}>
            <option value="">Choose a workspace</option>
            {live.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name || w.id}
              </option>
            ))}
          </select>
        </Field>
        <Field label="E-mail">
          <input id="owner-email" type="email" required value={addEmail} onInput={(e) => setAddEmail(e.currentTarget.value)} />
        </Field>
        <button type="submit" id="owner-add" disabled={action.busy}>
          Add owner
        </button>
      </form>
    </>
  );
}
