// The console's connection to the edge. The session is the edge's HTTP-only cookie, which this
// script can neither read nor send anywhere else; what it holds is the session's CSRF token (from
// GET /auth/session), sent as a header on every API call so that the cookie alone, which the
// browser attaches to any request, never suffices. No bearer token ever lives in JavaScript.
import { ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { createParleyClient, type ParleyClient } from '@parley/client';
import { PrivacyService } from '@parley/proto/parley/api/v1/privacy_pb.js';

/** CSRF_HEADER is the header the edge checks against the session cookie. */
export const CSRF_HEADER = 'x-parley-csrf';

/** Session is what GET /auth/session says about the signed-in operator. */
export interface Session {
  readonly workspaceId: string;
  readonly member: { readonly id: string; readonly email: string; readonly displayName: string; readonly role: string };
  readonly scopes: readonly string[];
  readonly csrfToken: string;
  readonly expiresAt?: string;
  /** workspaces are those the person may switch to (the current one included). */
  readonly workspaces?: readonly { readonly id: string; readonly name: string }[];
}

/** SessionState is the outcome of asking the edge who is signed in. */
export type SessionState =
  | { readonly kind: 'signed-in'; readonly session: Session }
  | { readonly kind: 'signed-out'; readonly message: string }
  | { readonly kind: 'unavailable'; readonly message: string };

/** loadSession asks the edge for the cookie's session (the cookie goes along; the script never sees it). */
export async function loadSession(): Promise<SessionState> {
  let res: Response;
  try {
    res = await fetch('/auth/session', { credentials: 'same-origin', cache: 'no-store' });
  } catch {
    return { kind: 'unavailable', message: 'The Parley edge cannot be reached. Check that it is running.' };
  }
  const body = (await res.json().catch(() => ({}))) as Partial<Session> & { error?: string };
  if (res.status === 200) return { kind: 'signed-in', session: body as Session };
  if (res.status === 401) return { kind: 'signed-out', message: body.error ?? 'Not signed in.' };
  if (res.status === 404) return { kind: 'unavailable', message: 'Operator sign-in is not configured on this edge (PARLEY_OIDC_ISSUER).' };
  return { kind: 'unavailable', message: body.error ?? `The edge answered ${res.status}.` };
}

/** signOut ends the session at the edge (POST /auth/logout with the CSRF header). */
export async function signOut(session: Session): Promise<void> {
  const res = await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin', headers: { [CSRF_HEADER]: session.csrfToken } });
  if (!res.ok && res.status !== 401) throw new Error(`sign-out failed: the edge answered ${res.status}`);
}

/** switchWorkspace ends this session and signs in again to another of the person's workspaces (the identity provider confirms who they are). */
export async function switchWorkspace(session: Session, workspaceId: string): Promise<void> {
  await signOut(session);
  window.location.assign(`/auth/login?workspace=${encodeURIComponent(workspaceId)}&return_to=${encodeURIComponent('/console')}`);
}

/** Api is the typed public API client plus the services ParleyClient does not list. */
export interface Api extends ParleyClient {
  readonly privacy: ReturnType<typeof createClient<typeof PrivacyService>>;
}

/** createApi makes the typed client over Connect JSON on the edge's own origin, with the session's CSRF header. */
export function createApi(session: Session): Api {
  const csrf: Interceptor = (next) => (req) => {
    req.header.set(CSRF_HEADER, session.csrfToken);
    return next(req);
  };
  const client = createParleyClient({
    interceptors: [csrf],
    transport: (interceptors) =>
      createConnectTransport({
        baseUrl: window.location.origin,
        interceptors,
        fetch: (input, init) => fetch(input, { ...init, credentials: 'same-origin' }),
      }),
  });
  return { ...client, privacy: createClient(PrivacyService, client.transport) };
}

/** errorText is what a failed call says to a person: the API's own message, which says what to fix. */
export function errorText(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage;
  if (err instanceof Error) return err.message;
  return String(err);
}
