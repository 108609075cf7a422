/**
 * The ES loader's `import()`, for internal/import-module.ts.
 *
 * Built, core is one CommonJS bundle that dist/load.cjs compiles with V8's code cache
 * (internal/load.ts), and code compiled that way cannot run `import()` itself on Node 20 (only
 * behind an experimental flag): the build puts the loader's own `import()` in place of this
 * function there.
 */
export function loaderImport(url: string): Promise<unknown> {
  return import(url);
}
