/**
 * The `occam` command (bin/occam.mjs calls `cli(process.argv.slice(2))`).
 *
 *   occam run <file> [args...]   runs a TypeScript or JavaScript program on Node 20 with no
 *                                build step; the program sees process.argv as
 *                                [node, <file>, ...args].
 */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';

const USAGE = `usage: occam run <file> [args...]

  run    run a TypeScript (.ts, .mts, .cts) or JavaScript program without a build step
`;

/**
 * Runs one occam command. Returns before an async command ends; failures set
 * `process.exitCode` (2 for a usage error, 1 for a program that threw) rather than exiting,
 * so the program's own pending work and output still finish.
 */
export function cli(argv: string[]): void {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const [file, ...args] = rest;
      if (file === undefined) return usageError('occam run: missing <file>');
      void run(file, args);
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      usageError(command === undefined ? 'occam: missing command' : `occam: unknown command '${command}'`);
  }
}

async function run(file: string, args: string[]): Promise<void> {
  const path = resolve(file);
  if (!existsSync(path)) {
    process.stderr.write(`occam run: cannot find ${path}; check the path\n`);
    process.exitCode = 1;
    return;
  }
  try {
    await import('./register.js'); // registers the TypeScript hooks on import
    process.argv = [process.argv[0] ?? process.execPath, path, ...args];
    await import(pathToFileURL(path).href);
  } catch (err) {
    // inspect, as Node prints an uncaught error: the stack, then `code`, `cause` and the rest.
    process.stderr.write(`${inspect(err)}\n`);
    process.exitCode = 1;
  }
}

function usageError(message: string): void {
  process.stderr.write(`${message}\n\n${USAGE}`);
  process.exitCode = 2;
}
