// vitest setupFiles entry of the projects with databasePerFile: each test file gets a database of
// its own, cloned from the migrated template of the global setup, so that workers which take the
// rows of every tenant (webhook delivery, audit relays, purges) only ever see this file's rows and
// such files can run side by side. Removed when the file is done.
import { afterAll } from 'vitest';
import { useDatabaseOfThisFile } from '../src/pg.js';

const database = await useDatabaseOfThisFile();

afterAll(async () => {
  await database.drop();
});
