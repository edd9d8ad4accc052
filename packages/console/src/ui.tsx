// Small shared pieces of the console's pages: headings that take focus on navigation, labelled
// fields, alerts, times and a loader hook. Everything is plain semantic HTML so that a keyboard
// and a screen reader work without extra machinery.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { errorText } from './api.js';

/** PageTitle is the page's h1; it takes focus when the page opens so a screen reader announces it. */
export function PageTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  // Layout effect: focus moves as the page appears, before anything else can take it.
  useLayoutEffect(() => ref.current?.focus(), []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** ErrorNote shows a call's error (role=alert: read out at once). */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** Notice is a polite status line (role=status). */
export function Notice({ children }: { children?: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

/** Field is a labelled form control. */
export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="label">{label}</span>
      {children}
      {hint === undefined ? null : <span class="hint">{hint}</span>}
    </label>
  );
}

/** when formats a protobuf timestamp for a person (empty when unset). */
export function when(ts: Timestamp | undefined): string {
  if (ts === undefined || (ts.seconds === 0n && ts.nanos === 0)) return '';
  return timestampDate(ts)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** Loaded is a value being fetched: its data, error, and a reload. */
export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  reload(): void;
}

/** useLoad runs a fetch when the page opens (and on reload) and keeps its outcome. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [tick, ...deps]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** useAction runs a form's call: busy while it runs, its error kept for display. */
export function useAction(): { busy: boolean; error: unknown; run: (f: () => Promise<void>) => Promise<void>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = useCallback(async (f: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}

/** LoadState shows "loading" or the load's error above a page's data. */
export function LoadState({ loaded }: { loaded: Loaded<unknown> }) {
  if (loaded.error !== undefined) return <ErrorNote error={loaded.error} />;
  if (loaded.loading && loaded.data === undefined) return <Notice>Loading…</Notice>;
  return null;
}

/** ShownOnce shows a secret Parley will never show again (a new API key, a webhook signing secret) until the person dismisses it. */
export function ShownOnce(props: { id?: string; title: string; hint: string; secret: string; onDismiss: () => void }) {
  return (
    <div class="card once" role="alert" {...(props.id === undefined ? {} : { id: props.id })}>
      <h2>{props.title}</h2>
      <p>{props.hint}</p>
      <p>
        <code class="secret">{props.secret}</code>
      </p>
      <button type="button" onClick={props.onDismiss}>
        I have copied it
      </button>
    </div>
  );
}
