// Privacy: DSAR jobs (export and forget a person, by external reference, phone or e-mail), their
// state (refreshed while one runs) and receipts, and the data map (where personal data lives, how it is encrypted and kept).
import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from '../page-props.js';
import { ErrorNote, Field, LoadState, Notice, PageTitle, useAction, useLoad, when } from '../ui.js';

/** PrivacyPage is /console/privacy. */
export function PrivacyPage({ api }: PageProps) {
  const jobs = useLoad(async () => (await api.privacy.listPrivacyJobs({ pageSize: 100 })).jobs);
  const map = useLoad(async () => (await api.privacy.getDataMap({})).entries);
  const action = useAction();
  // While a job is queued or running, its row is refreshed every two seconds until it settles.
  const unsettled = jobs.data?.some((j) => j.state === 'pending' || j.state === 'running') === true;
  useEffect(() => {
    if (!unsettled) return;
    const timer = setTimeout(jobs.reload, 2_000);
    return () => clearTimeout(timer);
  }, [jobs.data, unsettled]);
  const [kind, setKind] = useState<'export' | 'forget'>('export');
  const [field, setField] = useState<'externalRef' | 'email' | 'phone'>('externalRef');
  const [value, setValue] = useState('');
  const onStart = (e: Event) => {
    e.preventDefault();
    if (kind === 'forget' && !window.confirm('Forget this person? Their data is deleted and their key destroyed; this cannot be undone.'))
      return;
    void action.run(async () => {
      const who = { [field]: value };
      if (kind === 'export') await api.privacy.exportSubject(who);
      else await api.privacy.forgetSubject(who);
      setValue('');
      jobs.reload();
    });
  };
  return (
    <>
      <PageTitle>Privacy</PageTitle>
      <LoadState loaded={jobs} />
      {jobs.data === undefined ? null : jobs.data.length === 0 ? (
        <Notice>No privacy jobs yet.</Notice>
      ) : (
        <table id="privacy-jobs">
          <caption>Export and forget jobs</caption>
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Kind</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Finished</th>
              <th scope="col">Receipt</th>
            </tr>
          </thead>
          <tbody>
            {jobs.data.map((j) => (
              <tr key={j.id} data-job={j.id} data-state={j.state}>
                <td>{when(j.createdAt)}</td>
                <td>{j.kind}</td>
                <td>
                  {j.state}
                  {j.failureReason === '' ? null : <div class="hint">{j.failureReason}</div>}
                </td>
                {/* subject_found is never set: a job does not tell whether Parley knows the person. */}
                <td>{j.attempts}</td>
                <td>{when(j.finishedAt)}</td>
                <td>
                  {j.receipt === '' ? (
                    j.sha256 === '' ? (
                      ''
                    ) : (
                      <code>sha256 {j.sha256.slice(0, 16)}…</code>
                    )
                  ) : (
                    <code>{j.receipt.slice(0, 24)}…</code>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={onStart} aria-labelledby="start-job">
        <h2 id="start-job">Start a job</h2>
        <Field label="Job">
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as 'export' | 'forget')}>
            <option value="export">Export everything about a person</option>
            <option value="forget">Forget a person</option>
          </select>
        </Field>
        <Field label="Find the person by">
          <select value={field} onChange={(e) => setField(e.currentTarget.value as 'externalRef' | 'email' | 'phone')}>
            <option value="externalRef">your reference</option>
            <option value="email">e-mail</option>
            <option value="phone">phone</option>
          </select>
        </Field>
        <Field label="Value">
          <input required autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </Field>
        <ErrorNote error={action.error} />
        <button type="submit" disabled={action.busy}>
          Start
        </button>
      </form>
      <h2>Data map</h2>
      <LoadState loaded={map} />
      {map.data === undefined ? null : (
        <table id="data-map">
          <caption>Where personal data lives</caption>
          <thead>
            <tr>
              <th scope="col">Service</th>
              <th scope="col">Location</th>
              <th scope="col">Class</th>
              <th scope="col">Encryption</th>
              <th scope="col">Retention</th>
              <th scope="col">Reads recorded</th>
            </tr>
          </thead>
          <tbody>
            {map.data.map((m) => (
              <tr key={`${m.service}/${m.location}`}>
                <td>{m.service}</td>
                <td>
                  <code>{m.location}</code>
                  <div class="hint">{m.description}</div>
                </td>
                <td>{m.dataClass}</td>
                <td>{m.encryption}</td>
                <td>{m.retention}</td>
                <td>{m.readsRecorded ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
