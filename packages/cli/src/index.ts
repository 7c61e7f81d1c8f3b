#!/usr/bin/env node
/**
 * The `pqc-mcp` command: identities, a gateway in front of any MCP server, a bridge for MCP hosts, one-off calls
 * and offline verification. Errors are reported as `pqc-mcp: error: ...` on stderr, never as stack traces
 * (set PQC_MCP_DEBUG=1 to see them); the exit codes are in help.ts and README.md.
 */
import { main } from './cli.js';
import { EXIT, CliError } from './util.js';

function report(err: unknown): number {
  if (err instanceof CliError) {
    process.stderr.write(`pqc-mcp: error: ${err.message}\n`);
    if (err.code === EXIT.USAGE) {
      process.stderr.write(`Run 'pqc-mcp ${err.command ? `${err.command} ` : ''}--help' for usage.\n`);
    }
    return err.code;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`pqc-mcp: error: ${message}\n`);
  if (process.env.PQC_MCP_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  return EXIT.RUNTIME;
}

process.on('uncaughtException', (err) => {
  process.exitCode = report(err);
  process.exit();
});
process.on('unhandledRejection', (err) => {
  process.exitCode = report(err);
  process.exit();
});

// stdout closed by the reader (`pqc-mcp identity x | head -1`): not an error worth a trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let stdout drain, then leave even if a keep-alive socket or timer lingers.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    const code = report(err);
    process.exitCode = code;
    process.stdout.write('', () => process.exit(code));
  },
);
