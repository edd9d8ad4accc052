import type { Api, Session } from './api.js';

/** PageProps are what every console page gets: the API client, the session, and the route's id. */
export interface PageProps {
  readonly api: Api;
  readonly session: Session;
  readonly id: string | undefined;
}
