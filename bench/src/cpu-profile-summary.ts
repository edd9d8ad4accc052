// Summarises V8 CPU profiles (node --cpu-prof) into the top frames by self time, for the profile
// notes in bench/README.md. Profiles are large and stay out of git; this keeps the reading.
//   usage: node bench/dist/cpu-profile-summary.js <file.cpuprofile> [top=15]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly children?: number[];
}

interface Profile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

/** frameName names a frame by function, package (or file) and line. */
function frameName(frame: ProfileNode['callFrame']): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return fn;
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(frame.url)?.[1];
  const where = pkg ?? (frame.url.startsWith('node:') ? frame.url : basename(frame.url));
  return `${fn} (${where}:${frame.lineNumber + 1})`;
}

/** summarise returns total sampled ms and the top frames by self time with their share. */
export function summarise(profile: Profile, top: number): { totalMs: number; frames: { name: string; ms: number; share: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (node === undefined) return;
    const name = frameName(node.callFrame);
    if (name === '(idle)') return;
    total += us;
    self.set(name, (self.get(name) ?? 0) + us);
  });
  const frames = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, ms: Math.round(us / 1000), share: Number(((us / total) * 100).toFixed(1)) }));
  return { totalMs: Math.round(total / 1000), frames };
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(basename(process.argv[1]))) {
  const [file, topArg] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: cpu-profile-summary <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const { totalMs, frames } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(topArg ?? 15));
  process.stdout.write(`${basename(file)}: ${totalMs} ms busy\n`);
  for (const f of frames) process.stdout.write(`${f.share}%\t${f.ms} ms\t${f.name}\n`);
}
