/** The MCP SDK clients the suites drive (1.x, and v2 in each negotiation mode), behind one small face. */
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2, type VersionNegotiationMode } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@pqc-mcp/core';

/** Which client, and how it negotiates the MCP era. */
export type SdkClientKind = '1.x client' | 'v2 client, legacy' | 'v2 client, auto' | 'v2 client, pinned 2026-07-28';

/** What the suites do with a connected client. */
export interface SdkClient {
  listTools(): Promise<string[]>;
  callTool(name: string, args: Record<string, unknown>): Promise<unknown>;
  /** Ends the MCP session where there is one (a signed DELETE), then closes. */
  close(): Promise<void>;
}

const MODES: Record<Exclude<SdkClientKind, '1.x client'>, VersionNegotiationMode> = {
  'v2 client, legacy': 'legacy',
  'v2 client, auto': 'auto',
  'v2 client, pinned 2026-07-28': { pin: '2026-07-28' },
};

/** Connects the client `kind` to the MCP endpoint `url` through `fetch` (a `pqcFetch`). */
export async function connectSdkClient(kind: SdkClientKind, url: string, fetch: FetchLike): Promise<SdkClient> {
  if (kind === '1.x client') {
    const client = new ClientV1({ name: 'suite', version: '1.0.0' });
    const transport = new TransportV1(new URL(url), { fetch });
    await client.connect(transport);
    return {
      listTools: async () => (await client.listTools()).tools.map((t) => t.name),
      callTool: (name, args) => client.callTool({ name, arguments: args }),
      close: async () => {
        if (transport.sessionId) await transport.terminateSession();
        await client.close();
      },
    };
  }
  const client = new ClientV2({ name: 'suite', version: '1.0.0' }, { versionNegotiation: { mode: MODES[kind] } });
  const transport = new TransportV2(new URL(url), { fetch });
  await client.connect(transport);
  return {
    listTools: async () => (await client.listTools()).tools.map((t) => t.name),
    callTool: (name, args) => client.callTool({ name, arguments: args }),
    close: async () => {
      if (transport.sessionId) await transport.terminateSession();
      await client.close();
    },
  };
}
