/**
 * Raw JSON-RPC to a v1 peer, the Python predecessor's server (`pqc-mcp-transport`): it speaks no MCP handshake (no
 * `initialize`), answers `tools/list` and `tools/call` with one JSON body, and a tool result as
 * `{"content": <the handler's value>}`. The PQC layer (profile 1) is `pqcFetch`'s.
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { canonicalJson, parseLossless, type FetchLike, type JsonValue } from '@pqc-mcp/core';
import { MCPToolError } from './errors.js';

let nextId = 1;

/** The verified result of a v1 request: as plain JSON, and as the server wrote it (numbers keep Python's forms). */
export interface V1Result {
  plain: unknown;
  lossless: JsonValue | undefined;
}

/** One JSON-RPC request to a v1 peer through a profile-1 `pqcFetch`: its verified result. */
export async function v1Request(fetch: FetchLike, url: URL, method: string, params: Record<string, unknown>, tool?: string): Promise<V1Result> {
  const id = nextId++;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
  });
  // pqcFetch hands on only the verified message (without _pqc), number lexemes as the server wrote them.
  const text = await response.text();
  const answer = JSON.parse(text) as { id?: unknown; result?: unknown; error?: { code?: number; message?: string; data?: unknown } };
  if (answer.error) throw new MCPToolError(answer.error.code ?? -32603, answer.error.message ?? 'error', answer.error.data, { tool });
  if (answer.id !== id) throw new MCPToolError(-32603, `the answer is for request ${JSON.stringify(answer.id)}, not ${id}`, undefined, { tool });
  const tree = parseLossless(text);
  return { plain: answer.result, lossless: tree instanceof Map ? tree.get('result') : undefined };
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
 * as one text content with the value itself in `structuredContent.value`. The text is a string value as it is, and
 * any other value's JSON as Python writes it (`10.0` stays `10.0`, `1e+16` stays `1e+16`, keys sorted).
 */
export function v1CallToolResult({ plain, lossless }: V1Result): CallToolResult {
  const content = (plain as { content?: unknown } | null)?.content;
  if (Array.isArray(content)) return plain as CallToolResult;
  const written = lossless instanceof Map ? lossless.get('content') : undefined;
  const text = typeof content === 'string' ? content : canonicalJson(written ?? content ?? null);
  return { content: [{ type: 'text', text }], structuredContent: { value: content } };
}
