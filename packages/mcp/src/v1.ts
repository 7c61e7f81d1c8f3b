/**
 * Raw JSON-RPC to a v1 peer, the Python predecessor's server (`pqc-mcp-transport`): it speaks no MCP handshake (no
 * `initialize`), answers `tools/list` and `tools/call` with one JSON body, and a tool result as
 * `{"content": <the handler's value>}`. The PQC layer (profile 1) is `pqcFetch`'s.
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import type { FetchLike } from '@pqc-mcp/core';
import { MCPToolError } from './errors.js';

let nextId = 1;

/** One JSON-RPC request to a v1 peer through a profile-1 `pqcFetch`: its verified result. */
export async function v1Request(fetch: FetchLike, url: URL, method: string, params: Record<string, unknown>, tool?: string): Promise<unknown> {
  const id = nextId++;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
  });
  const answer = (await response.json()) as { id?: unknown; result?: unknown; error?: { code?: number; message?: string; data?: unknown } };
  if (answer.error) throw new MCPToolError(answer.error.code ?? -32603, answer.error.message ?? 'error', answer.error.data, { tool });
  if (answer.id !== id) throw new MCPToolError(-32603, `the answer is for request ${JSON.stringify(answer.id)}, not ${id}`, undefined, { tool });
  return answer.result;
}

/** A v1 peer's tool list (`{name, description}` entries; an `inputSchema` defaults to any object). */
export function v1Tools(result: unknown): Tool[] {
  const tools = (result as { tools?: unknown } | null)?.tools;
  if (!Array.isArray(tools)) return [];
  return tools.map((t: { name?: unknown; description?: unknown; inputSchema?: unknown }) => ({
    name: String(t.name),
    ...(typeof t.description === 'string' ? { description: t.description } : {}),
    inputSchema: (t.inputSchema as Tool['inputSchema']) ?? { type: 'object' },
  }));
}

/**
 * A v1 peer's tool result as an MCP `CallToolResult`: an MCP result as it is; the predecessor's `{"content": value}`
 * as one text content (the value's text, or its JSON) with the value itself in `structuredContent.value`.
 */
export function v1CallToolResult(result: unknown): CallToolResult {
  const content = (result as { content?: unknown } | null)?.content;
  if (Array.isArray(content)) return result as CallToolResult;
  const text = typeof content === 'string' ? content : JSON.stringify(content ?? null);
  return { content: [{ type: 'text', text }], structuredContent: { value: content } };
}
