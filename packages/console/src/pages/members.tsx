// Members and roles: the list, a role change per member, add and remove (the API keeps the last
// owner from being demoted or removed, and says so).
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { ErrorNote, Field, LoadState, PageTitle, useAction, useLoad, when } from '../ui.js';

/** ROLES are a member's possible roles, most powerful first (@parley/scopes ROLES). */
const ROLES = ['owner', 'admin', 'developer', 'viewer'] as const;

/** MembersPage is /console/members. */
export function MembersPage({ api, session }: PageProps) {
  const members = useLoad(async () => (await api.members.listMembers({})).members);
  const action = useAction();
  const [email, setEmail] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [role, setRole] = useState<string>('developer');
  const onAdd = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      await api.members.addMember({ email, displayName, role });
      setEmail('');
      setDisplayName('');
      members.reload();
    });
  };
  const changeRole = (memberId: string, newRole: string) =>
    void action.run(async () => {
      await api.members.updateMemberRole({ memberId, role: newRole });
      members.reload();
    });
  const remove = (memberId: string, who: string) => {
    if (!window.confirm(`Remove ${who} from this workspace?`)) return;
    void action.run(async () => {
      await api.members.removeMember({ memberId });
      members.reload();
    });
  };
  return (
    <>
      <PageTitle>Members</PageTitle>
      <ErrorNote error={action.error} />
      <LoadState loaded={members} />
      {members.data === undefined ? null : (
        <table id="members">
          <caption>Members and their roles</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">E-mail</th>
              <th scope="col">Role</th>
              <th scope="col">Added</th>
              <th scope="col">Remove</th>
            </tr>
          </thead>
          <tbody>
            {members.data.map((m) => (
              <tr key={m.id}>
                <td>
                  {m.displayName}
                  {m.id === session.member.id ? ' (you)' : ''}
                </td>
                <td>{m.email}</td>
                <td>
                  <label>
                    <span class="sr-only">Role of {m.email}</span>
                    <select value={m.role} disabled={action.busy} onChange={(e) => changeRole(m.id, e.currentTarget.value)}>
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                  </label>
                </td>
                <td>{when(m.createdAt)}</td>
                <td>
                  <button type="button" class="danger" disabled={action.busy} onClick={() => remove(m.id, m.email)}>
                    Remove<span class="sr-only"> {m.email}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onAdd} aria-labelledby="add-member">
        <h2 id="add-member">Add a member</h2>
        <p class="hint">They sign in with this e-mail address at your identity provider.</p>
        <Field label="E-mail">
          <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <Field label="Display name">
          <input value={displayName} onInput={(e) => setDisplayName(e.currentTarget.value)} />
        </Field>
        <Field label="Role">
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit" disabled={action.busy}>
          Add member
        </button>
      </form>
    </>
  );
}
