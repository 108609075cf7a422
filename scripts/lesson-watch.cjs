// Preloaded (`--require`) into each lesson by run-lessons.mjs. A lesson still running after
// OCCAM_LESSON_REPORT_MS prints, to stderr, what holds its program open, before the runner's
// watchdog kills it: Node's active handles, occam's async operations pending on main, its worker
// hosts (a ref'd Worker is not among Node 20's active handles) and the wait-for report.
'use strict';
const { isMainThread } = require('node:worker_threads');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const ms = Number(process.env.OCCAM_LESSON_REPORT_MS);
if (isMainThread && ms > 0) setTimeout(report, ms).unref();

async function report() {
  const out = [`[lesson-watch] still running after ${ms} ms; what holds it open:`];
  for (const h of process._getActiveHandles()) {
    const ref = typeof h.hasRef === 'function' ? (h.hasRef() ? 'ref' : 'unref') : '?';
    out.push(`  handle ${h.constructor?.name ?? typeof h} (${ref})${h._idleTimeout > 0 ? ` every/after ${h._idleTimeout} ms` : ''}`);
  }
  out.push(`  requests: ${process._getActiveRequests().length}`);
  const rt = globalThis[Symbol.for('occam.runtime.v1')];
  if (rt === undefined) out.push('  occam not loaded');
  else {
    out.push(`  occam: ${rt.pendingAsync} async operation(s) pending on main; keep-alive ${rt.keepAlive?.hasRef() ? 'ref' : 'unref'}`);
    try {
      const testing = await import(pathToFileURL(join(__dirname, '../packages/core/dist/testing.js')).href);
      const core = await import(pathToFileURL(join(__dirname, '../packages/core/dist/index.js')).href);
      const hosts = testing.hostTable();
      out.push(`  hosts (${hosts.length}):`, ...hosts.map((l) => `    ${l}`));
      out.push(`  wait-for report: ${core.formatWaitReport(core.waitReport()) || '(none blocked)'}`);
    } catch (e) {
      out.push(`  (occam's tables unreadable: ${e})`);
    }
  }
  process.stderr.write(`${out.join('\n')}\n`);
}
