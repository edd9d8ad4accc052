// The lifecycle service process: wiring only. Its API is served as it is implemented; until then
// it runs the platform kernel (mTLS, allow-lists, health, telemetry, graceful shutdown).
import { PARLEY_VERSION, runMain } from '@parley/platform';
import { callerPolicies } from './policy.js';

runMain({
  name: 'lifecycle',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup: () => ({ routes: () => undefined }),
});
