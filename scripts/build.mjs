// Builds every package's src/ into dist/, one JavaScript file per TypeScript file.
// Workers load the built files: Node 20 cannot load TypeScript in a worker.
import { build } from 'esbuild';
import { readdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const packages = readdirSync(join(root, 'packages'));

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

await Promise.all(
  packages.map(async (name) => {
    const src = join(root, 'packages', name, 'src');
    if (!existsSync(src)) return;
    const out = join(root, 'packages', name, 'dist');
    rmSync(out, { recursive: true, force: true });
    await build({
      entryPoints: sources(src),
      outdir: out,
      outbase: src,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'linked',
      logLevel: 'warning',
    });
  }),
);
