/**
 * Mutual authentication in memory: two identities, a handshake, a signed request and a signed response, each
 * verified against the key the handshake pinned, then the audit trail of both sides.
 *
 *   pnpm demo        (or: tsx --conditions=@pqc-mcp/source examples/mutual-auth.ts)
 */
import {
  AgentIdentity,
  AuditLog,
  MemorySessionStore,
  MessageSigner,
  PQCHandshake,
  parseLossless,
  verifyWithSession,
  verifyWithStore,
} from '@pqc-mcp/core';

const client = AgentIdentity.create('demo-client');
const server = AgentIdentity.create('demo-server');
console.log(`client ${client.did} (${client.algorithm}, backend ${client.backend.name})`);
console.log(`server ${server.did} (${server.algorithm})`);

// 1. The handshake: each side proves its key, the client pins the server's DID.
const store = new MemorySessionStore();
const serverAudit = new AuditLog();
const { request, pending } = await PQCHandshake.initiate(client);
const { response } = await PQCHandshake.respond(request, server, { store, audit: serverAudit });
const session = await PQCHandshake.complete(response, client, pending, { serverDid: server.did });
console.log(`\nhandshake done: session ${session.sessionId}, expires ${new Date(session.expiresAt).toISOString()}`);

// 2. The client signs a tools/call; the server verifies it against the session's pinned key.
const call = await new MessageSigner(client).signMessage(
  { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } },
  { sessionId: session.sessionId },
);
const accepted = await verifyWithStore(parseLossless(call.text), { store });
if (!accepted.ok) throw new Error(`request refused: ${accepted.reason}`);
serverAudit.record({
  operation: 'request',
  verified: true,
  session_id: accepted.session.sessionId,
  method: 'tools/call',
  signer_did: accepted.parsed.signerDid,
  peer_did: accepted.session.peerDid,
  algorithm: accepted.parsed.algorithm,
  signature_truncated: accepted.parsed.signatureHex,
  digest: accepted.digest,
});
console.log(`server verified the request from ${accepted.session.peerDid.slice(0, 26)}… (nonce ${accepted.parsed.nonce})`);

// 3. The server answers, bound to the request's nonce; the client verifies it.
const reply = await new MessageSigner(server).signMessage(
  { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: '5' }] } },
  { sessionId: session.sessionId, inReplyTo: call.nonce },
);
const verified = await verifyWithSession(parseLossless(reply.text), session, { inReplyTo: call.nonce });
if (!verified.ok) throw new Error(`response refused: ${verified.reason}`);
session.logOperation({
  operation: 'response',
  verified: true,
  signer_did: verified.parsed.signerDid,
  algorithm: verified.parsed.algorithm,
  signature_truncated: verified.parsed.signatureHex,
  digest: verified.digest,
});
console.log(`client verified the response: ${JSON.stringify(MessageSigner.stripPqc(reply.message))}`);

// 4. A tampered request and a replay are refused.
const tampered = call.text.replace('"a":2', '"a":20');
console.log(`tampered request → ${((await verifyWithStore(parseLossless(tampered), { store })) as { reason: string }).reason}`);
console.log(`replayed request → ${((await verifyWithStore(parseLossless(call.text), { store })) as { reason: string }).reason}`);

console.log('\naudit trail (client):');
for (const e of session.getAuditLog()) console.log(`  ${e.timestamp} ${e.operation.padEnd(9)} ${e.signer_did?.slice(0, 26)}… verified=${e.verified}`);
console.log('audit trail (server):');
for (const e of serverAudit.entries()) console.log(`  ${e.timestamp} ${e.operation.padEnd(9)} ${e.peer_did?.slice(0, 26)}… verified=${e.verified}`);
