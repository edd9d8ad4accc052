// The console's routes: paths under /console, read from and written to the History API. Links
// are real <a href> elements (so they work with the keyboard, middle-click and "copy link"); a
// plain left click is handled here instead of loading the page again.
import { useEffect, useState } from 'preact/hooks';

/** BASE is where the edge serves the console. */
export const BASE = '/console';

/** Route is the page and its optional id, e.g. /console/agents/<id> → { page: 'agents', id }. */
export interface Route {
  readonly page: string;
  readonly id: string | undefined;
}

/** parseRoute reads a location path. */
export function parseRoute(path: string): Route {
  const rest = path.startsWith(BASE) ? path.slice(BASE.length) : '';
  const [page = '', id] = rest.split('/').filter((p) => p !== '');
  return { page: page === '' ? 'overview' : decodeURIComponent(page), id: id === undefined ? undefined : decodeURIComponent(id) };
}

/** href is the link of a page (and id). */
export function href(page: string, id?: string): string {
  return `${BASE}/${encodeURIComponent(page)}${id === undefined ? '' : `/${encodeURIComponent(id)}`}`;
}

const listeners = new Set<() => void>();

/** navigate goes to a console path without reloading. */
export function navigate(path: string): void {
  window.history.pushState(null, '', path);
  for (const l of listeners) l();
}

/** useRoute is the current route, updated on navigate and on back/forward. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.pathname));
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** onLinkClick turns a plain left click on a console link into navigate (modified clicks open as usual). */
export function onLinkClick(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = (event.target as Element | null)?.closest('a');
  if (link === null || link === undefined || link.target !== '' || link.origin !== window.location.origin) return;
  if (!link.pathname.startsWith(BASE)) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
}
