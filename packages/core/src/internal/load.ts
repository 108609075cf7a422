/**
 * dist/load.cjs: loads core's code, dist/core.cjs (one CommonJS bundle of every module of core),
 * once per thread, with V8's code cache.
 *
 * Every entry of the package (dist/index.js, testing.js, …) is a view of what this loads, and
 * Node keeps one instance of a CommonJS module per thread: a thread has one runtime and one
 * Channel class whichever entries it imports. A worker loads core without the ESM loader and
 * without parsing it: on 2 cores, a pool's start is the sum of its workers' starts.
 *
 * The code cache (core.cjs.v8cache beside core.cjs) is V8's compiled form of the bundle after
 * its top level ran: a thread that finds it skips most of the parsing and compiling of core. It
 * is written by the main thread only (workers may run with other V8 flags, which V8 would refuse
 * to share a cache across), when missing, made for another build of core.cjs or another Node
 * (its first line: the build's id, from core.cjs's first line, Node's version and architecture),
 * or refused by V8; where dist/ cannot be written, core loads without one. Nothing outside dist/
 * is written: a code cache runs as code, so it lives where only the package's owner can write.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

const file = join(__dirname, 'core.cjs');
const cacheFile = join(__dirname, 'core.cjs.v8cache');

const source = readFileSync(file, 'latin1'); // (all ASCII: see scripts/build.mjs)
const key = `${source.slice(0, source.indexOf('\n'))} ${process.version} ${process.arch}\n`;

/** The cache's data if it was made from this core.cjs on this Node. */
function cached(): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  const header = data.subarray(0, key.length).toString('latin1');
  return header === key ? data.subarray(key.length) : undefined;
}

const cachedData = cached();
// The bundle's own module wrapper, plus `coreImport`: what internal/import-module.ts calls in the bundle: code compiled
// here cannot run import() itself on Node 20.
const script = new Script(`(function (exports, require, module, __filename, __dirname, coreImport) {${source}\n})`, {
  filename: file,
  ...(cachedData === undefined ? {} : { cachedData }),
});
const mod = { exports: {} as Record<string, unknown> };
const body = script.runInThisContext() as (...args: unknown[]) => void;
body.call(mod.exports, mod.exports, createRequire(file), mod, file, __dirname, (url: string) => import(url));

/** What became of the code cache in this thread (tests read it). */
let codeCache: 'used' | 'written' | 'none' = 'used';
if (cachedData === undefined || script.cachedDataRejected === true) {
  codeCache = 'none';
  if (isMainThread) {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, Buffer.concat([Buffer.from(key, 'latin1'), script.createCachedData()]));
      renameSync(tmp, cacheFile); // whole or not at all, for a thread reading it now
      codeCache = 'written';
    } catch {
      // a read-only install: core loads without a cache
      rmSync(tmp, { force: true });
    }
  }
}
Object.defineProperty(mod.exports, Symbol.for('occam.codeCache'), { value: codeCache });

module.exports = mod.exports;
