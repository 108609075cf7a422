#!/usr/bin/env node
// `occam run file.ts [args...]`: runs a TypeScript (or JavaScript) program on Node 20 without a build step.
import('../dist/cli.js').then((m) => m.cli(process.argv.slice(2)));
