// @parley/audit/offline: what an offline verifier needs (the export check, the public keys, the
// witness file) without the service's database and RPC code, so that the `parley` CLI loads only this.
export { publicKeysFromPem } from './chain.js';
export { verifyExport, type ExportVerification, type VerifyExportOptions } from './verify-export.js';
export { readWitnessFile } from './witness.js';
