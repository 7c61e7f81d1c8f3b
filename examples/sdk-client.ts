/**
 * The official MCP SDK v2 client, made post-quantum by one option: `StreamableHTTPClientTransport(url, { fetch:
 * pqcFetch(...) })`. Every request is signed, every server message verified against the pinned server key before
 * the SDK sees it.
 *
 *   PQC_SERVER_URL=http://127.0.0.1:8080/mcp PQC_SERVER_DID=did:pqaid:… tsx --conditions=@pqc-mcp/source examples/sdk-client.ts
 *
 * Works against any of the example servers. Environment as examples/simple-client.ts, and PQC_MCP_PROTOCOL: the MCP
 * era, `legacy` (2025-11-25), `auto` (default) or `2026-07-28` (pinned).
 */
import { Client, StreamableHTTPClientTransport, type VersionNegotiationMode } from '@modelcontextprotocol/client';
import { AgentIdentity, pqcFetch } from '@pqc-mcp/core';
import { printAuditTrail } from './shared/simple.js';

const serverUrl = new URL(process.env.PQC_SERVER_URL ?? 'http://127.0.0.1:8080/mcp');
const serverDid = process.env.PQC_SERVER_DID || undefined;
const identity = process.env.PQC_IDENTITY ? await AgentIdentity.load(process.env.PQC_IDENTITY) : AgentIdentity.create('sdk-client');
const protocol = process.env.PQC_MCP_PROTOCOL ?? 'auto';
const mode: VersionNegotiationMode = protocol === 'legacy' || protocol === 'auto' ? protocol : { pin: protocol };
if (!serverDid) console.warn('WARNING: PQC_SERVER_DID is not set: trusting whichever server answers first (trust on first use).');

const fetch = pqcFetch({ identity, serverDid, trustOnFirstUse: !serverDid });
const client = new Client({ name: 'sdk-client', version: '0.1.0' }, { versionNegotiation: { mode } });
await client.connect(new StreamableHTTPClientTransport(serverUrl, { fetch }));
try {
  console.log(`client ${identity.did}\nserver ${fetch.serverDid} (session ${fetch.session?.sessionId}, MCP era ${client.getProtocolEra()})`);
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
  await fetch.endSession();
}
