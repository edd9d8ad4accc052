/**
 * SYSTEM_TENANT is the reserved row-level-security partition for deployment-wide identity state
 * (session signing keys, failed-attempt counters). It is the nil UUID, which no workspace can
 * have: identity refuses it as a workspace id at bootstrap, and tenant ids come from identity.
 */
export const SYSTEM_TENANT = '00000000-0000-0000-0000-000000000000';
