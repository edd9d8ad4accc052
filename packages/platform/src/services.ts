/** SERVICE_NAMES lists every Parley service; each is a process, a Deployment and a SPIFFE ID. */
export const SERVICE_NAMES = [
  'edge',
  'identity',
  'secrets',
  'tenant-data',
  'audit',
  'lifecycle',
  'voice-orchestrator',
  'integrations',
] as const;

/** ServiceName is one of SERVICE_NAMES. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** isServiceName tells whether a string names a Parley service. */
export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value);
}

/** DEFAULT_TRUST_DOMAIN is the SPIFFE trust domain of the dev stack. */
export const DEFAULT_TRUST_DOMAIN = 'parley.local';

/** spiffeIdFor builds the SPIFFE ID of a service in a trust domain. */
export function spiffeIdFor(service: ServiceName, trustDomain: string = DEFAULT_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/${service}`;
}

/** PARLEY_VERSION is the release of the platform, reported in telemetry and logs. */
export const PARLEY_VERSION = '0.1.0';
