/**
 * Imports an ES module by URL: a process's module, a pool's task module.
 *
 * Every `import()` of a module that is not core's own goes through here. Built, core is one
 * CommonJS bundle that dist/load.cjs compiles with V8's code cache (internal/load.ts), and code
 * compiled that way cannot run `import()` itself on Node 20 (only behind an experimental flag):
 * the build puts the loader's own `import()` in place of this function there.
 */
export function importModule(url: string): Promise<unknown> {
  return import(url);
}
