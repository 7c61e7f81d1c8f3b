/**
 * The tools the conformance and hostile suites call on the MCP server behind the server under test. By default the
 * examples' server (`echo(text)`, `add(a, b)`, `whoami`, and nothing else); a server with other tools (the MCP project's
 * reference `server-everything` behind the CLI gateway, say) describes its own, and every check still runs.
 */
export interface SuiteTools {
  /** Tools `tools/list` must name. */
  listed: readonly string[];
  /** True when `tools/list` must name exactly `listed`, nothing more (false: at least those). */
  exact: boolean;
  /** A tool that answers one text argument in a text block. */
  echo: { name: string; arg: string; result(text: string): string };
  /** A tool that adds two numbers, answered in a text block. */
  add: { name: string; a: string; b: string; result(a: number, b: number): string };
  /** A tool without arguments that answers the caller's DID as the MCP app was told it (`authInfo`), if any. */
  whoami?: string;
}

/** The examples' tool server (examples/shared/tools.ts), and the 1.x apps of this kit. */
export const EXAMPLE_TOOLS: SuiteTools = {
  listed: ['add', 'echo', 'whoami'],
  exact: true,
  echo: { name: 'echo', arg: 'text', result: (text) => text },
  add: { name: 'add', a: 'a', b: 'b', result: (a, b) => String(a + b) },
  whoami: 'whoami',
};

/** The arguments of an echo call. */
export function echoArgs(tools: SuiteTools, text: string): Record<string, unknown> {
  return { [tools.echo.arg]: text };
}

/** The arguments of an add call. */
export function addArgs(tools: SuiteTools, a: number, b: number): Record<string, unknown> {
  return { [tools.add.a]: a, [tools.add.b]: b };
}
