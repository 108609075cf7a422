/**
 * Makes a process module loadable by a worker. Workers on Node 20 load JavaScript only, so a
 * TypeScript module is bundled with esbuild into a cache and the worker imports the bundle.
 *
 * A bundle holds the module and the files it imports that need compiling (.ts .mts .cts .tsx
 * .jsx). Everything else stays outside: `node:` builtins as written, every package or JavaScript
 * import rewritten to the absolute `file:` URL of the file Node itself would load. So a worker
 * imports the very file every other module in that thread imports, and gets the same module
 * instance: `@occam/core` keeps one runtime state per thread.
 *
 * Cache layout, in cacheDir() (`<nearest node_modules above cwd>/.cache/occam`, else
 * `<os.tmpdir()>/occam-cache-<uid>`):
 *
 *   <stem>-<entryKey>.json    manifest: the latest bundle for one input path, and the stamps
 *                             (mtime, ctime, size) of every file it was built from
 *   <stem>-<contentKey>.mjs   a bundle, with an inline source map
 *
 *   entryKey   = fnv(format, esbuild and Node versions, cache dir, input path, conditions)
 *   contentKey = hash(entryKey, contents of every bundled input, its tsconfig.json and the
 *                     files that extends, what each external import resolved to)
 *
 * Invariants
 * - A bundle's name carries the hash of everything that decided its bytes: a bundle file is
 *   never rewritten with other bytes, so concurrent writers (threads, processes) race only to
 *   rename identical files into place, and a URL once imported keeps its meaning. An edit
 *   yields a new URL, which Node's module map has not seen.
 * - A manifest is renamed into place only after the bundle it names.
 * - A manifest records what its entryKey was made of, and is used only if that matches: the
 *   key is a quick 64-bit hash (a cache hit loads no crypto), so two inputs could share one.
 * - A memo or manifest entry is used only after every dependency it lists stats as recorded
 *   (and, for a file modified within RACY_MS of being recorded, hashes as recorded), and every
 *   directory an import was resolved in (a bundled file's, a relative import's) lists the same
 *   modules as when it was built, with the same package.json (a new file there, or an edited
 *   `main`, may change what an import resolves to); and every package a bare specifier was
 *   resolved into has the same package.json (its `exports` or `main`) and has not been
 *   installed anew in a node_modules folder nearer to the importer, and no tsconfig.json
 *   has appeared, gone or changed between an input and the tsconfig.json it compiled with, and
 *   none of the files that one `extends` (and they extend) has changed. A dependency that
 *   changed while the build ran is recorded as untrusted: the next look builds again.
 */

import type { Stats } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId } from 'node:worker_threads';
import type { BuildFailure, BuildOptions, Loader, Plugin } from 'esbuild';
import { InvalidArgumentError } from '../errors.js';

// Built-ins by require, node:crypto only when a bundle is built or a racy file checked: a cache
// hit is on the path of a pool's start (main compiles its module while the workers boot, on the
// same cores), and loading node:crypto costs main 2-3 ms; importing node:fs as an ES module builds
// its module facade, which reads every export and so loads the fs streams too.
const require = createRequire(import.meta.url);
const { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } =
  require('node:fs') as typeof import('node:fs');
const crypto = (): typeof import('node:crypto') => require('node:crypto') as typeof import('node:crypto');

/** Bump when the bundle options or the cache format change: old entries then miss. */
const FORMAT = 9;
/** @internal The cache format this build writes (for tests). */
export const CACHE_FORMAT = FORMAT;
/** Extensions a worker imports as they are. */
const LOADABLE = new Set(['.js', '.mjs', '.cjs']);
/** Extensions that need compiling, with esbuild's loader for each. */
const COMPILED = new Map<string, Loader>([['.ts', 'ts'], ['.mts', 'ts'], ['.cts', 'ts'], ['.tsx', 'tsx'], ['.jsx', 'jsx']]);
/**
 * File timestamps are as coarse as a kernel tick, so two writes in one tick look alike. A file
 * modified this close to being recorded is "racy" (git's term): also checked by content.
 */
const RACY_MS = 1000;
/** What `import.meta.*` becomes in bundled files: names each file imports (see withMeta). */
const META = { url: '__occamMetaUrl', filename: '__occamMetaFilename', dirname: '__occamMetaDirname' } as const;
/** `import.meta`, also written with spaces, line breaks or comments around the dot (as `define` sees it). */
const MENTIONS_IMPORT_META = /\bimport\s*(?:\/\*[\s\S]*?\*\/\s*|\/\/[^\n]*\n\s*)*\.\s*meta\b/;
/** The module that gives a file its original location: `occam-meta:<path>` (see withMeta). */
const META_SCHEME = 'occam-meta:';
/** Marks the plugin's own nested `build.resolve` calls, so it does not recurse into itself. */
const NESTED = 'occamNestedResolve';
/** A URL (`data:`, `file:`), not a Windows drive path (`C:\`). */
const isUrl = (s: string): boolean => /^[a-z][a-z\d+.-]*:/i.test(s) && !/^[a-z]:[\\/]/i.test(s);

/** How many calls each path answered, in this thread. */
export interface CompileStats {
  /** Answered from the in-process memo, after re-statting its dependencies. */
  readonly memoHits: number;
  /** Answered from a manifest on disk (an earlier run, or another thread), without esbuild. */
  readonly diskHits: number;
  /** Bundles built with esbuild. */
  readonly builds: number;
}

/**
 * A file a bundle was built from, as recorded; or (`dir`) a directory its imports were resolved
 * in, as listed.
 */
interface Dep {
  readonly path: string;
  /** `mtimeNs:ctimeNs:size`, or `-` for a file that did not exist. */
  stamp: string;
  /**
   * sha256 of the contents; null where only the file's presence matters (an external). For a
   * directory, the hash of its listing (see `listingDigest`).
   */
  readonly digest: string | null;
  /** See RACY_MS; cleared once the file has been quiet long enough. */
  racy: boolean;
  readonly dir?: true;
}

interface Compiled {
  readonly output: string;
  readonly url: string;
  readonly deps: Dep[];
}

const stats = { memoHits: 0, diskHits: 0, builds: 0 };
/** Input path → its latest bundle. Per thread, like everything in this module. */
const memo = new Map<string, Compiled>();
/** Input path → the build under way, so concurrent calls build once. */
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
  if (statSync(path, { throwIfNoEntry: false })?.isFile() !== true) {
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

/** Forgets the in-process memo, as a new run would start; the disk cache stays. For tests. */
export function forgetCompiledModules(): void {
  memo.clear();
}

/**
 * `<nearest node_modules above process.cwd()>/.cache/occam` if it can be written, else a
 * private `occam-cache-<uid>` in the OS temp directory; fixed per thread on first use.
 */
export function cacheDir(): string {
  if (cacheDirectory !== undefined) return cacheDirectory;
  let dir: string | undefined;
  const nodeModules = nearest(process.cwd(), 'node_modules', (st) => st.isDirectory());
  if (nodeModules !== undefined) {
    try {
      dir = join(nodeModules, '.cache', 'occam');
      mkdirSync(dir, { recursive: true });
      probeWritable(dir);
    } catch {
      dir = undefined; // a read-only install (global, container image)
    }
  }
  // Real path: Node imports a bundle by its real path and resolves the source map's relative
  // `sources` from there (a symlinked node_modules; macOS's /var → /private/var).
  return (cacheDirectory = realpathSync(dir ?? privateTempDir()));
}

function toPath(moduleUrl: string | URL): string {
  if (typeof moduleUrl === 'string' && isAbsolute(moduleUrl)) return resolvePath(moduleUrl);
  const text = String(moduleUrl); // a URL's href
  if (!isUrl(text)) {
    throw new InvalidArgumentError(
      `process module ${text} is not an absolute path or a file: URL; pass one, such as ` +
        `new URL('./worker.ts', import.meta.url)`,
    );
  }
  if (!/^file:/i.test(text)) {
    throw new InvalidArgumentError(`cannot load process module ${text}: only file: URLs and absolute paths are supported`);
  }
  try {
    return fileURLToPath(text);
  } catch {
    throw new InvalidArgumentError(`${text} is not a local file: URL; pass an absolute path instead`);
  }
}

async function compileCached(path: string): Promise<string> {
  const dir = cacheDir();
  const resolveConfig = nodeResolveConfig();
  // The cache dir too: a source map names its sources relative to the bundle.
  const versions = [`${FORMAT}`, esbuildVersion(), process.versions.node];
  const entry = [...versions, dir, path, JSON.stringify(resolveConfig)].join('\0');
  const entryKey = fnv(entry);
  const stem = basename(path).replace(/\.[^.]*$/, '').replace(/[^\w.-]/g, '_');
  const manifestPath = join(dir, `${stem}-${entryKey}.json`);

  const stored = readManifest(manifestPath, dir, entry);
  if (stored !== undefined && isFresh(stored)) {
    stats.diskHits++;
    memo.set(path, stored);
    return stored.url;
  }

  const built = await bundle(path, dir, resolveConfig);
  const output = join(dir, `${stem}-${hash([entryKey, ...built.keyParts])}.mjs`);
  // Same name, same bytes (see Invariants): a file already there is already right.
  if (statSync(output, { throwIfNoEntry: false }) === undefined) writeAtomic(output, built.code);
  const compiled: Compiled = { output, url: pathToFileURL(output).href, deps: built.deps };
  writeAtomic(manifestPath, JSON.stringify({ format: FORMAT, entry, input: path, output: basename(output), deps: built.deps }));
  stats.builds++;
  memo.set(path, compiled);
  return compiled.url;
}

interface ResolveConfig {
  readonly conditions: string[];
  readonly preserveSymlinks: boolean;
}

async function bundle(path: string, dir: string, config: ResolveConfig) {
  const started = Date.now(); // (see the end: what changed while the build ran)
  const esbuild = require('esbuild') as typeof import('esbuild'); // (no import(): see internal/loader-import.ts)
  const loaded = new Map<string, Dep>();
  const externals = new Map<string, string>(); // "kind specifier from dir" → what it became
  /** Directories a relative import was resolved in, beside those of the bundled files. */
  const lookedIn = new Set<string>();
  /** The package.json of each package a bare specifier was resolved into (its `exports`, `main`). */
  const packages = new Set<string>();
  /**
   * Where a package a bare specifier was resolved into could appear nearer to the importer (a
   * node_modules folder between them): none there now; one installed there later would win.
   */
  const nearer = new Set<string>();
  /** Whether bundled files get their import.meta location (see withMeta): not in the build that reports errors. */
  let withImportMeta = true;

  const plugin: Plugin = {
    name: 'occam-externals',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        const nested = (args.pluginData as Record<string, unknown> | undefined)?.[NESTED] === true;
        if (args.kind === 'entry-point' || nested) return undefined;
        if (args.path.startsWith(META_SCHEME)) return { path: args.path.slice(META_SCHEME.length), namespace: 'occam-meta' };
        let specifier = args.path;
        if (isBuiltin(specifier)) return { path: specifier, external: true };
        if (isUrl(specifier)) {
          if (!specifier.startsWith('file:')) return { path: specifier, external: true }; // data:, https:
          specifier = fileURLToPath(specifier);
        }
        const found = await build.resolve(specifier, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          with: args.with,
          pluginData: { [NESTED]: true },
        });
        let target = found.path;
        const relative = /^\.{1,2}(?:[\\/]|$)/.test(specifier) || isAbsolute(specifier);
        if (relative) {
          // Where it was looked for: a module or a package.json appearing there may change it.
          const base = resolvePath(args.resolveDir, specifier);
          lookedIn.add(dirname(base));
          if (statSync(base, { throwIfNoEntry: false })?.isDirectory() === true) lookedIn.add(base);
        }
        if (!relative && found.errors.length === 0 && target !== '') {
          const root = packageRootOf(target);
          if (root !== undefined) packages.add(join(root, 'package.json'));
          const name = /^(?:@[^/\\]+[/\\])?[^/\\]+/.exec(specifier)?.[0];
          if (name !== undefined) {
            for (let d = args.resolveDir; ; d = dirname(d)) {
              if (basename(d) !== 'node_modules') {
                const candidate = join(d, 'node_modules', name);
                if (statSync(candidate, { throwIfNoEntry: false }) !== undefined) break; // where Node found it
                nearer.add(candidate);
              }
              if (dirname(d) === d) break;
            }
          }
        }
        if (found.errors.length > 0 || target === '') {
          // Leave the failure to Node at run time, as the unbundled module would meet it: a
          // guarded `try { await import('optional') }` must keep working.
          if (!relative) return { path: args.path, external: true };
          target = resolvePath(args.resolveDir, specifier);
        } else if (COMPILED.has(extname(target).toLowerCase())) {
          return { path: target }; // bundle it: TypeScript, even where a package exports it
        } else if (relative) {
          lookedIn.add(dirname(target)); // (a .ts appearing beside the .js it found would win)
        }
        const asPath = args.kind === 'require-call' || args.kind === 'require-resolve'; // require takes no URLs
        const rewritten = asPath ? target : pathToFileURL(target).href;
        externals.set(`${args.kind} ${args.path} from ${args.resolveDir}`, rewritten);
        return { path: rewritten, external: true };
      });

      build.onLoad({ filter: /.*/, namespace: 'occam-meta' }, (args) => ({
        contents:
          `export const url = ${JSON.stringify(pathToFileURL(args.path).href)}, ` +
          `filename = ${JSON.stringify(args.path)}, dirname = ${JSON.stringify(dirname(args.path))};`,
        loader: 'js',
      }));

      build.onLoad({ filter: /.*/, namespace: 'file' }, (args) => {
        const loader = COMPILED.get(extname(args.path).toLowerCase());
        if (loader === undefined) return undefined;
        const stamped = stampFile(args.path); // before the read: see stampFile
        const bytes = readFileSync(args.path);
        loaded.set(args.path, { path: args.path, ...stamped, digest: hashBytes(bytes) });
        const source = bytes.toString('utf8');
        return { contents: withImportMeta ? withMeta(source, args.path) : source, loader };
      });
    },
  };

  const options = {
    entryPoints: [path],
    bundle: true,
    format: 'esm',
    platform: 'node',
    // A class that names itself inside its body keeps its name (esbuild would rename it
    // `_MyError`): error classes cross threads by name.
    keepNames: true,
    // This Node, not plain `node20`: for node20 (20.0) esbuild silently drops import
    // attributes (`with { type: 'json' }`), which Node 20.10+ requires.
    target: `node${process.versions.node}`,
    sourcemap: 'inline',
    write: false,
    metafile: true,
    outfile: join(dir, 'bundle.mjs'), // only its directory matters: `sources` are relative to it
    absWorkingDir: dirname(path),
    // Resolve as Node's ESM resolver does, not as a bundler: no `module` condition or field.
    conditions: config.conditions,
    mainFields: ['main'],
    preserveSymlinks: config.preserveSymlinks,
    define: { 'import.meta.url': META.url, 'import.meta.filename': META.filename, 'import.meta.dirname': META.dirname },
    logLevel: 'silent',
    plugins: [plugin],
  } satisfies BuildOptions;
  let result;
  try {
    result = await esbuild.build(options);
  } catch (err) {
    let errors = (err as Partial<BuildFailure>).errors;
    if (errors === undefined) throw err;
    // Reported as the source has them: an error at its end (a missing `}`) would otherwise point
    // into the import withMeta appended, on a line the file does not have.
    withImportMeta = false;
    try {
      await esbuild.build(options);
    } catch (plain) {
      errors = (plain as Partial<BuildFailure>).errors ?? errors;
    }
    const lines = errors.map((m) => {
      const at = m.location === null ? '' : `${m.location.file}:${m.location.line}:${m.location.column + 1}: `;
      return `  ${at}${m.text}\n`;
    });
    const compileError = new InvalidArgumentError(`cannot compile process module ${path}:\n${lines.join('')}fix it and retry`);
    compileError.cause = err;
    throw compileError;
  }
  const code = result.outputFiles[0]?.text;
  if (code === undefined) throw new Error(`esbuild produced no output for ${path}`);

  // The metafile says what went into the bundle; onLoad saw each file's stamp and bytes.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((p) => !p.startsWith(META_SCHEME)) // (the plugin's modules: see withMeta)
    .map((p) => resolvePath(dirname(path), p))
    .sort();
  const deps = inputs.map((input) => loaded.get(input) ?? recordFile(input, true));
  const recorded = new Set(inputs);
  /** Records `file` as a dependency, once (see recordFile). */
  const depend = (file: string, withDigest: boolean): void => {
    if (recorded.has(file)) return;
    recorded.add(file);
    deps.push(recordFile(file, withDigest));
  };
  // esbuild also read tsconfig.json (decorators, class fields, jsx, paths), which shapes the
  // bytes: the nearest one above each input and the files it `extends`, and every place one
  // could appear nearer (or where there was none), recorded missing: its appearing is a change.
  const tsconfigs = new Set<string>();
  for (const dir of new Set(inputs.map((i) => dirname(i)))) {
    for (let d = dir; ; d = dirname(d)) {
      const candidate = join(d, 'tsconfig.json');
      tsconfigs.add(candidate);
      if (statSync(candidate, { throwIfNoEntry: false })?.isFile() === true) {
        for (const base of extendedConfigs(candidate)) tsconfigs.add(base);
        break;
      }
      if (dirname(d) === d) break;
    }
  }
  for (const t of [...tsconfigs].sort()) depend(t, true);
  const keyParts = deps.map((d) => `${d.path} ${d.digest ?? ''}`);
  // A file added beside an input, or beside what a relative import found, can change what an
  // import resolves to (`./lib` was lib/index.ts, and lib.ts appears; a thing.ts appears beside
  // the thing.js that './thing' found), and so can an edit of a package.json there (its `main`):
  // the listing of each such directory, and its package.json, decide freshness too. Not the
  // bundle's name: a rebuild that gives the same bytes keeps its URL.
  for (const d of new Set([...inputs.map((i) => dirname(i)), ...lookedIn])) {
    const stamped = stampFile(d); // (before the listing: see stampFile)
    deps.push({ path: d, ...stamped, digest: listingDigest(d), dir: true });
    const pkg = join(d, 'package.json');
    if (statSync(pkg, { throwIfNoEntry: false }) !== undefined) depend(pkg, true); // (one appearing changes the listing)
  }
  // An edit of a package's package.json (its `exports` or `main`) can change what a bare
  // specifier resolves to, while the file it found stays as it was.
  for (const pkg of [...packages].sort()) depend(pkg, true);
  for (const candidate of [...nearer].sort()) depend(candidate, false); // (recorded missing)
  for (const [from, to] of [...externals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    keyParts.push(`${from} → ${to}`);
    // Stat the target too: a removed or reinstalled package must rebuild, which re-resolves.
    depend(to.startsWith('file:') ? fileURLToPath(to) : to, false);
  }
  // A dependency changed while the build ran (a module added beside an import, a tsconfig.json
  // saved) may have been read before the change and recorded after it: it is not trusted, and
  // the next look at this bundle builds it again.
  for (let i = 0; i < deps.length; i++) {
    const mtime = statSync(deps[i]!.path, { throwIfNoEntry: false })?.mtimeMs;
    if (mtime !== undefined && mtime >= started) deps[i] = { ...deps[i]!, racy: true, digest: UNTRUSTED };
  }
  return { code, deps, keyParts };
}

/** The digest of a dependency that changed during its build: matches no file or listing. */
const UNTRUSTED = '?';

/**
 * The files tsconfig `file` extends, and those they extend, as TypeScript finds them: a path
 * relative to the file (`.json` added when it has none), or a package's (`@tsconfig/node20`, its
 * tsconfig.json or the file its package.json names as `tsconfig`; `pkg/base.json`) in the
 * node_modules folders above it. One that cannot be read or found is skipped (the file itself
 * is a dependency: fixing it rebuilds).
 */
function extendedConfigs(file: string, seen = new Set<string>([file])): string[] {
  const extended = jsonField(file, 'extends');
  const found: string[] = [];
  for (const spec of typeof extended === 'string' ? [extended] : Array.isArray(extended) ? extended : []) {
    if (typeof spec !== 'string' || spec === '') continue;
    const base = resolveExtended(spec, dirname(file));
    if (base === undefined || seen.has(base)) continue;
    seen.add(base);
    found.push(base, ...extendedConfigs(base, seen));
  }
  return found;
}

function resolveExtended(spec: string, from: string): string | undefined {
  const isFile = (p: string): boolean => statSync(p, { throwIfNoEntry: false })?.isFile() === true;
  const withJson = (p: string): string | undefined => (isFile(p) ? p : !p.endsWith('.json') && isFile(`${p}.json`) ? `${p}.json` : undefined);
  if (isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..') {
    return withJson(resolvePath(from, spec));
  }
  const root = nearest(from, join('node_modules', spec), () => true);
  if (root === undefined) return undefined;
  if (statSync(root, { throwIfNoEntry: false })?.isDirectory() === true) {
    const named = jsonField(join(root, 'package.json'), 'tsconfig');
    return typeof named === 'string' ? withJson(join(root, named)) : withJson(join(root, 'tsconfig.json'));
  }
  return withJson(root);
}

/** Field `field` of the JSON file `path` (comments and trailing commas allowed), or undefined if it cannot be read. */
function jsonField(path: string, field: string): unknown {
  try {
    return (JSON.parse(stripJsonComments(readFileSync(path, 'utf8'))) as Record<string, unknown>)[field];
  } catch {
    return undefined;
  }
}

/** JSON with comments and trailing commas (as tsconfig files are written) as plain JSON. */
function stripJsonComments(text: string): string {
  let out = '';
  /** Where a comma outside strings was last written, while only blanks have followed it. */
  let comma = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
      comma = -1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else if ((c === '}' || c === ']') && comma >= 0) {
      out = out.slice(0, comma) + out.slice(comma + 1) + c; // a trailing comma: dropped
      comma = -1;
    } else {
      if (c === ',') comma = out.length;
      else if (!/\s/.test(c)) comma = -1;
      out += c;
    }
  }
  return out;
}

/**
 * What `import.meta.url`, `.filename` and `.dirname` become in a bundled file (see `define`):
 * names imported from a module of the plugin's that holds the file's original location. The
 * import goes at the end of the file, so that no line or column of the source moves (stack
 * traces map through the source map to where they were written); imports are hoisted, so the
 * names hold their values from the module's first statement on. Only a file that mentions
 * `import.meta` gets one (it is an ES module then).
 */
function withMeta(source: string, path: string): string {
  if (!MENTIONS_IMPORT_META.test(source)) return source;
  // A .cts file is CommonJS, where an import would make it an ES module: it can mention
  // import.meta only in a comment or a string, and gets nothing.
  if (extname(path).toLowerCase() === '.cts') return source;
  const names = `url as ${META.url}, filename as ${META.filename}, dirname as ${META.dirname}`;
  return `${source}\n;import { ${names} } from ${JSON.stringify(META_SCHEME + path)};\n`;
}

/**
 * Stamps a file. Taken before any read of the contents, so a change after the stamp shows as a
 * newer stamp next time and rebuilds (never the reverse: a stale bundle with a fresh stamp).
 */
function stampFile(path: string): { stamp: string; racy: boolean } {
  const now = Date.now();
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return { stamp: '-', racy: false }; // a file appearing later is a change too
  return { stamp: `${st.mtimeNs}:${st.ctimeNs}:${st.size}`, racy: now - Number(st.mtimeMs) < RACY_MS };
}

/** Entries that can decide an import's resolution: directories, and files Node or esbuild may pick. */
const RESOLVABLE = /\.(?:[cm]?[jt]sx?|json|node)$/i;

/**
 * The hash of a directory's resolvable entries (names, sorted); '-' if it cannot be listed. A log
 * or an editor's swap file written beside the sources changes nothing; a new module does.
 */
function listingDigest(dir: string): string {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() || RESOLVABLE.test(e.name))
      .map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
  } catch {
    return '-';
  }
  return fnv(names.sort().join('\0'));
}

function recordFile(path: string, withDigest: boolean): Dep {
  const stamped = stampFile(path);
  return { path, ...stamped, digest: withDigest && stamped.stamp !== '-' ? digestOf(path) ?? null : null };
}

/** The cache-hit check: a stat per dependency, and a read of any racy file or a listing of any changed directory. */
function isFresh(entry: Compiled): boolean {
  for (const dep of entry.deps) {
    const now = stampFile(dep.path);
    if (dep.dir === true) {
      // A directory whose stamp moved (or may not have: racy) is listed again: a log written
      // there moves it, and changes nothing that matters.
      if (now.stamp === dep.stamp && !dep.racy) continue;
      if (listingDigest(dep.path) !== dep.digest) return false;
      dep.stamp = now.stamp;
      dep.racy = now.racy;
      continue;
    }
    if (now.stamp !== dep.stamp) return false;
    if (dep.racy && dep.digest !== null) {
      if (digestOf(dep.path) !== dep.digest) return false;
      dep.racy = now.racy;
    }
  }
  // Someone may have cleared the cache under a running program.
  return statSync(entry.output, { throwIfNoEntry: false }) !== undefined;
}

function digestOf(path: string): string | undefined {
  try {
    return hashBytes(readFileSync(path));
  } catch {
    return undefined; // gone since its stat: not fresh
  }
}

function readManifest(manifestPath: string, dir: string, entry: string): Compiled | undefined {
  let m: { format?: unknown; entry?: unknown; output?: unknown; deps?: Partial<Dep>[] };
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8')) as typeof m;
  } catch {
    return undefined; // absent
  }
  if (m.format !== FORMAT || m.entry !== entry || typeof m.output !== 'string' || !Array.isArray(m.deps)) return undefined;
  const deps = m.deps;
  const wellFormed = (d: Partial<Dep> | null): boolean =>
    typeof d?.path === 'string' && typeof d.stamp === 'string' && typeof d.racy === 'boolean';
  if (!deps.every(wellFormed)) return undefined;
  const output = join(dir, basename(m.output));
  return { output, url: pathToFileURL(output).href, deps: deps as Dep[] };
}

/** Writes a private temp file and renames it: readers see the old file or all of the new one. */
function writeAtomic(target: string, data: string): void {
  const temp = `${target}.${process.pid}-${threadId}-${crypto().randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, data);
  try {
    renameSync(temp, target);
  } catch (err) {
    rmSync(temp, { force: true });
    // Windows will not replace a file another process holds open; for a content-named bundle
    // the file there is identical.
    if (statSync(target, { throwIfNoEntry: false }) === undefined) throw err;
  }
}

/** The conditions and flags Node's ESM resolver uses in this thread, so esbuild picks its files. */
function nodeResolveConfig(): ResolveConfig {
  const conditions: string[] = [];
  // Node 20.19+ matches `module-sync` on import while require(esm) is on.
  if (process.features.require_module) conditions.push('module-sync');
  const flags = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/).filter(Boolean)];
  let preserveSymlinks = false;
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] ?? '';
    if (flag === '--preserve-symlinks') preserveSymlinks = true;
    const joined = /^(?:--conditions|-C)=(.+)$/.exec(flag)?.[1];
    if (joined !== undefined) conditions.push(joined);
    else if ((flag === '--conditions' || flag === '-C') && i + 1 < flags.length) conditions.push(flags[++i] ?? '');
  }
  return { conditions, preserveSymlinks };
}

let esbuildVersionMemo: string | undefined;
/**
 * Read from package.json, so a cache hit never loads esbuild itself; found by looking in each
 * node_modules up from this file, as `require` would (a first `require` of a package costs main
 * ~3 ms here, on a pool's start, while its workers boot), else by `require` itself (a layout
 * without node_modules folders).
 */
function esbuildVersion(): string {
  if (esbuildVersionMemo === undefined) {
    const here = dirname(fileURLToPath(import.meta.url));
    const found = nearest(here, join('node_modules', 'esbuild', 'package.json'), (st) => st.isFile());
    const pkg = (found !== undefined ? JSON.parse(readFileSync(found, 'utf8')) : require('esbuild/package.json')) as { version: string };
    esbuildVersionMemo = pkg.version;
  }
  return esbuildVersionMemo;
}

/** The root of the installed package `file` lies in (`…/node_modules/name` or `…/node_modules/@scope/name`), if any. */
function packageRootOf(file: string): string | undefined {
  const m = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(file);
  return m?.[1];
}

/** The nearest `name` in `from` or a directory above it that passes `test`. */
function nearest(from: string, name: string, test: (st: Stats) => boolean): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, name);
    const st = statSync(candidate, { throwIfNoEntry: false });
    if (st !== undefined && test(st)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function probeWritable(dir: string): void {
  const probe = join(dir, `.probe-${process.pid}-${threadId}`);
  writeFileSync(probe, '');
  unlinkSync(probe);
}

/**
 * Everyone can write to the temp directory: reuse the per-user cache only if this user owns it
 * and nobody else can write to it; else use a fresh directory for this run.
 */
function privateTempDir(): string {
  // Windows has no uid, but a temp directory per user.
  const dir = join(tmpdir(), `occam-cache-${process.getuid?.() ?? 'user'}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const mine = process.getuid === undefined || (st.uid === process.getuid() && (st.mode & 0o022) === 0);
    if (st.isDirectory() && mine) {
      probeWritable(dir);
      return dir;
    }
  } catch {
    // fall through
  }
  return mkdtempSync(join(tmpdir(), 'occam-cache-'));
}

/** 64-bit FNV-1a of `s` (its UTF-16 code units), as 16 hex digits. */
function fnv(s: string): string {
  // Two 32-bit halves: h = (hi, lo) * 0x100000001b3 mod 2^64, in 16-bit pieces where needed.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < s.length; i++) {
    lo = (lo ^ s.charCodeAt(i)) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3): lo·0x1b3 (exact in a double), carry into hi.
    const l = lo * 0x1b3;
    const carry = Math.floor(l / 0x100000000);
    hi = (Math.imul(hi, 0x1b3) + Math.imul(lo, 0x100) + carry) >>> 0;
    lo = l >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function hash(parts: readonly string[]): string {
  const h = crypto().createHash('sha256');
  for (const part of parts) h.update(part).update('\0');
  return h.digest('hex').slice(0, 24);
}

function hashBytes(bytes: Uint8Array): string {
  return crypto().createHash('sha256').update(bytes).digest('hex');
}
