// parley-devpki: writes a dev CA and one certificate per service into a folder (default
// .parley/dev/certs). Usage: node packages/devpki/dist/cli.js [dir]
import { resolve } from 'node:path';
import { ensureDevPki } from './index.js';

const dir = resolve(process.argv[2] ?? '.parley/dev/certs');
ensureDevPki({ dir }).then(
  (paths) => process.stdout.write(`dev certificates in ${paths.dir} (CA ${paths.caCert})\n`),
  (err: unknown) => {
    process.stderr.write(`parley-devpki: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
