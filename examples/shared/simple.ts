/**
 * The Python predecessor's example server (`pqc-mcp-transport`'s simple_server: tools `greet`, `add`, `echo`) as a
 * `PQCMCPServer`, and how the examples print an audit trail.
 */
import type { AuditEntry } from '@pqc-mcp/core';
import { PQCMCPServer, type PQCMCPServerOptions } from '@pqc-mcp/mcp';
import * as z from 'zod/v4';

/** A `PQCMCPServer` with the predecessor's example tools. */
export function createSimpleServer(options: PQCMCPServerOptions): PQCMCPServer {
  return new PQCMCPServer({ name: 'pqc-simple-server', version: '0.1.0', ...options })
    .tool('greet', { description: 'Greets someone by name', inputSchema: z.object({ name: z.string() }) }, ({ name }) => `Hello, ${name}!`)
    .tool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, ({ a, b }) => a + b)
    .tool(
      'echo',
      {
        description: 'Echoes the message back',
        // A JSON Schema works too (validated by the MCP SDK).
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
      (args) => String(args.message),
    );
}

const short = (value: string | null | undefined, n = 24): string => (value ? `${value.slice(0, n)}…` : '-');

/** Prints an audit trail, one line per entry. */
export function printAuditTrail(title: string, entries: readonly AuditEntry[], indent = ''): void {
  console.log(`${indent}${title} (${entries.length} entries):`);
  for (const e of entries) {
    const what = e.operation === 'rejected' ? `rejected ${e.reason}` : e.operation;
    console.log(
      `${indent}  ${e.timestamp}  ${what.padEnd(26)} ${(e.method ?? '').padEnd(26)} peer ${short(e.peer_did)}  sig ${short(e.signature_truncated, 16)}  verified=${e.verified}`,
    );
  }
}
