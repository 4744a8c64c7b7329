// Builds the SDK with web-vitals bundled in and prints the gzipped size of each file:
//   dist/sdk.js   minified IIFE for <script src=".../sdk.js" data-api-key="...">
//   dist/sdk.mjs  minified ES module exporting Observability
// Usage: node build.mjs [outdir] [--ship]
//   --ship also copies both into ../obsd/static/, the copies the Python package serves.
import { build } from 'esbuild';
import { copyFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const ship = args.includes('--ship');
const outdir = args.find((a) => !a.startsWith('--')) || join(here, 'dist');
const FILES = { 'sdk.js': ['src/auto.ts', 'iife'], 'sdk.mjs': ['src/index.ts', 'esm'] };

for (const [name, [entry, format]] of Object.entries(FILES)) {
  await build({
    absWorkingDir: here,
    entryPoints: [entry],
    outfile: join(outdir, name),
    format,
    bundle: true,
    minify: true,
    target: ['es2022'],
    // Members named `_x` are internal; renaming them is safe because everything is bundled.
    mangleProps: /^_/,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const bytes = readFileSync(join(outdir, name));
  console.log(`${name}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} bytes gzipped`);
  if (ship) copyFileSync(join(outdir, name), join(here, '..', 'obsd', 'static', name));
}
