// Builds the SDK: dist/obsd.mjs (ES module) and dist/sdk.js (minified IIFE for a script tag),
// with web-vitals bundled in, and prints the gzipped size of the IIFE.
//   node build.mjs [outdir]     (default: dist)
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const outdir = process.argv[2] || 'dist';
const common = {
  bundle: true,
  minify: true,
  target: ['es2022'],
  // Members named `_x` are internal; renaming them is safe because everything is bundled.
  mangleProps: /^_/,
  legalComments: 'none',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/auto.ts'], format: 'iife', outfile: join(outdir, 'sdk.js') });
await build({ ...common, entryPoints: ['src/index.ts'], format: 'esm', outfile: join(outdir, 'obsd.mjs') });

for (const name of ['sdk.js', 'obsd.mjs']) {
  const bytes = readFileSync(join(outdir, name));
  console.log(`${name}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} bytes gzipped`);
}
