/**
 * The application learns who called (docs/PROTOCOL.md §9): the client DID the handshake pinned reaches every tool as
 * the MCP SDK's `authInfo` (`ctx.http.authInfo`, read with `pqcContextOf`), so a tool can authorize per caller and
 * bind the handles it gives out (task ids here) to the caller that got them: another client, with a valid session of
 * its own, cannot read them.
 *
 *   tsx --conditions=@pqc-mcp/source examples/who-called.ts
 *
 * Express, the MCP SDK v2 (2026-07-28, stateless), two clients: alice starts a task, bob tries to read it.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { AgentIdentity, pqcContextOf } from '@pqc-mcp/core';
import { pqcMiddleware } from '@pqc-mcp/express';
import { PQCMCPClient } from '@pqc-mcp/mcp';
import express from 'express';
import * as z from 'zod/v4';

const server = AgentIdentity.create('who-called-server');
const alice = AgentIdentity.create('alice');
const bob = AgentIdentity.create('bob');

/** Task ids and the DID each belongs to: a handle is only ever answered to the caller that got it. */
const tasks = new Map<string, { owner: string; result: string }>();

function tools(): McpServer {
  const mcp = new McpServer({ name: 'who-called', version: '0.1.0' });
  mcp.registerTool('whoami', { description: 'The verified caller' }, async (ctx) => ({
    content: [{ type: 'text', text: pqcContextOf(ctx.http?.authInfo)?.peerDid ?? 'nobody' }],
  }));
  mcp.registerTool('start_task', { description: 'Starts a task; its id is bound to the caller', inputSchema: z.object({ input: z.string() }) }, async ({ input }, ctx) => {
    const caller = pqcContextOf(ctx.http?.authInfo);
    if (!caller) return { isError: true, content: [{ type: 'text', text: 'no verified caller' }] };
    const id = randomUUID();
    tasks.set(id, { owner: caller.peerDid, result: input.toUpperCase() });
    return { content: [{ type: 'text', text: id }] };
  });
  mcp.registerTool('task_result', { description: "A task's result, for the caller that started it", inputSchema: z.object({ id: z.string() }) }, async ({ id }, ctx) => {
    const task = tasks.get(id);
    // Per-caller authorization: unknown and foreign ids get the same answer (nothing leaks about other callers).
    if (!task || task.owner !== pqcContextOf(ctx.http?.authInfo)?.peerDid) return { isError: true, content: [{ type: 'text', text: 'no such task' }] };
    return { content: [{ type: 'text', text: task.result }] };
  });
  return mcp;
}

const handler = createMcpHandler(tools);
const node = toNodeHandler(handler);
const app = express();
app.use(pqcMiddleware({ identity: server, cryptoPool: false }));
app.all('/mcp', (req, res) => void node(req, res, req.body)); // req.auth: the verified caller, set by pqcMiddleware
const listening = app.listen(0, '127.0.0.1');
await new Promise((resolve) => listening.once('listening', resolve));
const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}/mcp`;

const text = (result: { content: unknown }) => (result.content as { text?: string }[])[0]?.text;
const connect = async (identity: AgentIdentity) => {
  const client = new PQCMCPClient({ identity, serverUrl: url, serverDid: server.did, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await client.connect();
  return client;
};
try {
  const [a, b] = [await connect(alice), await connect(bob)];
  console.log(`alice is ${text(await a.callTool('whoami'))}`);
  console.log(`bob   is ${text(await b.callTool('whoami'))}`);
  const id = text(await a.callTool('start_task', { input: 'post-quantum' }))!;
  console.log(`alice started task ${id}`);
  const own = await a.callTool('task_result', { id });
  const foreign = await b.callTool('task_result', { id });
  console.log(`alice reads it: ${text(own)}`);
  console.log(`bob reads it:   ${text(foreign)} (isError ${String(foreign.isError)})`);
  if (text(own) !== 'POST-QUANTUM' || foreign.isError !== true) throw new Error('a task handle was not bound to its caller');
  await a.close();
  await b.close();
} finally {
  listening.closeAllConnections();
  listening.close();
  await handler.close();
}
