/**
 * Mutual authentication in memory, through `PQCMCPServer.handleHandshake` and `handleRequest` (no HTTP): two
 * identities, a handshake in which each side proves its key and the client pins the server, a signed tools/call and
 * its signed result, verified against the key the handshake pinned and bound to the request, a tampered and a
 * replayed request refused, then the audit trail of both sides.
 *
 *   tsx --conditions=@pqc-mcp/source examples/mutual-auth.ts
 */
import { AgentIdentity, MessageSigner, PQCHandshake } from '@pqc-mcp/core';
import { createSimpleServer, printAuditTrail } from './shared/simple.js';

const client = AgentIdentity.create('demo-client');
const serverIdentity = AgentIdentity.create('demo-server');
const server = createSimpleServer({ identity: serverIdentity });
console.log(`client ${client.did} (${client.algorithm}, backend ${client.backend.name})`);
console.log(`server ${server.did} (${serverIdentity.algorithm})`);

// 1. The handshake: each side proves its key; the request names the server it is for, the client pins its DID.
const { request, pending } = await PQCHandshake.initiate(client, { serverDid: server.did });
const session = await PQCHandshake.complete(await server.handleHandshake(request), client, pending, { serverDid: server.did });
console.log(`\nhandshake done: session ${session.sessionId}, expires ${new Date(session.expiresAt).toISOString()}`);

// 2. The client signs a tools/call (bound to the request it travels in); the server verifies it, runs the tool and
//    signs the result, bound to the call.
const call = await new MessageSigner(client).signMessage(
  { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } },
  { sessionId: session.sessionId, http: { method: 'POST', path: '/mcp', mcpSessionId: null } },
);
const answer = await server.handleRequest(call.text);
const verified = await MessageSigner.verifyMessage(answer, { peer: session.peer });
if (!verified.valid || verified.sessionId !== session.sessionId || verified.inReplyTo !== call.nonce) {
  throw new Error(`response refused: ${verified.reason ?? 'it binds another request'}`);
}
session.logOperation({ operation: 'response', verified: true, signer_did: verified.signerDid, algorithm: verified.algorithm, digest: verified.digest });
const { result } = verified.message as { result: { content: { text: string }[] } };
console.log(`add(2, 3) = ${result.content[0]!.text}: the result's signature verified under the pinned server key (in_reply_to ${call.nonce})`);

// 3. A tampered request and a replay are refused (unsigned JSON-RPC errors, docs/PROTOCOL.md §6).
const reasonOf = (text: string) => (JSON.parse(text) as { error?: { data?: { pqc?: string } } }).error?.data?.pqc;
console.log(`tampered request (a: 2 → 20) → ${reasonOf(await server.handleRequest(call.text.replace('"a":2', '"a":20')))}`);
console.log(`replayed request → ${reasonOf(await server.handleRequest(call.text))}`);

console.log();
printAuditTrail('audit trail (client)', session.getAuditLog());
printAuditTrail('audit trail (server)', server.getAuditLog());
