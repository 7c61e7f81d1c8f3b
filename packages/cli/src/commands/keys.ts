/** `pqc-mcp keygen` and `pqc-mcp identity`. */
import { open, unlink } from 'node:fs/promises';
import { AgentIdentity, ALGORITHMS, DEFAULT_ALGORITHM, type Algorithm } from '@pqc-mcp/core';
import { EXIT, CliError, fsReason, loadAnyIdentity, parse, required, usage, warnIfExposed, type Io } from '../util.js';

export async function keygen(args: string[], io: Io): Promise<number> {
  const { values } = parse(
    'keygen',
    args,
    {
      out: { type: 'string', short: 'o' },
      algorithm: { type: 'string' },
      name: { type: 'string' },
      force: { type: 'boolean', short: 'f' },
    },
    0,
  );
  const out = required(values.out, '--out', 'keygen');
  const algorithm = (values.algorithm ?? DEFAULT_ALGORITHM) as Algorithm;
  if (!ALGORITHMS.includes(algorithm)) throw usage(`--algorithm must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`, 'keygen');
  if (values.name !== undefined && values.name.trim() === '') throw usage('--name must not be empty', 'keygen');
  const identity = AgentIdentity.create(values.name ?? 'agent', { algorithm });

  let created = false;
  if (!values.force) {
    // Claim the path atomically (O_EXCL): an existing file is never touched without --force.
    try {
      const handle = await open(out, 'wx', 0o600);
      await handle.close();
      created = true;
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST') {
        throw new CliError(`${out} already exists; refusing to overwrite an identity (use --force to replace it)`, EXIT.USAGE, 'keygen');
      }
      throw usage(`cannot write ${out}: ${fsReason(err)}`, 'keygen');
    }
  }
  try {
    await identity.save(out); // mode 0600, the seed included
  } catch (err) {
    if (created) await unlink(out).catch(() => {});
    throw usage(`cannot write ${out}: ${fsReason(err)}`, 'keygen');
  }
  io.out(identity.did);
  io.err(`pqc-mcp: wrote identity "${identity.name}" (${identity.algorithm}) to ${out} (mode 0600); keep it secret`);
  return EXIT.OK;
}

export async function identity(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('identity', args, { json: { type: 'boolean' } }, 1);
  const file = positionals[0];
  if (file === undefined) throw usage('an identity FILE is required', 'identity');
  const id = await loadAnyIdentity(file, 'identity');
  const isPrivate = id instanceof AgentIdentity;
  if (isPrivate) await warnIfExposed(file, io);
  const jwk = id.toJwk(); // public members only: AgentIdentity.toJwk() leaves the seed out unless asked
  const info = { did: id.did, algorithm: id.algorithm, name: id.name ?? null, private: isPrivate, public_jwk: jwk };
  if (values.json) {
    io.out(JSON.stringify(info));
  } else {
    io.out(`did:        ${info.did}`);
    io.out(`algorithm:  ${info.algorithm}`);
    if (info.name !== null) io.out(`name:       ${info.name}`);
    io.out(`kind:       ${isPrivate ? 'private identity (seed not shown)' : 'public identity'}`);
    io.out(`public JWK: ${JSON.stringify(jwk)}`);
  }
  return EXIT.OK;
}
