/**
 * `pqc-mcp call`: one verified tool call from the shell, with the MCP SDK client (v2) over `pqcFetch`; with
 * `--profile v1`, one plain JSON-RPC `tools/call` to a v1 (`pqc-mcp-transport`) peer, which takes no `initialize`.
 */
import { Client, ProtocolError, SdkError, SdkErrorCode, SdkHttpError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { PQCTransportError } from '@pqc-mcp/core';
import { EXIT, CliError, describeError, httpUrl, isNetworkError, loadIdentity, parse, required, secondsArg, usage, type Io } from '../util.js';
import { CLIENT_FLAGS, PeerRpcError, asCallToolResult, clientSetup, v1Request, type ClientSetup } from './client-flags.js';

interface ContentItem {
  type: string;
  text?: string;
}

type ToolResult = { content: unknown[]; isError?: boolean; structuredContent?: unknown } & Record<string, unknown>;

function toolArgsOf(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw usage(`JSON-ARGS is not valid JSON (${err instanceof Error ? err.message : String(err)}): ${text}`, 'call');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw usage('JSON-ARGS must be a JSON object, e.g. \'{"text":"hi"}\'', 'call');
  return parsed as Record<string, unknown>;
}

/** The call over MCP: connect (negotiating as asked), call the tool, end the MCP and PQC sessions. */
async function mcpCall(setup: ClientSetup, url: URL, tool: string, args: Record<string, unknown>, timeoutMs: number, io: Io): Promise<ToolResult> {
  const transport = new StreamableHTTPClientTransport(url, { fetch: setup.fetch });
  const client = new Client({ name: 'pqc-mcp-cli', version: '0.1.0' }, { capabilities: {}, versionNegotiation: setup.negotiation });
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    await client.connect(transport, { signal, timeout: timeoutMs });
    if (setup.pin.trustOnFirstUse) io.err(`pqc-mcp: trusted ${url.host} on first use: server ${setup.fetch.serverDid}`);
    return (await client.callTool({ name: tool, arguments: args }, { signal, timeout: timeoutMs })) as ToolResult;
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
    await setup.fetch.endSession().catch(() => {});
  }
}

/** The call to a v1 peer: one plain JSON-RPC request. */
async function v1Call(setup: ClientSetup, url: URL, tool: string, args: Record<string, unknown>, timeoutMs: number, io: Io): Promise<ToolResult> {
  const result = await v1Request(setup.fetch, url, 1, 'tools/call', { name: tool, arguments: args }, AbortSignal.timeout(timeoutMs));
  if (setup.pin.trustOnFirstUse) io.err(`pqc-mcp: trusted ${url.host} on first use: server ${setup.fetch.serverDid}`);
  return asCallToolResult(result);
}

export async function call(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('call', args, { ...CLIENT_FLAGS, json: { type: 'boolean' }, timeout: { type: 'string' } }, 3);
  const [urlArg, tool, argsText] = positionals;
  if (urlArg === undefined || tool === undefined) throw usage('URL and TOOL are required', 'call');
  const url = httpUrl(urlArg, 'URL', 'call');
  const toolArgs = toolArgsOf(argsText);
  const identityFile = required(values.identity, '--identity', 'call');
  const timeoutMs = secondsArg(values.timeout, '--timeout', 'call', 60) * 1000;
  const identity = await loadIdentity(identityFile, 'call', io);
  const setup = clientSetup(values, identity, 'call', (line) => io.err(line));

  let result: ToolResult;
  try {
    result = await (setup.profile === 1 ? v1Call : mcpCall)(setup, url, tool, toolArgs, timeoutMs, io);
  } catch (err) {
    throw callError(err, url, timeoutMs);
  }

  const content = (Array.isArray(result.content) ? result.content : []) as ContentItem[];
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
  } else {
    for (const item of content) io.out(item.type === 'text' && typeof item.text === 'string' ? item.text : JSON.stringify(item));
    if (content.length === 0 && result.structuredContent !== undefined) io.out(JSON.stringify(result.structuredContent, null, 2));
  }
  if (result.isError === true) {
    io.err(`pqc-mcp: error: the tool "${tool}" reported an error`);
    return EXIT.FAILED;
  }
  return EXIT.OK;
}

/** The JSON-RPC error message in an HTTP error's body, else the body. */
function httpErrorDetail(text: unknown, fallback: string): string {
  if (typeof text !== 'string') return fallback;
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof body.error?.message === 'string') return body.error.message;
  } catch {
    // not JSON
  }
  return text.trim() || fallback;
}

/** Sorts a failure into "refused" (exit 1) and "could not get there" (exit 3). */
function callError(err: unknown, url: URL, timeoutMs: number): CliError {
  const timedOut = new CliError(`no answer from ${url.href} within ${timeoutMs / 1000} s`, EXIT.RUNTIME);
  if (err instanceof PQCTransportError) return new CliError(`refused (${err.reason}): ${err.message}`, EXIT.FAILED);
  if (err instanceof SdkHttpError) {
    const detail = httpErrorDetail(err.data.text, err.message);
    if (err.status < 500) return new CliError(`refused by ${url.href} (HTTP ${err.status}): ${detail}`, EXIT.FAILED);
    return new CliError(`${url.href} answered HTTP ${err.status}: ${detail}`, EXIT.RUNTIME);
  }
  if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout) return timedOut;
  if (err instanceof ProtocolError || err instanceof PeerRpcError) return new CliError(`the server answered with an error: ${err.message}`, EXIT.FAILED);
  if ((err as { name?: string } | null)?.name === 'TimeoutError') return timedOut;
  if (isNetworkError(err)) return new CliError(`cannot reach ${url.href}: ${describeError(err)}`, EXIT.RUNTIME);
  return new CliError(`call failed: ${describeError(err)}`, EXIT.RUNTIME);
}
