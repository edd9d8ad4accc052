#!/usr/bin/env node
// verify-cli (node services/audit/dist/verify-cli.js): checks an audit export offline, with only the public key(s).
//   node services/audit/dist/verify-cli.js <export.ndjson> --public-key <file.pem> [--public-key <older.pem>] [--witness <witness.ndjson> ...]
// With --witness (the file PARLEY_AUDIT_WITNESS_PATH points to), the export must also agree with
// every checkpoint the witness recorded before the export was sealed: a cut tail fails.
// Exit status: 0 the file verifies, 1 it does not (the first failing sequence number is printed), 2 usage or I/O error.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { publicKeysFromPem } from './chain.js';
import { verifyExport } from './verify-export.js';
import { readWitnessFile } from './witness.js';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { 'public-key': { type: 'string', multiple: true }, witness: { type: 'string', multiple: true }, json: { type: 'boolean' } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const file = parsed.positionals[0];
  const keyFiles = parsed.values['public-key'] ?? [];
  if (file === undefined || keyFiles.length === 0 || parsed.positionals.length > 1) {
    process.stderr.write(
      'usage: node services/audit/dist/verify-cli.js <export.ndjson> --public-key <ed25519-public.pem> [--public-key <older.pem> ...] [--witness <witness.ndjson>] [--json]\n',
    );
    return 2;
  }
  let keys;
  try {
    // A key file may hold several PEM blocks (all keys from GetPublicKeys).
    const pems = (await Promise.all(keyFiles.map((f) => readFile(f, 'utf8')))).flatMap(
      (t) => t.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [],
    );
    if (pems.length === 0) throw new Error('no PEM public key found');
    keys = publicKeysFromPem(pems);
  } catch (err) {
    process.stderr.write(`cannot read the public key: ${(err as Error).message}\n`);
    return 2;
  }
  let witness;
  // One file per replica in the chart: every file given counts.
  const witnessFiles = parsed.values.witness ?? [];
  try {
    witness = (await Promise.all(witnessFiles.map((f) => readWitnessFile(f)))).flat();
  } catch (err) {
    process.stderr.write(`cannot read the witness file: ${(err as Error).message}\n`);
    return 2;
  }
  let result;
  try {
    result = await verifyExport(createReadStream(file), keys, { witness });
  } catch (err) {
    process.stderr.write(`cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  if (parsed.values.json === true) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (result.ok) {
    const unsigned = result.verifiedToSeq - result.lastCheckpointSeq;
    process.stdout.write(
      `OK: tenant ${result.tenantId}, events ${result.verifiedFromSeq}..${result.verifiedToSeq} verified and sealed ${result.sealedAt}, ${result.checkpointsVerified} signed checkpoint(s), last at ${result.lastCheckpointSeq}` +
        (unsigned > 0 ? `; the last ${unsigned} event(s) are covered by the seal only` : '') +
        (witnessFiles.length === 0
          ? '; no witness given: a cut tail is not detectable\n'
          : `; agrees with ${result.witnessCheckpoints} witnessed checkpoint(s)\n`),
    );
  } else {
    process.stdout.write(
      `FAILED at sequence ${result.firstFailedSeq}${result.line > 0 ? ` (line ${result.line})` : ''}: ${result.reason}\n`,
    );
  }
  return result.ok ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
