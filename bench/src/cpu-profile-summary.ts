// Summarises V8 CPU profiles (node --cpu-prof) into the top frames by self time, for the profile
// notes in bench/README.md. Profiles are large and stay out of git; this keeps the reading.
//   usage: node bench/dist/cpu-profile-summary.js <file.cpuprofile> [top=15] [skipFirstMs=0]
// skipFirstMs leaves out the process's start-up (module loading) when it is known how long that took.
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

/** packageOf names the package (or node: module, or file) a frame's code belongs to. */
function packageOf(frame: ProfileNode['callFrame']): string {
  if (frame.url === '') return frame.functionName === '' ? '(anonymous)' : frame.functionName;
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(frame.url)?.[1];
  if (pkg !== undefined) return pkg;
  if (frame.url.startsWith('node:')) return 'node:*';
  const ours = /\/(packages|services)\/([^/]+)\//.exec(frame.url);
  return ours === null ? basename(frame.url) : `@parley/${ours[2]}`;
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
export function summarise(
  profile: Profile,
  top: number,
  skipFirstMs = 0,
): { totalMs: number; frames: { name: string; ms: number; share: number }[]; packages: { name: string; ms: number; share: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  let elapsed = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    elapsed += us;
    if (elapsed < skipFirstMs * 1000) return;
    const node = byId.get(id);
    if (node === undefined) return;
    const name = frameName(node.callFrame);
    if (name === '(idle)') return;
    total += us;
    self.set(name, (self.get(name) ?? 0) + us);
    const pkg = packageOf(node.callFrame);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  });
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), share: Number(((us / total) * 100).toFixed(1)) }));
  return { totalMs: Math.round(total / 1000), frames: rank(self), packages: rank(byPackage) };
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(basename(process.argv[1]))) {
  const [file, topArg, skipArg] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: cpu-profile-summary <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const { totalMs, frames, packages } = summarise(
    JSON.parse(readFileSync(file, 'utf8')) as Profile,
    Number(topArg ?? 15),
    Number(skipArg ?? 0),
  );
  process.stdout.write(`${basename(file)}: ${totalMs} ms busy\n`);
  for (const f of frames) process.stdout.write(`${f.share}%\t${f.ms} ms\t${f.name}\n`);
  process.stdout.write('by package (self time):\n');
  for (const p of packages) process.stdout.write(`${p.share}%\t${p.ms} ms\t${p.name}\n`);
}
