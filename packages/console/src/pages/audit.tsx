// The audit log: a badge with the outcome of VerifyLog over the whole chain (hashes and signed
// checkpoints, checked by the audit service), the events newest first with a filter, and one
// event's full record, hashes included.
import { useState } from 'preact/hooks';
import type { AuditEvent } from '@parley/proto/parley/api/v1/audit_pb.js';
import type { PageProps } from '../page-props.js';
import { Field, LoadState, Notice, PageTitle, useLoad, when } from '../ui.js';

function VerifyBadge({ api }: Pick<PageProps, 'api'>) {
  const verify = useLoad(() => api.audit.verifyLog({}));
  const v = verify.data;
  if (verify.error !== undefined)
    return (
      <p id="chain-badge" class="badge unknown" data-state="unknown" role="status">
        Chain not verified: {verify.error instanceof Error ? verify.error.message : String(verify.error)}
      </p>
    );
  if (v === undefined)
    return (
      <p id="chain-badge" class="badge unknown" data-state="checking" role="status">
        Verifying the chain…
      </p>
    );
  return v.ok ? (
    <p id="chain-badge" class="badge ok" data-state="verified" role="status">
      ✓ Chain verified: events {String(v.verifiedFromSeq)}–{String(v.verifiedToSeq)}, {v.checkpointsVerified} signed checkpoint
      {v.checkpointsVerified === 1 ? '' : 's'}
    </p>
  ) : (
    <p id="chain-badge" class="badge broken" data-state="broken" role="alert">
      ✗ Chain broken at event {String(v.firstFailedSeq)}: {v.reason}
    </p>
  );
}

function EventDetail({ event, onClose }: { event: AuditEvent; onClose: () => void }) {
  return (
    <section class="card" id="event-detail" aria-labelledby="event-detail-title">
      <h2 id="event-detail-title" tabIndex={-1} ref={(el) => el?.focus()}>
        Event {String(event.seq)}: {event.action}
      </h2>
      <dl class="facts">
        <dt>Id</dt>
        <dd>
          <code>{event.id}</code>
        </dd>
        <dt>Actor</dt>
        <dd>
          {event.actorKind} <code>{event.actorId}</code>
        </dd>
        <dt>Target</dt>
        <dd>
          {event.targetType} <code>{event.targetId}</code>
        </dd>
        <dt>Outcome</dt>
        <dd>{event.outcome}</dd>
        <dt>Occurred</dt>
        <dd>{when(event.occurredAt)}</dd>
        <dt>Recorded</dt>
        <dd>{when(event.recordedAt)}</dd>
        <dt>Source</dt>
        <dd>
          {event.sourceAddress} {event.userAgent}
        </dd>
        <dt>Trace</dt>
        <dd>
          <code>{event.traceId}</code>
        </dd>
        <dt>Previous hash</dt>
        <dd>
          <code class="hash">{event.prevHash}</code>
        </dd>
        <dt>Hash</dt>
        <dd>
          <code class="hash">{event.hash}</code>
        </dd>
      </dl>
      <h3>Description</h3>
      <pre>{JSON.stringify(event.description ?? {}, null, 2)}</pre>
      <button type="button" onClick={onClose}>
        Close details
      </button>
    </section>
  );
}

/** AuditPage is /console/audit. */
export function AuditPage({ api }: PageProps) {
  const [action, setAction] = useState('');
  const [applied, setApplied] = useState('');
  const events = useLoad(async () => (await api.audit.listEvents({ pageSize: 100, filter: { action: applied } })).events, [applied]);
  const [selected, setSelected] = useState<AuditEvent | undefined>(undefined);
  return (
    <>
      <PageTitle>Audit log</PageTitle>
      <VerifyBadge api={api} />
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(action.trim());
        }}
      >
        <Field label="Action" hint="e.g. secret.create; empty for all">
          <input id="audit-action" value={action} onInput={(e) => setAction(e.currentTarget.value)} />
        </Field>
        <button type="submit">Filter</button>
      </form>
      {selected === undefined ? null : <EventDetail event={selected} onClose={() => setSelected(undefined)} />}
      <LoadState loaded={events} />
      {events.data === undefined ? null : events.data.length === 0 ? (
        <Notice>No events match.</Notice>
      ) : (
        <table id="audit-events">
          <caption>Audit events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Target</th>
              <th scope="col">Outcome</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {events.data.map((e) => (
              <tr key={e.id}>
                <td>{String(e.seq)}</td>
                <td>{when(e.occurredAt)}</td>
                <td>{e.action}</td>
                <td>
                  {e.actorKind} {e.actorId.slice(0, 8)}
                </td>
                <td>
                  {e.targetType} {e.targetId.slice(0, 8)}
                </td>
                <td>{e.outcome}</td>
                <td>
                  <button type="button" class="event-detail" onClick={() => setSelected(e)}>
                    Details<span class="sr-only"> of event {String(e.seq)}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
