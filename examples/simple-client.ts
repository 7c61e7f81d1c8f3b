/**
 * The Python predecessor's simple client as a `PQCMCPClient`: handshake (the server pinned by its DID), the tools, three verified
 * calls, and the client's audit trail.
 *
 *   PQC_SERVER_URL=http://127.0.0.1:8080/mcp PQC_SERVER_DID=did:pqaid:… tsx --conditions=@pqc-mcp/source examples/simple-client.ts
 *
 * Environment: PQC_SERVER_URL (default http://127.0.0.1:8080/mcp), PQC_SERVER_DID (the DID the server printed; without
 * it the client trusts the first server that answers, and says so), PQC_IDENTITY (client identity file; default a
 * fresh identity). Exits 1 if anything fails verification.
 */
import { AgentIdentity } from '@pqc-mcp/core';
import { PQCMCPClient } from '@pqc-mcp/mcp';
import { printAuditTrail } from './shared/simple.js';

const serverUrl = process.env.PQC_SERVER_URL ?? 'http://127.0.0.1:8080/mcp';
const serverDid = process.env.PQC_SERVER_DID || undefined;
const identity = process.env.PQC_IDENTITY ? await AgentIdentity.load(process.env.PQC_IDENTITY) : AgentIdentity.create('simple-client');
if (!serverDid) {
  console.warn('WARNING: PQC_SERVER_DID is not set: trusting whichever server answers first (trust on first use).');
  console.warn('         Set PQC_SERVER_DID to the DID the server printed to rule out an impostor.');
}

const client = new PQCMCPClient({ identity, serverUrl, serverDid, trustOnFirstUse: !serverDid, clientInfo: { name: 'simple-client', version: '0.1.0' } });
try {
  const session = await client.connect();
  console.log(`client  ${identity.did}`);
  console.log(`server  ${session.peerDid}${serverDid ? ' (pinned)' : ' (trusted on first use)'}`);
  console.log(`session ${session.sessionId} (${session.peerAlgorithm}, expires ${new Date(session.expiresAt).toISOString()})`);

  const tools = await client.listTools();
  console.log(`\ntools: ${tools.map((t) => `${t.name} (${t.description ?? ''})`).join(', ')}`);

  for (const [name, args] of [
    ['greet', { name: 'World' }],
    ['add', { a: 2, b: 3 }],
    ['echo', { message: 'post-quantum hello' }],
  ] as const) {
    const result = await client.callTool(name, args);
    const text = result.content.map((c) => (c.type === 'text' ? c.text : `[${c.type}]`)).join(' ');
    console.log(`${name}(${JSON.stringify(args)}) → ${text}   (verified ML-DSA signature)`);
  }
  console.log();
  printAuditTrail('client audit trail', client.getAuditLog());
} finally {
  await client.close();
}
