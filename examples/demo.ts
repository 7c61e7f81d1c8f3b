/**
 * `pnpm demo`: a post-quantum signed MCP server and client talking over real HTTP, in one process.
 *
 *   1. a `PQCMCPServer` (tools greet, add, echo) listens on 127.0.0.1, on a free port;
 *   2. a `PQCMCPClient` performs the ML-DSA handshake (both DIDs), lists the tools, calls one: verified;
 *   3. a signed request whose argument was changed after signing is sent by raw fetch: refused with 401;
 *   4. the audit trails of both sides; exit 0.
 *
 *   tsx --conditions=@pqc-mcp/source examples/demo.ts
 */
import { AgentIdentity, MessageSigner } from '@pqc-mcp/core';
import { PQCMCPClient } from '@pqc-mcp/mcp';
import { createSimpleServer, printAuditTrail } from './shared/simple.js';

const serverIdentity = AgentIdentity.create('demo-server');
const clientIdentity = AgentIdentity.create('demo-client');
const server = createSimpleServer({ identity: serverIdentity });

try {
  const { url } = await server.run({ host: '127.0.0.1', port: 0 });
  console.log(`server listening on ${url} (${serverIdentity.algorithm}, crypto backend ${serverIdentity.backend.name})`);

  // The client is told the server's DID beforehand: the handshake fails for any other server.
  const client = new PQCMCPClient({ identity: clientIdentity, serverUrl: url, serverDid: server.did });
  const session = await client.connect();
  console.log('\n1. handshake (mutual, ML-DSA signed)');
  console.log(`   client DID  ${clientIdentity.did}`);
  console.log(`   server DID  ${session.peerDid}  (pinned)`);
  console.log(`   session     ${session.sessionId}, expires ${new Date(session.expiresAt).toISOString()}`);

  const tools = await client.listTools();
  console.log(`\n2. tools: ${tools.map((t) => t.name).join(', ')}`);

  const result = await client.callTool('add', { a: 2, b: 3 });
  const text = result.content[0]?.type === 'text' ? result.content[0].text : JSON.stringify(result.content);
  console.log(`\n3. add(2, 3) = ${text}  (request signed by the client, result signed by the server, both verified)`);

  // A request signed in the client's session, then changed in transit: the server refuses it before any tool runs.
  const sessionId = client.session!.sessionId;
  const signed = await new MessageSigner(clientIdentity).signMessage(
    { jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } },
    { sessionId, http: { method: 'POST', path: new URL(url).pathname, mcpSessionId: null } },
  );
  const tampered = signed.text.replace('"a":2', '"a":2000');
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'pqc-session': sessionId };
  const response = await fetch(url, { method: 'POST', headers, body: tampered });
  const body = (await response.json()) as { error?: { data?: { pqc?: string } } };
  console.log(`\n4. tampered request (a: 2 → 2000 after signing) → HTTP ${response.status} ${body.error?.data?.pqc}`);
  if (response.status !== 401) throw new Error('the tampered request was not refused');

  await client.close();
  console.log('\n5. audit trails');
  printAuditTrail('client', client.getAuditLog(), '   ');
  printAuditTrail('server', server.getAuditLog(), '   ');
} finally {
  await server.close();
}
