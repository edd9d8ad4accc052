// @parley/scopes — the permission vocabulary shared by the edge (which scope each public RPC needs),
// identity (which scopes a role may hold) and every service that re-checks a forwarded principal.
export * from './require-scope.js';
export * from './scopes.js';
