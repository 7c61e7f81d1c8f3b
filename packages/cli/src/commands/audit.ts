/** `pqc-mcp audit verify`: checks an audit file (docs/AUDIT.md) offline and names the first line that fails. */
import { readFile } from 'node:fs/promises';
import { verifyAuditFile, type AuditVerification, type PeerIdentity } from '@pqc-mcp/core';
import { EXIT, fsReason, parse, usage, type Io } from '../util.js';
import { peerFromKey } from './verify.js';

async function keys(values: string[] | undefined, flag: string): Promise<PeerIdentity[]> {
  const out: PeerIdentity[] = [];
  for (const value of values ?? []) out.push(await peerFromKey(value, flag, 'audit'));
  return out;
}

function describe(result: AuditVerification, io: Io, pinned: boolean): void {
  if (result.failure) {
    io.out(`invalid: line ${result.failure.line}: ${result.failure.reason}: ${result.failure.detail}`);
    return;
  }
  io.out(`valid: ${result.lines} line(s), ${result.entries} entries, ${result.checkpoints} checkpoint(s), ${result.segments} segment(s)`);
  io.out(`  signed by:   ${result.signers.join(', ')}${pinned ? '' : ' (the file\'s own key: give --server-key to pin it)'}`);
  io.out(`  messages:    ${result.messagesVerified} verified, ${result.messagesUnchecked} unchecked`);
  io.out(`  closed:      ${result.closed ? 'yes (ends with a final checkpoint)' : 'no'}`);
  if (result.unsignedTail > 0) io.out(`  unsigned:    ${result.unsignedTail} line(s) after the last checkpoint (line ${result.lastCheckpointLine ?? 'none'})`);
  for (const warning of result.warnings) io.out(`  warning:     ${warning}`);
}

/** `pqc-mcp audit verify FILE`. */
export async function audit(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') throw usage(sub === undefined ? 'audit needs a subcommand: verify' : `unknown audit subcommand ${JSON.stringify(sub)}`, 'audit');
  const { values, positionals } = parse(
    'audit',
    rest,
    {
      'server-key': { type: 'string', multiple: true },
      'client-key': { type: 'string', multiple: true },
      'require-closed': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    1,
  );
  const file = positionals[0];
  if (file === undefined) throw usage('audit verify needs the FILE to verify', 'audit');
  const serverKeys = await keys(values['server-key'], '--server-key');
  const clientKeys = await keys(values['client-key'], '--client-key');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw usage(`cannot read audit file ${file}: ${fsReason(err)}`, 'audit');
  }
  const result = await verifyAuditFile(bytes, { serverKeys, clientKeys, requireClosed: values['require-closed'] });
  if (values.json) io.out(JSON.stringify(result));
  else describe(result, io, serverKeys.length > 0);
  return result.ok ? EXIT.OK : EXIT.FAILED;
}
