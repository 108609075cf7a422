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
 * each other's; the eight most recent are kept). Its first line says what it was made from
 * (core.cjs's build line, size, time and inode, Node's version and architecture) and what it
 * holds (its length and a hash of all of it); a cache that does not match is never given to V8,
 * which checks little of it in release builds and may crash on a damaged one. The main thread
 * checks the whole file (~1.3 ms) and tells the workers it starts which file it checked; other
 * threads check it themselves. It is written by the main thread (one writer per program) when
 * missing, stale or refused by V8: to a file of its own, flushed to disk, then renamed over the
 * old one, so that a reader sees a whole file or none. Where dist/ cannot be written, core loads
 * without one. Nothing outside dist/ is written: a code cache runs as code, so it lives where
 * only the package's owner can write.
 *
 * Not used: with OCCAM_CODE_CACHE=0 in the environment, and when source maps are on as core
 * loads (`--enable-source-maps`, `occam run`): Node maps the frames of what it loads itself, not
 * of code compiled here, so core is then loaded as a plain CommonJS module.
 */
import { type Stats, closeSync, fstatSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { isMainThread, workerData } from 'node:worker_threads';

/** What became of the code cache in this thread (tests read it). */
type CodeCache = 'used' | 'written' | 'none' | 'off';

const file = join(__dirname, 'core.cjs');

/** FNV-1a over a string's char codes, as 8 hex digits. */
function hashText(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** FNV-1a over `data`, four bytes at a time (~1.3 ms for core's cache, cold). */
function hashBytes(data: Buffer): string {
  let h = 0x811c9dc5;
  const words = data.length >>> 2;
  // (A Buffer read from a file of this size has its own memory, at offset 0: a cache's payload,
  // after its padded first line, is 8-aligned; else it is copied.)
  let w: Int32Array;
  if (data.byteOffset % 4 === 0) w = new Int32Array(data.buffer, data.byteOffset, words);
  else {
    w = new Int32Array(words);
    new Uint8Array(w.buffer).set(data.subarray(0, words * 4));
  }
  for (let i = 0; i < words; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
  for (let i = words * 4; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * The cache's data, if its first line says it was made from this core.cjs, here, and it is
 * whole: its length and the hash of all of it match. (V8 checks little of a cache in release
 * builds and may crash on a damaged one: a damaged cache must never reach it.) A worker of
 * occam's own is told by main which cache file main checked (workerData.coreCache: its inode,
 * time and size): it skips the hash for that very file.
 */
function cached(cacheFile: string, key: string): Buffer | undefined {
  let data: Buffer;
  let identity: string;
  try {
    const fd = openSync(cacheFile, 'r');
    try {
      identity = identityOf(fstatSync(fd));
      data = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const end = data.indexOf(10);
  if (end < 0) return undefined;
  const header = data.subarray(0, end).toString('latin1').trimEnd(); // (padded: see writeCache)
  const payload = data.subarray(end + 1);
  const [, length, hash] = /^.* (\d+) ([0-9a-f]{8})$/.exec(header) ?? [];
  if (header !== `${key} ${length} ${hash}` || Number(length) !== payload.length) return undefined;
  const checkedByMain = !isMainThread && (workerData as { coreCache?: unknown } | null)?.coreCache === identity;
  if (!checkedByMain && hashBytes(payload) !== hash) return undefined;
  checked = identity;
  return payload;
}

/** What tells one cache file from another (a rewrite is a new file: see writeCache). */
function identityOf(st: Stats): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

/** The identity of the cache file this thread checked, or wrote (see `cached`). */
let checked: string | undefined;

/** At most this many caches (sets of Node options) are kept beside core.cjs: the oldest go. */
const MAX_CACHES = 8;

/** Writes the cache whole or not at all; false if it could not be written. */
function writeCache(cacheFile: string, key: string, make: () => Buffer): boolean {
  const tmp = `${cacheFile}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o644); // first: where dist/ is read-only, no cache is made for nothing
    const payload = make();
    // Spaces pad the first line to a multiple of 8 bytes: the payload after it is then aligned,
    // and is hashed in place (see hashBytes).
    const line = `${key} ${payload.length} ${hashBytes(payload)}`;
    writeSync(fd, Buffer.from(`${line.padEnd(Math.ceil((line.length + 1) / 8) * 8 - 1)}\n`, 'latin1'));
    writeSync(fd, payload);
    fsyncSync(fd);
    const identity = identityOf(fstatSync(fd));
    closeSync(fd);
    fd = -1;
    renameSync(tmp, cacheFile);
    checked = identity;
  } catch {
    // a read-only install: core loads without a cache
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    return false;
  }
  pruneCaches();
  return true;
}

/** Removes the oldest caches beyond MAX_CACHES (programs run with many sets of options). */
function pruneCaches(): void {
  try {
    const caches = readdirSync(__dirname)
      .filter((f) => /^core\.cjs\.[0-9a-f]{8}\.v8cache$/.test(f))
      .map((f) => ({ f, t: statSync(join(__dirname, f)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const { f } of caches.slice(MAX_CACHES)) rmSync(join(__dirname, f), { force: true });
  } catch {
    // another program pruned them first
  }
}

/** The options Node was started with, less a program given on the command line (`-e`, `-p`). */
function nodeOptions(): string[] {
  const options: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (/^-[a-zA-Z]*[ep][a-zA-Z]*$/.test(a) || a === '--eval' || a === '--print') i++; // (-e, -p, -pe…)
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
  // The bundle's own module wrapper, plus `coreImport`: what internal/loader-import.ts calls in
  // the bundle (code compiled here cannot run import() itself on Node 20).
  const script = new Script(`(function (exports, require, module, __filename, __dirname, coreImport) {${source}\n})`, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
  const mod = { exports: {} as Record<string, unknown> };
  const body = script.runInThisContext() as (...args: unknown[]) => void;
  // Core's top level makes a few errors that are never thrown (ts-results-es's empty Err, which
  // reads its own stack): without stack traces, the thread's first stack is not formatted then
  // (~0.5 ms of each worker's start here).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    body.call(mod.exports, mod.exports, createRequire(file), mod, file, __dirname, (url: string) => import(url));
  } finally {
    Error.stackTraceLimit = limit;
  }
  if (cachedData !== undefined && script.cachedDataRejected !== true) return { exports: mod.exports, codeCache: 'used' };
  const written = isMainThread && writeCache(cacheFile, key, () => script.createCachedData());
  return { exports: mod.exports, codeCache: written ? 'written' : 'none' };
}

const { exports, codeCache } = load();
Object.defineProperty(exports, Symbol.for('occam.codeCache'), { value: codeCache });
// For the workers main starts (internal/host.ts): the cache file it checked, or wrote.
if (isMainThread && checked !== undefined) (globalThis as Record<symbol, unknown>)[Symbol.for('occam.coreCache')] = checked;
module.exports = exports;
