// Webhooks: endpoints (create: the signing secret shown once; rotate; delete) and an endpoint's
// delivery log with a replay for failed deliveries.
import { useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { href } from '../router.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, ShownOnce, useAction, useLoad, when } from '../ui.js';

function EndpointList({ api }: PageProps) {
  const endpoints = useLoad(async () => (await api.webhooks.listWebhookEndpoints({ pageSize: 100 })).endpoints);
  const action = useAction();
  const [url, setUrl] = useState('');
  const [types, setTypes] = useState('');
  const [description, setDescription] = useState('');
  const [secret, setSecret] = useState('');
  const onCreate = (e: Event) => {
    e.preventDefault();
    void action.run(async () => {
      const eventTypes = types
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '');
      const res = await api.webhooks.createWebhookEndpoint({ url, eventTypes, description });
      setSecret(res.signingSecret);
      setUrl('');
      endpoints.reload();
    });
  };
  const rotate = (id: string) =>
    void action.run(async () => {
      const res = await api.webhooks.rotateWebhookSecret({ endpointId: id, overlapSeconds: 86_400 });
      setSecret(res.signingSecret);
      endpoints.reload();
    });
  const remove = (id: string, u: string) => {
    if (!window.confirm(`Delete the endpoint ${u}?`)) return;
    void action.run(async () => {
      await api.webhooks.deleteWebhookEndpoint({ endpointId: id });
      endpoints.reload();
    });
  };
  return (
    <>
      <PageTitle>Webhooks</PageTitle>
      {secret === '' ? null : (
        <ShownOnce
          id="webhook-secret"
          title="Copy the signing secret now"
          hint="Your receiver checks each delivery's signature with it; it is shown only this once."
          secret={secret}
          onDismiss={() => setSecret('')}
        />
      )}
      <ErrorNote error={action.error} />
      <LoadState loaded={endpoints} />
      {endpoints.data === undefined ? null : endpoints.data.length === 0 ? (
        <Notice>No webhook endpoints.</Notice>
      ) : (
        <table id="endpoints">
          <caption>Webhook endpoints</caption>
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">Enabled</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {endpoints.data.map((ep) => (
              <tr key={ep.id}>
                <td>
                  <a href={href('webhooks', ep.id)}>{ep.url}</a>
                  {ep.description === '' ? null : <div class="hint">{ep.description}</div>}
                </td>
                <td>{ep.eventTypes.join(', ') || 'all'}</td>
                <td>{ep.enabled ? 'yes' : 'no'}</td>
                <td>{when(ep.createdAt)}</td>
                <td>
                  <button type="button" disabled={action.busy} onClick={() => rotate(ep.id)}>
                    Rotate secret<span class="sr-only"> of {ep.url}</span>
                  </button>{' '}
                  <button type="button" class="danger" disabled={action.busy} onClick={() => remove(ep.id, ep.url)}>
                    Delete<span class="sr-only"> {ep.url}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onCreate} aria-labelledby="create-endpoint">
        <h2 id="create-endpoint">Add an endpoint</h2>
        <Field label="URL" hint="https only; private and internal addresses are refused.">
          <input type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        </Field>
        <Field label="Event types" hint="Comma-separated; empty for all.">
          <input value={types} onInput={(e) => setTypes(e.currentTarget.value)} />
        </Field>
        <Field label="Description">
          <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </Field>
        <button type="submit" disabled={action.busy}>
          Add endpoint
        </button>
      </form>
    </>
  );
}

function Deliveries({ api, id }: PageProps & { id: string }) {
  const data = useLoad(async () => {
    const [ep, d] = await Promise.all([
      api.webhooks.getWebhookEndpoint({ endpointId: id }),
      api.webhooks.listWebhookDeliveries({ endpointId: id, pageSize: 100 }),
    ]);
    return { endpoint: ep.endpoint, deliveries: d.deliveries };
  }, [id]);
  const action = useAction();
  const replay = (deliveryId: string) =>
    void action.run(async () => {
      await api.webhooks.replayWebhookDelivery({ deliveryId });
      data.reload();
    });
  return (
    <>
      <p>
        <a href={href('webhooks')}>← All endpoints</a>
      </p>
      <PageTitle>Deliveries to {data.data?.endpoint?.url ?? 'endpoint'}</PageTitle>
      <ErrorNote error={action.error} />
      <LoadState loaded={data} />
      {data.data === undefined ? null : data.data.deliveries.length === 0 ? (
        <Notice>No deliveries yet.</Notice>
      ) : (
        <table id="deliveries">
          <caption>Delivery log, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Event</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last status</th>
              <th scope="col">Latency</th>
              <th scope="col">Last error</th>
              <th scope="col">Replay</th>
            </tr>
          </thead>
          <tbody>
            {data.data.deliveries.map((d) => (
              <tr key={d.id} data-delivery={d.id} data-state={d.state}>
                <td>{when(d.createdAt)}</td>
                <td>{d.eventType}</td>
                <td>{d.state}</td>
                <td>{d.attempts}</td>
                <td>{d.lastStatusCode || ''}</td>
                <td>{d.lastLatencyMs ? `${d.lastLatencyMs} ms` : ''}</td>
                <td>{d.lastError}</td>
                <td>
                  <button type="button" disabled={action.busy} onClick={() => replay(d.id)}>
                    Replay<span class="sr-only"> delivery {d.id}</span>
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

/** WebhooksPage is /console/webhooks and /console/webhooks/<endpoint id> (its delivery log). */
export function WebhooksPage(props: PageProps) {
  return props.id === undefined ? <EndpointList {...props} /> : <Deliveries {...props} id={props.id} />;
}
