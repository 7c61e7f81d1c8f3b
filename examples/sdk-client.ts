/**
 * The plain MCP SDK client, made post-quantum by one option: `StreamableHTTPClientTransport(url, { fetch: pqcFetch(...) })`.
 * Every request is signed, every server message verified against the pinned server key before the SDK sees it.
 *
 *   PQC_SERVER_URL=http://127.0.0.1:8080/mcp PQC_SERVER_DID=did:pqaid:… tsx --conditions=@pqc-mcp/source examples/sdk-client.ts
 *
 * Works against any of the example servers (simple, Express, Fastify, Hono). Environment as examples/simple-client.ts.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { AgentIdentity, pqcFetch } from '@pqc-mcp/core';
import { printAuditTrail } from './shared/seed.js';

const serverUrl = new URL(process.env.PQC_SERVER_URL ?? 'http://127.0.0.1:8080/mcp');
const serverDid = process.env.PQC_SERVER_DID || undefined;
const identity = process.env.PQC_IDENTITY ? await AgentIdentity.load(process.env.PQC_IDENTITY) : AgentIdentity.create('sdk-client');
if (!serverDid) console.warn('WARNING: PQC_SERVER_DID is not set: trusting whichever server answers first (trust on first use).');

const fetch = pqcFetch({ identity, serverDid, trustOnFirstUse: !serverDid });
const client = new Client({ name: 'sdk-client', version: '0.1.0' });
await client.connect(new StreamableHTTPClientTransport(serverUrl, { fetch }));
try {
  console.log(`client ${identity.did}\nserver ${fetch.serverDid} (session ${fetch.session?.sessionId})`);
  const { tools } = await client.listTools();
  console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
  const name = tools.some((t) => t.name === 'add') ? 'add' : tools[0]?.name;
  if (name) {
    const result = await client.callTool({ name, arguments: name === 'add' ? { a: 2, b: 3 } : {} });
    console.log(`${name} → ${JSON.stringify(result.content)}`);
  }
  printAuditTrail('client audit trail', fetch.audit.entries());
} finally {
  await client.close();
}
