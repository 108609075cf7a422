// The registry of scenarios and impls, built the same way in the harness (for names, what an
// op is, expected checksums) and in each run's child process (for the run function).
// Contenders are discovered from bench/impl/<name>.mjs; the contract is at the top of run.mjs.
import { readdir } from 'node:fs/promises';
import { scenarios as builtinScenarios } from '../scenarios.mjs';
import { baselines } from '../baselines/index.mjs';

const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

/**
 * Resolves to { registry, notes }: registry is name → { name, op, expected?, hintOps?,
 * impls: Map(name → { name, run, hintOps?, baseline }) }, in print order; notes are the
 * things a reader of the output should know (missing or broken contenders).
 */
export async function loadRegistry() {
  const notes = [];
  const registry = new Map();
  for (const s of builtinScenarios) registry.set(s.name, { ...s, impls: new Map() });
  for (const [scenario, impls] of Object.entries(baselines)) {
    for (const [name, run] of Object.entries(impls)) {
      registry.get(scenario).impls.set(name, { name, run, baseline: true });
    }
  }

  const dir = new URL('../impl/', import.meta.url);
  let files = [];
  try {
    files = (await readdir(dir)).filter((f) => /^[\w-]+\.mjs$/.test(f)).sort();
  } catch {
    // no bench/impl/ folder: same as no contenders
  }
  if (!files.includes('occam.mjs')) {
    notes.push('bench/impl/occam.mjs not found: running the baselines alone.');
  }
  for (const file of files) {
    const name = file.slice(0, -'.mjs'.length);
    let mod;
    try {
      mod = await import(new URL(file, dir));
    } catch (e) {
      notes.push(`bench/impl/${file} failed to import (${firstLine(e)}): running without impl ${name}.`);
      continue;
    }
    const entries = mod.scenarios ?? mod.default?.scenarios ?? {};
    let count = 0;
    for (const [scenario, entry] of Object.entries(entries)) {
      const e = typeof entry === 'function' ? { run: entry } : entry;
      if (typeof e?.run !== 'function') {
        notes.push(`impl ${name}: scenario ${scenario} has no run function; skipped.`);
        continue;
      }
      let s = registry.get(scenario);
      if (!s) {
        const op = e.op ?? `declared by impl ${name}`;
        s = { name: scenario, op, expected: e.expected, hintOps: e.hintOps, ratioTo: e.ratioTo, impls: new Map() };
        registry.set(scenario, s);
      }
      if (s.impls.has(name)) notes.push(`impl ${name} replaces an impl of the same name in ${scenario}.`);
      s.impls.set(name, { name, run: e.run, hintOps: e.hintOps, baseline: false });
      count++;
    }
    if (count === 0) {
      notes.push(`bench/impl/${file} exports no scenarios; see the contract in bench/run.mjs.`);
    }
  }
  return { registry, notes };
}
