/**
 * `pqc-mcp rotate`: replaces a server's key (docs/PROTOCOL.md §11). Reads the current identity, makes the new one
 * (mode 0600) and the rotation record signed by the current key, and writes the chain (the earlier records given with
 * --previous, then the new one) as a JSON file for the server's `rotations` option or the gateway's --rotations.
 */
import { open, unlink, writeFile } from 'node:fs/promises';
import { AgentIdentity, ALGORITHMS, DEFAULT_ROTATION_OVERLAP_SEC, createRotationRecord, type Algorithm, type RotationRecord } from '@pqc-mcp/core';
import { readRotationRecords } from '@pqc-mcp/core/internal';
import { EXIT, CliError, fsReason, loadIdentity, parse, readTextFile, required, usage, type Io } from '../util.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `--overlap 7d` (also s, m, h, or plain seconds). */
function durationArg(value: string | undefined): number {
  if (value === undefined) return DEFAULT_ROTATION_OVERLAP_SEC;
  const m = /^(\d{1,9})([smhd]?)$/.exec(value.trim());
  if (!m) throw usage(`--overlap must be a duration like 7d, 12h, 30m or 3600 (seconds), got ${JSON.stringify(value)}`, 'rotate');
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

/** `--effective-at`: an RFC 3339 date-time, or now. */
function instantArg(value: string | undefined): number {
  if (value === undefined) return Date.now();
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(value) || Number.isNaN(ms)) {
    throw usage(`--effective-at must be an RFC 3339 date-time with offset (e.g. 2026-12-01T00:00:00Z), got ${JSON.stringify(value)}`, 'rotate');
  }
  return ms;
}

/** The earlier chain (--previous): a JSON array of records (or one record), ending at the current identity. */
async function previousChain(path: string | undefined, current: AgentIdentity): Promise<RotationRecord[]> {
  if (path === undefined) return [];
  const text = await readTextFile(path, 'rotation chain', 'rotate');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw usage(`invalid rotation chain ${path}: not JSON`, 'rotate');
  }
  const records = (Array.isArray(parsed) ? parsed : [parsed]) as RotationRecord[];
  if (records.length === 0 || records[records.length - 1]?.new_did !== current.did) {
    throw usage(`invalid rotation chain ${path}: its last record does not rotate to the current identity ${current.did}`, 'rotate');
  }
  return records;
}

/** Claims `path` for a new file (O_EXCL), unless `force`. Resolves whether it was created here. */
async function claim(path: string, force: boolean, what: string): Promise<boolean> {
  if (force) return false;
  try {
    const handle = await open(path, 'wx', 0o600);
    await handle.close();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') throw new CliError(`${path} already exists; refusing to overwrite ${what} (use --force to replace it)`, EXIT.USAGE, 'rotate');
    throw usage(`cannot write ${path}: ${fsReason(err)}`, 'rotate');
  }
}

export async function rotate(args: string[], io: Io): Promise<number> {
  const { values } = parse(
    'rotate',
    args,
    {
      identity: { type: 'string' },
      out: { type: 'string', short: 'o' },
      record: { type: 'string' },
      previous: { type: 'string' },
      algorithm: { type: 'string' },
      name: { type: 'string' },
      'effective-at': { type: 'string' },
      overlap: { type: 'string' },
      force: { type: 'boolean', short: 'f' },
    },
    0,
  );
  const current = await loadIdentity(required(values.identity, '--identity', 'rotate'), 'rotate', io);
  const out = required(values.out, '--out', 'rotate');
  const recordPath = required(values.record, '--record', 'rotate');
  if (new Set([values.identity, out, recordPath, values.previous].filter((p) => p !== undefined)).size !== (values.previous === undefined ? 3 : 4)) {
    throw usage('--identity, --out, --record and --previous must be different files', 'rotate');
  }
  const algorithm = (values.algorithm ?? current.algorithm) as Algorithm;
  if (!ALGORITHMS.includes(algorithm)) throw usage(`--algorithm must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`, 'rotate');
  if (values.name !== undefined && values.name.trim() === '') throw usage('--name must not be empty', 'rotate');
  const overlapSec = durationArg(values.overlap);
  const effectiveAt = instantArg(values['effective-at']);
  const previous = await previousChain(values.previous, current);

  const next = AgentIdentity.create(values.name ?? current.name, { algorithm });
  const record = await createRotationRecord(current, next, { effectiveAt, overlapSec });
  const chain = [...previous, record];
  // What is written is what the server will check at start-up: shape, links, every signature, the end at the new key.
  try {
    readRotationRecords(chain, next);
  } catch (err) {
    throw usage(`the rotation chain does not verify: ${err instanceof Error ? err.message : String(err)}`, 'rotate');
  }

  const force = values.force === true;
  const createdIdentity = await claim(out, force, 'an identity');
  try {
    await next.save(out); // mode 0600, the seed included
  } catch (err) {
    if (createdIdentity) await unlink(out).catch(() => {});
    throw usage(`cannot write ${out}: ${fsReason(err)}`, 'rotate');
  }
  try {
    await claim(recordPath, force, 'a rotation chain');
    await writeFile(recordPath, JSON.stringify(chain, null, 2) + '\n');
  } catch (err) {
    await unlink(out).catch(() => {}); // no new identity without its record
    if (err instanceof CliError) throw err;
    throw usage(`cannot write ${recordPath}: ${fsReason(err)}`, 'rotate');
  }
  io.out(next.did);
  io.err(
    `pqc-mcp: wrote the new identity "${next.name}" (${next.algorithm}) to ${out} (mode 0600) and the rotation chain ` +
      `(${chain.length} record${chain.length === 1 ? '' : 's'}) to ${recordPath}. Restart the server with the new identity and ` +
      `the chain (gateway: --identity ${out} --rotations ${recordPath}); clients pinned to ${current.did} follow it until ` +
      `${record.old_valid_until}. The old identity is no longer needed to serve: keep it offline, or destroy it.`,
  );
  return EXIT.OK;
}
