#!/usr/bin/env node
// bundle-services.mjs — the last step of `pnpm run build`: each service's compiled entry point
// (services/<name>/dist/main.js, from tsc) bundled with its workspace packages and libraries into
// services/<name>/dist/bundle/main.js. That bundle is what runs everywhere: `npm start`, the
// processes tests start, the image and the Helm chart. A service start otherwise resolves, reads
// and evaluates 1,000–1,900 modules; from one file it spends about half the CPU.
//
// Left outside the bundle, and loaded from the service's node_modules as before:
//  - what a bundled module loads lazily by a name computed at run time (`createRequire(import.meta.url)`,
//    `import.meta.resolve`): the OTLP exporters, date-holidays, the console's files. The services that
//    can reach them list them as dependencies, so they resolve from dist/bundle/ too;
//  - eSpeak NG (@echogarden/espeak-ng-emscripten), which finds its WebAssembly next to its own
//    module, and which an image built with EMBEDDED_TTS=false leaves out;
//  - pg-native, an optional addon pg asks for only when told to.
// Modules imported with `import()` (undici, the S3 client's parts) become chunks beside the bundle,
// loaded when first used, as before.
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** EXTRA_ENTRIES are entry points besides main.js: worker threads a service starts by file URL next to its own module. */
const EXTRA_ENTRIES = { 'voice-orchestrator': ['embedded-tts-worker'] };

/** EXTERNAL are the packages that stay outside every bundle (see above). */
const EXTERNAL = [/^node:/, /^@echogarden\/espeak-ng-emscripten(\/|$)/, /^pg-native$/];

/**
 * moveInto moves every file of `from` into `to` (renames, so each replaces its old self at once):
 * subdirectories (the chunks) and maps first and the entry files last, so an entry never names a
 * chunk that is not there yet; then it deletes what `to` had that `from` did not.
 */
function moveInto(from, to, entries = new Set()) {
  mkdirSync(to, { recursive: true });
  const listed = readdirSync(from, { withFileTypes: true });
  const last = (e) => (e.isDirectory() ? 0 : entries.has(e.name) ? 2 : 1);
  for (const entry of [...listed].sort((a, b) => last(a) - last(b))) {
    if (entry.isDirectory()) moveInto(join(from, entry.name), join(to, entry.name));
    else renameSync(join(from, entry.name), join(to, entry.name));
  }
  const kept = new Set(listed.map((e) => e.name));
  for (const entry of readdirSync(to, { withFileTypes: true })) {
    if (!kept.has(entry.name)) rmSync(join(to, entry.name), { recursive: true, force: true });
  }
}

const only = process.argv.slice(2);
const services = readdirSync(join(root, 'services')).filter((s) => only.length === 0 || only.includes(s));
const started = Date.now();
await Promise.all(
  services.map(async (service) => {
    const dist = join(root, 'services', service, 'dist');
    const out = join(dist, 'bundle');
    // Built beside it, then moved in file by file (each rename replaces one file at once): a
    // process watching the bundle (Tilt's `node --watch`) never finds main.js missing or half
    // written, and never loses its watch on a deleted directory. Chunks of an older build go after.
    // What an interrupted earlier run left beside it goes first.
    for (const stale of readdirSync(dist).filter((name) => name.startsWith('bundle.next-'))) {
      rmSync(join(dist, stale), { recursive: true, force: true });
    }
    const next = join(dist, `bundle.next-${process.pid}`);
    const input = Object.fromEntries(['main', ...(EXTRA_ENTRIES[service] ?? [])].map((name) => [name, join(dist, `${name}.js`)]));
    try {
      await build({
        input,
        platform: 'node',
        external: EXTERNAL,
        logLevel: 'warn',
        // Classes and functions keep their own names (logs and errors show them), whatever the bundle
        // had to rename to keep two modules' top-level names apart.
        // Source maps beside each file: the image keeps them, and NODE_OPTIONS=--enable-source-maps
        // makes a stack trace name the compiled module and line (README, "Service bundles").
        output: {
          dir: next,
          format: 'esm',
          entryFileNames: '[name].js',
          chunkFileNames: 'chunks/[name]-[hash].js',
          keepNames: true,
          sourcemap: true,
        },
      });
      const entries = new Set(Object.keys(input).map((name) => `${name}.js`));
      moveInto(next, out, entries);
    } finally {
      rmSync(next, { recursive: true, force: true });
    }
  }),
);
process.stderr.write(`parley: bundled ${services.length} services in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
