// A child process for test/stack/free-port.test.ts: on the parent's "go" it asks freePort for
// `count` ports at once and sends them back, so several such processes draw ports at the same time.
import { freePort } from '@parley/embedded-postgres';

const count = Number(process.argv[2] ?? '100');
process.once('message', (message) => {
  if (message !== 'go') return;
  void Promise.all(Array.from({ length: count }, () => freePort())).then(
    (ports) => process.send?.({ ports }, () => process.exit(0)),
    (err: unknown) => process.send?.({ error: String(err) }, () => process.exit(1)),
  );
});
process.send?.('ready');
