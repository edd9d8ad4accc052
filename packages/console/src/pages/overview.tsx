// The overview: charts where a picture reads faster than a table: conversations per day (last 14
// days), conversations by how they ended, guardrail decisions by rule (last 14 days, counted by
// the API per day, rule and action), and webhook deliveries by state. Each chart is an SVG with
// the same numbers in a table for screen readers. Conversation and delivery counts are over the
// newest 500 conversations and the newest 200 deliveries of each endpoint: a dashboard, not a report.
import type { PageProps } from '../page-props.js';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { LoadState, Notice, PageTitle, useLoad } from '../ui.js';

interface Bar {
  readonly label: string;
  readonly value: number;
}

function BarChart({ id, title, bars }: { id: string; title: string; bars: readonly Bar[] }) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const width = Math.max(240, bars.length * 44);
  const height = 160;
  const barWidth = Math.min(60, width / Math.max(1, bars.length) - 8);
  // Room above the tallest bar for its value.
  const top = 16;
  return (
    <figure class="chart" id={id}>
      <figcaption>{title}</figcaption>
      {bars.length === 0 ? (
        <p>Nothing to show yet.</p>
      ) : (
        <>
          <svg
            viewBox={`0 ${-top} ${width} ${height + 40 + top}`}
            width={width}
            height={height + 40 + top}
            role="img"
            aria-label={`${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`}
          >
            {bars.map((b, i) => {
              const h = Math.round((b.value / max) * height);
              const x = i * (barWidth + 8) + 4;
              return (
                <g key={b.label}>
                  <title>{`${b.label}: ${b.value}`}</title>
                  <rect class="bar" x={x} y={height - h} width={barWidth} height={h} />
                  <text class="value" x={x + barWidth / 2} y={height - h - 4} text-anchor="middle">
                    {b.value}
                  </text>
                  <text class="axis" x={x + barWidth / 2} y={height + 16} text-anchor="middle">
                    {b.label.length > 9 ? `${b.label.slice(0, 8)}…` : b.label}
                  </text>
                </g>
              );
            })}
          </svg>
          <table class="sr-only">
            <caption>{title}</caption>
            <tbody>
              {bars.map((b) => (
                <tr key={b.label}>
                  <th scope="row">{b.label}</th>
                  <td>{b.value}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </figure>
  );
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Bar[] {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts].map(([label, value]) => ({ label, value })).sort((a, b) => b.value - a.value);
}

/** ALLOWED is the label of turns no rule acted on (stored as action "allow" without a rule). */
const ALLOWED = 'allowed (no rule)';

/** DecisionsByDay is the per-day detail of the decisions chart, as a visible table behind a disclosure. */
function DecisionsByDay({ counts }: { counts: readonly { day: string; rule: string; action: string; count: bigint }[] }) {
  if (counts.length === 0) return null;
  return (
    <details class="chart-detail" id="decisions-by-day">
      <summary>Guardrail decisions per day</summary>
      <table>
        <caption class="sr-only">Guardrail decisions per day, rule and action (UTC)</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            <th scope="col">Rule</th>
            <th scope="col">Action</th>
            <th scope="col">Count</th>
          </tr>
        </thead>
        <tbody>
          {counts.map((c) => (
            <tr key={`${c.day} ${c.rule} ${c.action}`}>
              <td>{c.day}</td>
              <td>{c.rule === '' ? ALLOWED : c.rule}</td>
              <td>{c.action}</td>
              <td>{String(c.count)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

/** OverviewPage is /console (and /console/overview). */
export function OverviewPage({ api, session }: PageProps) {
  const can = (scope: string) => session.scopes.includes(scope);
  const conversations = useLoad(async () => {
    if (!can('conversations:read')) return undefined;
    const out = [];
    let pageToken = '';
    do {
      const res = await api.conversations.listConversations({ pageSize: 100, pageToken });
      out.push(...res.conversations);
      pageToken = res.nextPageToken;
    } while (pageToken !== '' && out.length < 500);
    return out;
  });
  const deliveries = useLoad(async () => {
    if (!can('webhooks:admin')) return undefined;
    const endpoints = (await api.webhooks.listWebhookEndpoints({ pageSize: 100 })).endpoints;
    const lists = await Promise.all(endpoints.map((ep) => api.webhooks.listWebhookDeliveries({ endpointId: ep.id, pageSize: 200 })));
    return lists.flatMap((l) => l.deliveries);
  });
  const decisions = useLoad(async () => {
    if (!can('conversations:read')) return undefined;
    return (await api.conversations.countGuardrailDecisions({})).counts;
  });
  const byRule: Bar[] = [];
  for (const c of decisions.data ?? []) {
    const label = c.rule === '' ? ALLOWED : c.rule;
    const bar = byRule.find((b) => b.label === label);
    if (bar === undefined) byRule.push({ label, value: Number(c.count) });
    else byRule[byRule.indexOf(bar)] = { label, value: bar.value + Number(c.count) };
  }
  byRule.sort((a, b) => b.value - a.value);
  const days: Bar[] = [];
  if (conversations.data !== undefined) {
    const today = new Date();
    for (let i = 13; i >= 0; i--) {
      const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
      const day = d.toISOString().slice(0, 10);
      days.push({
        label: day.slice(5),
        value: conversations.data.filter((c) => c.startedAt !== undefined && timestampDate(c.startedAt).toISOString().startsWith(day))
          .length,
      });
    }
  }
  return (
    <>
      <PageTitle>Overview</PageTitle>
      <p>
        Signed in as <strong>{session.member.email}</strong> ({session.member.role}).
      </p>
      <div class="charts">
        {!can('conversations:read') ? (
          <Notice>Your role cannot read conversations.</Notice>
        ) : (
          <>
            <LoadState loaded={conversations} />
            {conversations.data === undefined ? null : (
              <>
                <BarChart id="chart-conversations" title="Conversations per day (UTC, last 14 days)" bars={days} />
                <BarChart
                  id="chart-end-reasons"
                  title="Conversations by how they ended"
                  bars={countBy(conversations.data, (c) => (c.state === 'ended' ? c.endReason || 'ended' : c.state))}
                />
              </>
            )}
            <LoadState loaded={decisions} />
            {decisions.data === undefined ? null : (
              <div>
                <BarChart id="chart-guardrail-decisions" title="Guardrail decisions by rule (last 14 days)" bars={byRule} />
                <DecisionsByDay counts={decisions.data} />
              </div>
            )}
          </>
        )}
        {!can('webhooks:admin') ? null : (
          <>
            <LoadState loaded={deliveries} />
            {deliveries.data === undefined ? null : (
              <BarChart id="chart-deliveries" title="Webhook deliveries by state" bars={countBy(deliveries.data, (d) => d.state)} />
            )}
          </>
        )}
      </div>
    </>
  );
}
