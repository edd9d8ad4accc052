// Preloaded (`node --import`) into the processes bench/src/service-start.bench.ts starts: at exit,
// the process writes the CPU it used (user + system, ms) to stderr for the bench to read.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  const { user, system } = process.cpuUsage();
  writeSync(2, `parley-cpu-ms=${(user + system) / 1000}\n`);
});
