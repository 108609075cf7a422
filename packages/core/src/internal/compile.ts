/**
 * Makes a process module loadable by a worker. Workers on Node 20 load JavaScript only, so a
 * TypeScript module is bundled with esbuild into a cache and the worker imports the bundle.
 *
 * What goes into a bundle: the module and the files it imports that need compiling (.ts, .mts,
 * .cts, .tsx, .jsx). Everything else stays outside: `node:` builtins as written, and every
 * package or JavaScript import rewritten to the absolute `file:` URL of the file Node itself
 * would load. So a worker imports the very file every other module in that thread imports, and
 * gets the same module instance; `@occam/core` keeps one runtime state per thread.
 *
 * Cache layout, under cacheDir() (`<nearest node_modules above cwd>/.cache/occam`, else
 * `<os.tmpdir()>/occam-cache-<uid>`):
 *
 *   <stem>-<entryKey>.json    manifest: the latest output for one input path, and the stamps
 *                             (mtime, ctime, size) of every file that output was built from
 *   <stem>-<contentKey>.mjs   a bundle, with an inline source map
 *
 *   entryKey   = hash(format, esbuild version, input path, resolve conditions)
 *   contentKey = hash(entryKey, contents of every bundled input and tsconfig.json,
 *                     what each external import resolved to)
 *
 * Invariants
 * - A bundle's name carries the hash of everything that decided its bytes: a bundle file is
 *   never rewritten with other bytes, so concurrent writers (threads, processes) race only to
 *   rename identical files into place, and a URL once imported keeps its meaning. An edit
 *   therefore yields a new URL, which Node's module map has not seen.
 * - A manifest is renamed into place only after the bundle it names, so a reader never finds a
 *   manifest whose bundle was not written.
 * - A memo or manifest entry is used only after every dependency it lists stats as recorded
 *   (and, for a file modified within RACY_MS of being recorded, hashes as recorded).
 */

import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId } from 'node:worker_threads';
import type { BuildFailure, Loader, Message, Plugin } from 'esbuild';
import { InvalidArgumentError } from '../errors.js';

/** Bump when the bundle options or the cache format change: old entries then miss. */
const FORMAT = 1;

/** Extensions a worker can import as they are. */
const LOADABLE = new Set(['.js', '.mjs', '.cjs']);

/** Extensions that need compiling, and the esbuild loader for each. */
const COMPILED: ReadonlyMap<string, Loader> = new Map<string, Loader>([
  ['.ts', 'ts'],
  ['.mts', 'ts'],
  ['.cts', 'ts'],
  ['.tsx', 'tsx'],
  ['.jsx', 'jsx'],
]);

/**
 * Coarse file timestamps (one kernel tick) cannot tell apart two writes in the same tick. A
 * file modified this close to the moment it was recorded is "racy" (git's term) and is also
 * checked by content until it has been quiet for longer.
 */
const RACY_MS = 1000;

/** Bundled files see their own location in `import.meta`, not the cache file's (see prelude). */
const META_IDS = { url: '__occamMetaUrl', filename: '__occamMetaFilename', dirname: '__occamMetaDirname' } as const;

/** How many calls were answered by each path, in this thread. */
export interface CompileStats {
  /** Answered from the in-process memo after re-statting its dependencies. */
  readonly memoHits: number;
  /** Answered from a manifest on disk (a previous run, or another thread) without esbuild. */
  readonly diskHits: number;
  /** Bundles built with esbuild. */
  readonly builds: number;
}

/** A file a bundle was built from, as recorded. */
interface Dep {
  readonly path: string;
  readonly stamp: string;
  /** sha256 of the contents; null where contents do not matter (an external's target). */
  readonly digest: string | null;
  /** Modified within RACY_MS of being recorded: compare `digest` too. Cleared once quiet. */
  racy: boolean;
}

/** One compiled module: what a memo or manifest entry holds. */
interface Compiled {
  readonly output: string;
  readonly url: string;
  readonly deps: Dep[];
}

const stats = { memoHits: 0, diskHits: 0, builds: 0 };
/** Input path → its latest bundle. Only this thread reads or writes it. */
const memo = new Map<string, Compiled>();
/** Input path → the build in progress, so concurrent calls in one thread build once. */
const inflight = new Map<string, Promise<string>>();
let cacheDirectory: string | undefined;

/**
 * Returns a URL a worker can `import()`: the input itself for .js/.mjs/.cjs; for
 * .ts/.mts/.cts/.tsx (and .jsx) an esbuild bundle in a cache.
 *
 * `moduleUrl` is a `file:` URL (string or URL object) or an absolute path. Throws
 * InvalidArgumentError (`ERR_INVALID_ARGUMENT`) for another scheme, a relative path, a missing
 * file, an extension a worker cannot load, or a module that does not compile.
 *
 * In a bundle, `import.meta.url`, `.filename` and `.dirname` name the original source file, so
 * `new URL('./data.json', import.meta.url)` and `createRequire(import.meta.url)` work as in the
 * source; `import.meta.resolve` and non-literal relative `import()` resolve from the cache file.
 */
export async function loadableModuleUrl(moduleUrl: string | URL): Promise<string> {
  const path = toPath(moduleUrl);
  const known = memo.get(path);
  if (known !== undefined && isFresh(known)) {
    stats.memoHits++;
    return known.url;
  }
  const st = statSync(path, { throwIfNoEntry: false });
  if (st === undefined || !st.isFile()) {
    throw new InvalidArgumentError(`process module ${path} does not exist or is not a file; check the path`);
  }
  const ext = extname(path).toLowerCase();
  if (LOADABLE.has(ext)) return pathToFileURL(path).href;
  if (!COMPILED.has(ext)) {
    throw new InvalidArgumentError(
      `cannot load ${path} in a worker: a process module must end in .js, .mjs, .cjs, .ts, .mts, .cts or .tsx`,
    );
  }
  let pending = inflight.get(path);
  if (pending === undefined) {
    pending = compileCached(path).finally(() => inflight.delete(path));
    inflight.set(path, pending);
  }
  return pending;
}

/** How many calls each path answered in this thread (for tests and diagnostics). */
export function compileStats(): CompileStats {
  return { ...stats };
}

/** Forgets the in-process memo, as a new run would; the disk cache stays. For tests. */
export function forgetCompiledModules(): void {
  memo.clear();
}

/**
 * The cache directory: `<nearest node_modules above process.cwd()>/.cache/occam` when it can
 * be written, else a private `occam-cache-<uid>` in the OS temp directory. Fixed per thread on
 * first use.
 */
export function cacheDir(): string {
  if (cacheDirectory !== undefined) return cacheDirectory;
  const nodeModules = nearestNodeModules(process.cwd());
  if (nodeModules !== undefined) {
    const dir = join(nodeModules, '.cache', 'occam');
    try {
      mkdirSync(dir, { recursive: true });
      probeWritable(dir);
      return (cacheDirectory = dir);
    } catch {
      // A read-only install (global, container image): fall through to the temp directory.
    }
  }
  return (cacheDirectory = privateTempDir());
}

function toPath(moduleUrl: string | URL): string {
  if (moduleUrl instanceof URL) {
    if (moduleUrl.protocol !== 'file:') throw unsupportedScheme(moduleUrl.href);
    return fileURLToPath(moduleUrl);
  }
  if (typeof moduleUrl !== 'string') {
    throw new InvalidArgumentError(`a process module must be a file: URL or an absolute path, got ${typeof moduleUrl}`);
  }
  // Before the scheme test: `C:\x.ts` would read as scheme `c:`.
  if (isAbsolute(moduleUrl)) return resolvePath(moduleUrl);
  if (moduleUrl.startsWith('file:')) {
    try {
      return fileURLToPath(moduleUrl);
    } catch {
      throw new InvalidArgumentError(`${moduleUrl} is not a valid local file: URL; pass an absolute path instead`);
    }
  }
  if (/^[a-z][a-z\d+.-]*:/i.test(moduleUrl)) throw unsupportedScheme(moduleUrl);
  throw new InvalidArgumentError(
    `process module ${moduleUrl} is a relative path; pass an absolute path or a URL such as ` +
      `new URL('./worker.ts', import.meta.url)`,
  );
}

function unsupportedScheme(url: string): InvalidArgumentError {
  return new InvalidArgumentError(`cannot load process module ${url}: only file: URLs and absolute paths are supported`);
}

async function compileCached(path: string): Promise<string> {
  const dir = cacheDir();
  const resolveOptions = nodeResolveOptions();
  const entryKey = hash([String(FORMAT), esbuildVersion(), path, JSON.stringify(resolveOptions)]);
  const stem = basename(path).replace(/\.[^.]*$/, '').replace(/[^\w.-]/g, '_');
  const manifestPath = join(dir, `${stem}-${entryKey}.json`);

  const stored = readManifest(manifestPath, dir);
  if (stored !== undefined && isFresh(stored)) {
    stats.diskHits++;
    memo.set(path, stored);
    return stored.url;
  }

  const built = await bundle(path, dir, resolveOptions);
  const contentKey = hash([entryKey, ...built.keyParts]);
  const output = join(dir, `${stem}-${contentKey}.mjs`);
  // Same name means same bytes (see Invariants), so an existing file is already right.
  if (statSync(output, { throwIfNoEntry: false }) === undefined) writeAtomic(output, built.code);
  const compiled: Compiled = { output, url: pathToFileURL(output).href, deps: built.deps };
  writeAtomic(
    manifestPath,
    JSON.stringify({ format: FORMAT, input: path, output: basename(output), deps: compiled.deps }),
  );
  stats.builds++;
  memo.set(path, compiled);
  return compiled.url;
}

interface Bundle {
  readonly code: string;
  readonly deps: Dep[];
  /** Everything besides the entry key that decided `code`. */
  readonly keyParts: string[];
}

interface ResolveConfig {
  readonly conditions: string[];
  readonly preserveSymlinks: boolean;
}

/** Marks esbuild's nested resolve calls, so the plugin does not recurse into itself. */
const NESTED = 'occamNestedResolve';

async function bundle(path: string, dir: string, config: ResolveConfig): Promise<Bundle> {
  const esbuild = await import('esbuild');
  const loaded = new Map<string, Dep>();
  const externals = new Map<string, string>(); // "kind specifier from dir" → what it became

  const plugin: Plugin = {
    name: 'occam-externals',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point' || (args.pluginData as Record<string, unknown> | undefined)?.[NESTED] === true) {
          return undefined;
        }
        let specifier = args.path;
        if (isBuiltin(specifier)) return { path: specifier, external: true };
        if (/^[a-z][a-z\d+.-]*:/i.test(specifier) && !/^[a-z]:[\\/]/i.test(specifier)) {
          if (!specifier.startsWith('file:')) return { path: specifier, external: true }; // data:, https:
          specifier = fileURLToPath(specifier);
        }
        const asPath = args.kind === 'require-call' || args.kind === 'require-resolve';
        const found = await build.resolve(specifier, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          with: args.with,
          pluginData: { [NESTED]: true },
        });
        let target: string;
        if (found.errors.length > 0 || found.path === '') {
          // Leave the failure to Node at run time, as an unbundled module would meet it: a
          // guarded `try { await import('optional') }` must keep working.
          if (!isRelativeOrAbsolute(specifier)) return { path: args.path, external: true };
          target = resolvePath(args.resolveDir, specifier);
        } else if (found.external || COMPILED.has(extname(found.path).toLowerCase())) {
          return found.external ? { path: found.path, external: true } : { path: found.path };
        } else {
          target = found.path;
        }
        const rewritten = asPath ? target : pathToFileURL(target).href;
        externals.set(`${args.kind} ${args.path} from ${args.resolveDir}`, rewritten);
        return { path: rewritten, external: true };
      });

      build.onLoad({ filter: /.*/, namespace: 'file' }, (args) => {
        const loader = COMPILED.get(extname(args.path).toLowerCase());
        if (loader === undefined) return undefined;
        const stamped = stampFile(args.path); // before the read: see stampFile
        const bytes = readFileSync(args.path);
        loaded.set(args.path, { path: args.path, ...stamped, digest: hashBytes(bytes) });
        return { contents: withPrelude(bytes.toString('utf8'), args.path), loader };
      });
    },
  };

  let result;
  try {
    result = await esbuild.build({
      entryPoints: [path],
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      write: false,
      metafile: true,
      // Only its directory matters: source map `sources` are written relative to it.
      outfile: join(dir, 'bundle.mjs'),
      absWorkingDir: dirname(path),
      // Match Node's ESM resolver, not a bundler's: no `module` condition or field, no `types`.
      conditions: config.conditions,
      mainFields: ['main'],
      preserveSymlinks: config.preserveSymlinks,
      define: {
        'import.meta.url': META_IDS.url,
        'import.meta.filename': META_IDS.filename,
        'import.meta.dirname': META_IDS.dirname,
      },
      logLevel: 'silent',
      plugins: [plugin],
    });
  } catch (err) {
    const errors = (err as Partial<BuildFailure>).errors;
    if (errors === undefined) throw err;
    const compileError = new InvalidArgumentError(
      `cannot compile process module ${path}:\n${errors.map(describeMessage).join('\n')}\nfix the module and spawn it again`,
    );
    compileError.cause = err;
    throw compileError;
  }
  const code = result.outputFiles[0]?.text;
  if (code === undefined) throw new Error(`esbuild produced no output for ${path}`);

  // The metafile is the authority on what went into the bundle; onLoad saw each file's bytes.
  const inputs = Object.keys(result.metafile.inputs).map((p) => resolvePath(dirname(path), p));
  const deps: Dep[] = [];
  const keyParts: string[] = [];
  for (const input of inputs.sort()) {
    const dep = loaded.get(input) ?? recordFile(input, true);
    deps.push(dep);
    keyParts.push(`in ${input} ${dep.digest ?? ''}`);
  }
  // esbuild also read tsconfig.json (decorators, class fields, jsx, paths), which decides the
  // bytes too. Only the nearest one per directory is tracked, not its `extends` chain.
  for (const tsconfig of new Set(inputs.map((i) => nearestTsconfig(dirname(i))))) {
    if (tsconfig === undefined) continue;
    const dep = recordFile(tsconfig, true);
    deps.push(dep);
    keyParts.push(`tsconfig ${tsconfig} ${dep.digest ?? ''}`);
  }
  for (const [from, to] of [...externals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    keyParts.push(`ext ${from} ${to}`);
    const target = to.startsWith('file:') ? fileURLToPath(to) : to;
    // A removed or reinstalled package must trigger a rebuild, which re-resolves.
    if (!deps.some((d) => d.path === target)) deps.push(recordFile(target, false));
  }
  return { code, deps, keyParts };
}

/**
 * Declares the original location for `import.meta` (see `define` above) on the module's first
 * line, so line numbers in the source map stay right; esbuild renames it per module and drops
 * it where unused. After a hashbang, which must stay first.
 */
function withPrelude(source: string, path: string): string {
  const prelude =
    `var ${META_IDS.url} = ${JSON.stringify(pathToFileURL(path).href)}, ` +
    `${META_IDS.filename} = ${JSON.stringify(path)}, ${META_IDS.dirname} = ${JSON.stringify(dirname(path))};`;
  if (!source.startsWith('#!')) return prelude + source;
  const eol = source.indexOf('\n');
  return eol < 0 ? source : source.slice(0, eol + 1) + prelude + source.slice(eol + 1);
}

/**
 * Stamps a file. The stamp is taken before any read of the contents: if the file changes after
 * the stamp, the next check sees a newer stamp and rebuilds (never the reverse).
 */
function stampFile(path: string): { stamp: string; racy: boolean } {
  const now = Date.now();
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return { stamp: '-', racy: false };
  return { stamp: `${st.mtimeNs}:${st.ctimeNs}:${st.size}`, racy: now - Number(st.mtimeMs) < RACY_MS };
}

function recordFile(path: string, withDigest: boolean): Dep {
  const stamped = stampFile(path);
  const digest = withDigest && stamped.stamp !== '-' ? hashBytes(readFileSync(path)) : null;
  return { path, ...stamped, digest };
}

function stampOf(path: string): string {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st === undefined ? '-' : `${st.mtimeNs}:${st.ctimeNs}:${st.size}`;
}

/** The cache-hit check: one stat per dependency, plus a read of any racy one. */
function isFresh(entry: Compiled): boolean {
  for (const dep of entry.deps) {
    if (stampOf(dep.path) !== dep.stamp) return false;
    if (dep.racy && dep.digest !== null) {
      if (hashBytes(readFileSync(dep.path)) !== dep.digest) return false;
      const mtimeNs = BigInt(dep.stamp.slice(0, dep.stamp.indexOf(':')));
      dep.racy = Date.now() - Number(mtimeNs / 1_000_000n) < RACY_MS;
    }
  }
  // Someone may have cleared the cache under a running program.
  return statSync(entry.output, { throwIfNoEntry: false }) !== undefined;
}

function readManifest(manifestPath: string, dir: string): Compiled | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    return undefined; // absent, or from a crashed writer of an older format
  }
  const m = raw as { format?: unknown; output?: unknown; deps?: unknown };
  if (m.format !== FORMAT || typeof m.output !== 'string' || !Array.isArray(m.deps)) return undefined;
  const output = join(dir, basename(m.output));
  return { output, url: pathToFileURL(output).href, deps: m.deps as Dep[] };
}

/** Writes to a private temp name and renames, so readers see the old file or the whole new one. */
function writeAtomic(target: string, data: string): void {
  const temp = `${target}.${process.pid}-${threadId}-${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, data);
  try {
    renameSync(temp, target);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
    // Windows refuses to replace a file another process holds open; for a content-named bundle
    // the file already there is identical.
    if (statSync(target, { throwIfNoEntry: false }) === undefined) throw err;
  }
}

/** The conditions and flags Node's ESM resolver uses in this thread, so esbuild picks the same files. */
function nodeResolveOptions(): ResolveConfig {
  const conditions: string[] = [];
  // Node 20.19+ resolves `module-sync` for import when require(esm) is on.
  if (process.features.require_module) conditions.push('module-sync');
  const flags = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/).filter(Boolean)];
  let preserveSymlinks = false;
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] ?? '';
    if (flag === '--preserve-symlinks') preserveSymlinks = true;
    const eq = /^(?:--conditions|-C)=(.+)$/.exec(flag);
    if (eq?.[1] !== undefined) conditions.push(eq[1]);
    else if ((flag === '--conditions' || flag === '-C') && flags[i + 1] !== undefined) conditions.push(flags[++i] ?? '');
  }
  return { conditions, preserveSymlinks };
}

let esbuildVersionMemo: string | undefined;
/** Read from package.json, so a cache hit never loads esbuild itself. */
function esbuildVersion(): string {
  esbuildVersionMemo ??= (createRequire(import.meta.url)('esbuild/package.json') as { version: string }).version;
  return esbuildVersionMemo;
}

function isRelativeOrAbsolute(specifier: string): boolean {
  return /^\.{1,2}(?:[\\/]|$)/.test(specifier) || isAbsolute(specifier);
}

function nearestNodeModules(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules');
    if (statSync(candidate, { throwIfNoEntry: false })?.isDirectory()) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

const tsconfigByDir = new Map<string, string | undefined>();
function nearestTsconfig(dir: string): string | undefined {
  if (tsconfigByDir.has(dir)) return tsconfigByDir.get(dir);
  const here = join(dir, 'tsconfig.json');
  const found = statSync(here, { throwIfNoEntry: false })?.isFile()
    ? here
    : dirname(dir) === dir
      ? undefined
      : nearestTsconfig(dirname(dir));
  tsconfigByDir.set(dir, found);
  return found;
}

function probeWritable(dir: string): void {
  const probe = join(dir, `.probe-${process.pid}-${threadId}`);
  writeFileSync(probe, '');
  unlinkSync(probe);
}

/**
 * The shared temp directory is writable by everyone: use the per-user directory only if this
 * user owns it and nobody else can write to it, else a fresh one for this run (no reuse).
 */
function privateTempDir(): string {
  let user: string;
  try {
    user = String(process.getuid?.() ?? userInfo().username);
  } catch {
    user = 'user';
  }
  const dir = join(tmpdir(), `occam-cache-${user.replace(/[^\w.-]/g, '_')}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const mine = process.getuid === undefined || (st.uid === process.getuid() && (st.mode & 0o022) === 0);
    if (st.isDirectory() && mine) {
      probeWritable(dir);
      return dir;
    }
  } catch {
    // fall through to a fresh directory
  }
  return mkdtempSync(join(tmpdir(), 'occam-cache-'));
}

function describeMessage(m: Message): string {
  const at = m.location === null ? '' : `${m.location.file}:${m.location.line}:${m.location.column + 1}: `;
  return `  ${at}${m.text}`;
}

function hash(parts: readonly string[]): string {
  const h = createHash('sha256');
  for (const part of parts) h.update(part).update('\0');
  return h.digest('hex').slice(0, 24);
}

function hashBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
