// The console's entry: asks the edge who is signed in (the HTTP-only cookie goes along), shows
// the sign-in page or the shell (navigation, workspace, sign-out) and the page of the route.
import { render, type ComponentType } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { createApi, loadSession, signOut, switchWorkspace, type Session, type SessionState } from './api.js';
import type { PageProps } from './page-props.js';
import { href, onLinkClick, useRoute } from './router.js';
import { ErrorNote, Notice } from './ui.js';
import { AgentsPage } from './pages/agents.js';
import { ApiKeysPage } from './pages/api-keys.js';
import { AuditPage } from './pages/audit.js';
import { ConversationsPage } from './pages/conversations.js';
import { MembersPage } from './pages/members.js';
import { OverviewPage } from './pages/overview.js';
import { PrivacyPage } from './pages/privacy.js';
import { SecretsPage } from './pages/secrets.js';
import { WebhooksPage } from './pages/webhooks.js';
import { WorkspacesPage } from './pages/workspaces.js';

/** PAGES are the navigation, in order: path segment, label, component, and the scope a page needs to be listed. */
const PAGES: readonly {
  readonly page: string;
  readonly label: string;
  readonly component: ComponentType<PageProps>;
  readonly scope?: string;
}[] = [
  { page: 'overview', label: 'Overview', component: OverviewPage },
  { page: 'agents', label: 'Agents', component: AgentsPage },
  { page: 'secrets', label: 'Secrets', component: SecretsPage },
  { page: 'api-keys', label: 'API keys', component: ApiKeysPage },
  { page: 'audit', label: 'Audit log', component: AuditPage },
  { page: 'members', label: 'Members', component: MembersPage },
  { page: 'conversations', label: 'Conversations', component: ConversationsPage },
  { page: 'webhooks', label: 'Webhooks', component: WebhooksPage },
  { page: 'privacy', label: 'Privacy', component: PrivacyPage },
  { page: 'workspaces', label: 'Workspaces', component: WorkspacesPage, scope: 'deployment:admin' },
];

/** WorkspaceSwitcher lets someone in several workspaces sign in to another one. */
function WorkspaceSwitcher({ session, onError }: { session: Session; onError: (e: unknown) => void }) {
  const workspaces = session.workspaces ?? [];
  if (workspaces.length < 2) return null;
  return (
    <label class="switcher">
      <span class="sr-only">Workspace</span>
      <select
        id="workspace-switch"
        value={session.workspaceId}
        onChange={(e) => {
          const id = e.currentTarget.value;
          if (id !== session.workspaceId) switchWorkspace(session, id).catch(onError);
        }}
      >
        {workspaces.map((w) => (
          <option key={w.id} value={w.id}>
            {w.name === '' ? w.id : `${w.name} (${w.id.slice(0, 8)})`}
          </option>
        ))}
      </select>
    </label>
  );
}

function SignIn({ message }: { message: string }) {
  const returnTo = encodeURIComponent(window.location.pathname + window.location.search);
  // /console?workspace=<id> signs in to that workspace (someone may be a member of several).
  const workspace = new URLSearchParams(window.location.search).get('workspace');
  const signInUrl = `/auth/login?return_to=${returnTo}${workspace === null ? '' : `&workspace=${encodeURIComponent(workspace)}`}`;
  return (
    <main id="main" class="signin">
      <h1>Parley console</h1>
      <p>{message}</p>
      <p>
        <a class="button" id="sign-in" href={signInUrl}>
          Sign in
        </a>
      </p>
      <p class="hint">You sign in with your organisation's identity provider; the console keeps no password or token of its own.</p>
    </main>
  );
}

function Shell({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const api = useMemo(() => createApi(session), [session]);
  const route = useRoute();
  const [signOutError, setSignOutError] = useState<unknown>(undefined);
  const pages = PAGES.filter((p) => p.scope === undefined || session.scopes.includes(p.scope));
  const current = pages.find((p) => p.page === route.page);
  useEffect(() => {
    document.title = `${current?.label ?? 'Not found'} · Parley console`;
  }, [current]);
  const doSignOut = () => {
    signOut(session).then(onSignedOut, setSignOutError);
  };
  const Page = current?.component;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Parley</span>
        <span class="who" id="who">
          {session.member.displayName || session.member.email} · {session.member.role} · workspace <code>{session.workspaceId}</code>
        </span>
        <WorkspaceSwitcher session={session} onError={setSignOutError} />
        <button type="button" id="sign-out" onClick={doSignOut}>
          Sign out
        </button>
      </header>
      <ErrorNote error={signOutError} />
      <div class="layout">
        <nav aria-label="Console" onClick={onLinkClick}>
          <ul>
            {pages.map((p) => (
              <li key={p.page}>
                <a href={href(p.page)} aria-current={p.page === route.page ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" onClick={onLinkClick}>
          {Page === undefined ? (
            <>
              <h1>Not found</h1>
              <p>There is no console page “{route.page}”.</p>
            </>
          ) : (
            <Page key={`${route.page}/${route.id ?? ''}`} api={api} session={session} id={route.id} />
          )}
        </main>
      </div>
    </>
  );
}

function App() {
  const [state, setState] = useState<SessionState | undefined>(undefined);
  const refresh = () => {
    loadSession().then(setState, (e: unknown) => setState({ kind: 'unavailable', message: String(e) }));
  };
  useEffect(refresh, []);
  if (state === undefined) return <Notice>Loading the Parley console…</Notice>;
  if (state.kind === 'signed-in')
    return <Shell session={state.session} onSignedOut={() => setState({ kind: 'signed-out', message: 'You have signed out.' })} />;
  if (state.kind === 'signed-out') return <SignIn message={state.message} />;
  return (
    <main id="main" class="signin">
      <h1>Parley console</h1>
      <p role="alert">{state.message}</p>
    </main>
  );
}

const root = document.getElementById('app');
if (root !== null) {
  root.textContent = '';
  render(<App />, root);
}
