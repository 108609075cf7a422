/**
 * dist/load.cjs: loads core's code, dist/core.cjs (one CommonJS bundle of every module of core),
 * once per thread, with V8's code cache.
 *
 * Every entry of the package (dist/index.js, testing.js, …) is a view of what this loads, and
 * Node keeps one instance of a CommonJS module per thread: a thread has one runtime and one
 * Channel class whichever entries it imports. A worker loads core without the ESM loader and
 * mostly without compiling it: on 2 cores, a pool's start is the sum of its workers' starts.
 *
 * The code cache is V8's compiled form of the bundle after its top level ran: a thread that
 * finds it skips most of the parsing and compiling of core. It lies beside core.cjs, one file per
 * set of Node options the program runs with (`core.cjs.<hash of them>.v8cache`: V8 refuses a
 * cache made under other flags, and programs run with different ones must not keep replacing
 * each other's). Its first line says what it was made from (core.cjs's build line, size, time and
 * inode, Node's version and architecture) and what it holds (its length and a hash of a sample
 * of it); a cache that does not match is not given to V8, which checks little of it in release
 * builds and may crash on a damaged one. It is written by the main thread (one writer per
 * program) when missing, stale or refused by V8: to a file of its own, flushed to disk, then
 * renamed over the old one, so that a reader sees a whole file or none. Where dist/ cannot be
 * written, core loads without one. Nothing outside dist/ is written: a code cache runs as code,
 * so it lives where only the package's owner can write.
 *
 * Not used: with OCCAM_CODE_CACHE=0 in the environment, and when source maps are on as core
 * loads (`--enable-source-maps`, `occam run`): Node maps the frames of what it loads itself, not
 * of code compiled here, so core is then loaded as a plain CommonJS module.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

/** What became of the code cache in this thread (tests read it). */
type CodeCache = 'used' | 'written' | 'none' | 'off';

const file = join(__dirname, 'core.cjs');

/** FNV-1a over a string's char codes, as 8 hex digits. */
function hashText(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** A hash of every 64th byte of `data` (a damaged or foreign file rarely keeps it): ~0.1 ms. */
function hashSample(data: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i += 64) h = Math.imul(h ^ data[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The cache's data, if its first line says it was made from this core.cjs, here, and is whole. */
function cached(cacheFile: string, key: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  const end = data.indexOf(10);
  if (end < 0) return undefined;
  const header = data.subarray(0, end).toString('latin1');
  const payload = data.subarray(end + 1);
  return header === `${key} ${payload.length} ${hashSample(payload)}` ? payload : undefined;
}

/** Writes the cache whole or not at all; false if it could not be written. */
function writeCache(cacheFile: string, key: string, payload: Buffer): boolean {
  const tmp = `${cacheFile}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    writeSync(fd, Buffer.from(`${key} ${payload.length} ${hashSample(payload)}\n`, 'latin1'));
    writeSync(fd, payload);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, cacheFile);
    return true;
  } catch {
    // a read-only install: core loads without a cache
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    return false;
  }
}

/** The options Node was started with, less a program given on the command line (`-e`, `-p`). */
function nodeOptions(): string[] {
  const options: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print') i++;
    else if (!a.startsWith('--eval=') && !a.startsWith('--print=')) options.push(a);
  }
  return options;
}

function load(): { exports: Record<string, unknown>; codeCache: CodeCache } {
  if (process.env.OCCAM_CODE_CACHE === '0' || process.sourceMapsEnabled) {
    return { exports: require(file) as Record<string, unknown>, codeCache: 'off' };
  }
  const fd = openSync(file, 'r');
  const stat = fstatSync(fd);
  const source = readFileSync(fd, 'latin1'); // (all ASCII: see scripts/build.mjs)
  closeSync(fd);
  const options = hashText(`${nodeOptions().join('\0')}\n${process.env.NODE_OPTIONS ?? ''}`);
  const cacheFile = join(__dirname, `core.cjs.${options}.v8cache`);
  const made = `${source.slice(0, source.indexOf('\n'))} ${stat.size} ${stat.mtimeMs} ${stat.ino}`;
  const key = `${made} ${process.version} ${process.arch}`;
  const cachedData = cached(cacheFile, key);
  // The bundle's own module wrapper, plus `coreImport`: what internal/import-module.ts calls in
  // the bundle (code compiled here cannot run import() itself on Node 20).
  const script = new Script(`(function (exports, require, module, __filename, __dirname, coreImport) {${source}\n})`, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
  const mod = { exports: {} as Record<string, unknown> };
  const body = script.runInThisContext() as (...args: unknown[]) => void;
  body.call(mod.exports, mod.exports, createRequire(file), mod, file, __dirname, (url: string) => import(url));
  if (cachedData !== undefined && script.cachedDataRejected !== true) return { exports: mod.exports, codeCache: 'used' };
  const written = isMainThread && writeCache(cacheFile, key, script.createCachedData());
  return { exports: mod.exports, codeCache: written ? 'written' : 'none' };
}

const { exports, codeCache } = load();
Object.defineProperty(exports, Symbol.for('occam.codeCache'), { value: codeCache });
module.exports = exports;
