/**
 * `pinTools(client, options)`: tool pinning for code that uses the MCP SDK v2 `Client` with `pqcFetch` (or `withPqc`)
 * directly. Its `listTools` and `callTool` go through the pins; `notifications/tools/list_changed` triggers a new
 * listing. Calls made on the `Client` itself bypass the pins: give the application this object instead.
 */
import type { CallToolResult, Client, RequestOptions, Tool } from '@modelcontextprotocol/client';
import { isDid, type PQCFetch } from '@pqc-mcp/core';
import { sdkToolsPage } from './sdk-list.js';
import { ToolPinning, validatePinningOptions, type ToolApproval, type ToolPinningOptions, type ToolsChangedEvent } from './tool-pinning.js';

/** Options of `pinTools`: the pinning options and where the server's DID comes from. */
export interface PinToolsOptions extends ToolPinningOptions {
  /** The `pqcFetch` under the client's transport: the server DID it pinned, and its verified session peer as signer. */
  fetch?: PQCFetch;
  /** The server's DID, when the client's fetch is not at hand (the `withPqc` middleware): the signer of every answer. */
  serverDid?: string;
}

/** An SDK v2 `Client` behind tool pinning. */
export interface PinnedTools {
  /** The tools callable now (every page listed; changes told to `onToolsChanged`). */
  listTools(options?: RequestOptions): Promise<Tool[]>;
  /** Calls a tool once its listed definition is approved; else throws `ToolPinError` (`tool_changed`, `tool_added`, `tool_not_listed`). */
  callTool(name: string, args?: Record<string, unknown>, options?: RequestOptions): Promise<CallToolResult>;
  /** Approves pending changes (all, some names, or exactly an event's versions); resolves with the names approved. */
  approveTools(selection?: ToolApproval): Promise<string[]>;
  /** The difference between the last listing and the approved tools, if any. */
  readonly pending: ToolsChangedEvent | undefined;
}

/**
 * Puts tool pinning in front of an SDK v2 `Client` that speaks through `pqcFetch`. Registers the client's handler of
 * `notifications/tools/list_changed` (replacing any other). Options are validated now (a `TypeError` names a bad one).
 */
export function pinTools(client: Client, options: PinToolsOptions): PinnedTools {
  validatePinningOptions(options, 'pinTools');
  const { fetch, serverDid } = options;
  if (fetch === undefined && serverDid === undefined) throw new TypeError('pinTools: give "fetch" (the pqcFetch of the client) or "serverDid"');
  if (serverDid !== undefined && !isDid(serverDid)) throw new TypeError('pinTools: "serverDid" must be a DID');
  if (fetch !== undefined && (typeof fetch !== 'function' || !('audit' in fetch))) throw new TypeError('pinTools: "fetch" must be a pqcFetch');
  const pinnedDid = (): string | undefined => {
    if (serverDid !== undefined && fetch?.serverDid !== undefined && fetch.serverDid !== serverDid) {
      throw new Error(`pinTools: the fetch is pinned to ${fetch.serverDid}, not to the "serverDid" given (${serverDid})`);
    }
    return fetch?.serverDid ?? serverDid;
  };
  const pinning = new ToolPinning(options, {
    listPage: (cursor, callOptions) => sdkToolsPage(client, cursor, callOptions),
    serverDid: pinnedDid,
    signer: () => (fetch ? fetch.session?.peerDid : serverDid),
  });
  client.setNotificationHandler('notifications/tools/list_changed', () => pinning.markStale());
  return {
    listTools: (callOptions) => pinning.list(callOptions),
    async callTool(name, args = {}, callOptions) {
      await pinning.assertCallable(name);
      return (await client.callTool({ name, arguments: args }, callOptions)) as CallToolResult;
    },
    approveTools: (selection) => pinning.approve(selection),
    get pending() {
      return pinning.pending;
    },
  };
}
