import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

/** Machine-readable names of the JSON-RPC and MCP error codes. */
export type MCPErrorReason =
  | 'parse_error'
  | 'invalid_request'
  | 'method_not_found'
  | 'invalid_params'
  | 'internal_error'
  | 'connection_closed'
  | 'request_timeout'
  | 'url_elicitation_required'
  | 'server_error';

const REASONS: ReadonlyMap<number, MCPErrorReason> = new Map<number, MCPErrorReason>([
  [ErrorCode.ParseError, 'parse_error'],
  [ErrorCode.InvalidRequest, 'invalid_request'],
  [ErrorCode.MethodNotFound, 'method_not_found'],
  [ErrorCode.InvalidParams, 'invalid_params'],
  [ErrorCode.InternalError, 'internal_error'],
  [ErrorCode.ConnectionClosed, 'connection_closed'],
  [ErrorCode.RequestTimeout, 'request_timeout'],
  [ErrorCode.UrlElicitationRequired, 'url_elicitation_required'],
]);

/** The reason name of a JSON-RPC error code (`server_error` for any code without a name). */
export function mcpErrorReason(code: number): MCPErrorReason {
  return REASONS.get(code) ?? 'server_error';
}

/**
 * A JSON-RPC error answered by the MCP server (verified: its signature held) to a `callTool` or `listTools`, or raised
 * by the MCP SDK client itself (timeout, closed connection). A subclass of the SDK's `McpError`, so code that catches
 * `McpError` keeps working. Failures of the PQC layer are never this class: they are `PQCTransportError`s of
 * `@pqc-mcp/core` with a `reason`.
 */
export class MCPToolError extends McpError {
  /** Machine-readable name of `code`. */
  readonly reason: MCPErrorReason;
  /** The tool called, for `callTool`. */
  readonly tool: string | undefined;

  constructor(code: number, message: string, data?: unknown, options: { tool?: string; cause?: unknown } = {}) {
    super(code, message, data);
    this.name = 'MCPToolError';
    this.reason = mcpErrorReason(code);
    this.tool = options.tool;
    if (options.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }

  /** The same error as an `MCPToolError` (an SDK `McpError` keeps its code, message and data). */
  static from(error: McpError, tool?: string): MCPToolError {
    if (error instanceof MCPToolError) return error;
    const message = error.message.replace(/^MCP error -?\d+: /, '');
    return new MCPToolError(error.code, message, error.data, { tool, cause: error });
  }
}
