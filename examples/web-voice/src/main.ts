// `npm run demo`: process wiring only. Reads the environment (or the dev stack's stack.json),
// serves the demo page and prints its URL; Ctrl-C stops it.
import { loadDemoConfig } from './config.js';
import { startDemoServer } from './server.js';

try {
  const config = loadDemoConfig(process.env, process.cwd());
  const demo = await startDemoServer(config, (line) => console.log(`[web-voice] ${line}`));
  console.log(`[web-voice] demo page: ${demo.url}   (agent ${config.agentId}, API ${config.apiUrl}; the API key stays in this process)`);
  const stop = () => void demo.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} catch (err) {
  console.error(`web-voice demo: start-up failed: ${(err as Error).message}`);
  process.exit(1);
}
