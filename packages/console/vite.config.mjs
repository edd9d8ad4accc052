// Vite bundles the console for the edge to serve under /console: hashed file names (cached for a
// year), no inline script or style (the edge's Content-Security-Policy forbids both), and
// @parley/client and @parley/proto from their compiled dist (the root build runs tsc -b first).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  root: import.meta.dirname,
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
