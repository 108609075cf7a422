// The pool scenarios' task for occam's pool, in TypeScript (the pool compiles it once).
export function inc(x: number): number {
  return x + 1;
}
