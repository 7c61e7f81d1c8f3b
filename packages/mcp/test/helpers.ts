import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { AgentIdentity } from '@pqc-mcp/core';
import { z } from 'zod';
import { PQCMCPServer, type PQCMCPServerOptions } from '../src/index.js';

/** Fixed-seed identities (never random: failures must reproduce). */
export function seededIdentity(byte: number, name = `agent-${byte}`): AgentIdentity {
  return AgentIdentity.fromSeed(new Uint8Array(32).fill(byte), { name });
}

export const SERVER = seededIdentity(41, 'mcp-server');
export const CLIENT = seededIdentity(42, 'mcp-client');
export const OTHER = seededIdentity(43, 'mcp-other');

/** The seed's example tools: greet, add, echo. */
export function exampleServer(options: Partial<PQCMCPServerOptions> = {}): PQCMCPServer {
  return new PQCMCPServer({ identity: SERVER, name: 'test-server', version: '1.2.3', ...options })
    .tool('greet', { description: 'Greets someone', inputSchema: { name: z.string() } }, ({ name }) => `Hello, ${name}!`)
    .tool('add', { description: 'Adds two numbers', inputSchema: z.object({ a: z.number(), b: z.number() }) }, ({ a, b }) => a + b)
    .tool(
      'echo',
      {
        description: 'Echoes the message back',
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
      (args) => ({ content: [{ type: 'text', text: String(args.message) }] }),
    );
}

/** A web-standard fetch handler served on 127.0.0.1 (port chosen by the system). */
export interface Served {
  origin: string;
  url: string;
  close(): Promise<void>;
}

export async function serveFetch(fetch: (request: Request) => Response | Promise<Response>, path = '/mcp'): Promise<Served> {
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: origin + path,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The text of the first text content of a tool result. */
export function textOf(result: { content?: unknown }): string | undefined {
  const content = result.content as { type: string; text?: string }[] | undefined;
  return content?.find((c) => c.type === 'text')?.text;
}
