// The pool scenarios' task, for piscina and tinypool (occam runs the same in TypeScript:
// ../impl/occam.pool-tasks.ts).
export function inc(x) {
  return x + 1;
}
export default inc;
