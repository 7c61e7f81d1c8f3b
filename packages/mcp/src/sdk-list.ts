/** One `tools/list` read through the MCP SDK v2 `Client`, for tool pinning: fresh from the server, pagination bounded. */
import { SdkError, SdkErrorCode, type Client, type RequestOptions, type Tool } from '@modelcontextprotocol/client';
import { ToolPinError } from '@pqc-mcp/core';

/**
 * The server's tools as the SDK `Client` lists them: without a cursor the SDK walks every page itself (bounded by its
 * `listMaxPages`; a server whose pagination does not end is `ToolPinError('tools_list_invalid')`), never from its
 * response cache (`cacheMode: 'refresh'`: a server-chosen `ttlMs` cannot hide a change from the pinning check).
 */
export async function sdkToolsPage(client: Client, cursor: string | undefined, options?: RequestOptions): Promise<{ tools: Tool[]; nextCursor?: string }> {
  try {
    return await client.listTools(cursor === undefined ? undefined : { cursor }, { ...options, cacheMode: 'refresh' });
  } catch (err) {
    if (err instanceof SdkError && err.code === SdkErrorCode.ListPaginationExceeded) {
      throw new ToolPinError('tools_list_invalid', `tools/list: the server's pagination does not end (${err.message})`, { cause: err });
    }
    throw err;
  }
}
