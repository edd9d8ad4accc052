import { sql, type Kysely } from 'kysely';

// Privacy jobs that cannot finish: each take of a job counts as an attempt, a failed attempt keeps
// its reason (the failing service and gRPC code, never data), and after the configured number a
// job is `failed` instead of retried forever. lease_token fences a worker: renewals and step
// records match it, so a worker that lost its lease (a stall longer than the lease) cannot
// overwrite what the worker that took the job over records. A failed job no longer blocks a new
// request for the same person.
const S = 'parley_lifecycle';

/** up adds attempts, failure_reason, lease_token and the failed state. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const jobs = sql.table(`${S}.privacy_jobs`);
  await sql`alter table ${jobs}
    add column attempts integer not null default 0 constraint privacy_jobs_attempts_check check (attempts >= 0),
    add column failure_reason text not null default '' constraint privacy_jobs_failure_reason_check check (char_length(failure_reason) <= 500),
    add column lease_token uuid,
    drop constraint privacy_jobs_state_check,
    add constraint privacy_jobs_state_check check (state in ('pending', 'running', 'done', 'failed'))`.execute(db);
  await sql`drop index ${sql.table(`${S}.privacy_jobs_one_forget`)}`.execute(db);
  await sql`create unique index privacy_jobs_one_forget on ${jobs} (tenant_id, subject_id) where kind = 'forget' and state not in ('done', 'failed')`.execute(
    db,
  );
  await sql`drop index ${sql.table(`${S}.privacy_jobs_unfinished_idx`)}`.execute(db);
  await sql`create index privacy_jobs_unfinished_idx on ${jobs} (state) where state not in ('done', 'failed')`.execute(db);
}

/** down removes them (failed jobs become done-less pending rows again: down is for development only). */
export async function down(db: Kysely<unknown>): Promise<void> {
  const jobs = sql.table(`${S}.privacy_jobs`);
  await sql`update ${jobs} set state = 'pending' where state = 'failed'`.execute(db);
  await sql`drop index ${sql.table(`${S}.privacy_jobs_unfinished_idx`)}`.execute(db);
  await sql`create index privacy_jobs_unfinished_idx on ${jobs} (state) where state <> 'done'`.execute(db);
  await sql`drop index ${sql.table(`${S}.privacy_jobs_one_forget`)}`.execute(db);
  await sql`create unique index privacy_jobs_one_forget on ${jobs} (tenant_id, subject_id) where kind = 'forget' and state <> 'done'`.execute(
    db,
  );
  await sql`alter table ${jobs}
    drop column attempts, drop column failure_reason, drop column lease_token,
    drop constraint privacy_jobs_state_check,
    add constraint privacy_jobs_state_check check (state in ('pending', 'running', 'done'))`.execute(db);
}
