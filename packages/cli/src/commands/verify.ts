/** `pqc-mcp verify`: checks a captured signed message offline. */
import { ALGORITHMS, AgentIdentity, MessageSigner, PeerIdentity, canonicalJson, parseLossless, type VerificationResult } from '@pqc-mcp/core';
import { EXIT, didArg, loadAnyIdentity, parse, profilesArg, readTextFile, secondsArg, usage, type Io } from '../util.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The key of whichever algorithm accepts `hex` (core checks each key's length). */
function peerOfKey(hex: string): PeerIdentity | undefined {
  for (const algorithm of ALGORITHMS) {
    try {
      return new PeerIdentity(algorithm, hex);
    } catch {
      // another algorithm's key length
    }
  }
  return undefined;
}

/** A key given on the command line: lowercase hex (the algorithm follows from its length) or an identity file. */
export async function peerFromKey(value: string, flag = '--peer-key', command = 'verify'): Promise<PeerIdentity> {
  if (/^[0-9a-f]+$/.test(value)) {
    const peer = peerOfKey(value);
    if (!peer) throw usage(`${flag}: ${value.length} hex characters is not an ML-DSA public key of ${ALGORITHMS.join(', ')}`, command);
    return peer;
  }
  if (/^[0-9a-fA-F]{64,}$/.test(value)) throw usage(`${flag}: hex must be lowercase`, command);
  const id = await loadAnyIdentity(value, command);
  return id instanceof AgentIdentity ? id.toPeer() : id;
}

/** The message texts in the input: one JSON message, each element of a batch, or each `data:` of an SSE capture. */
export function messagesOf(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  if (!/^(data|event|id|retry)\s*:|^:/m.test(trimmed) || trimmed.startsWith('{') || trimmed.startsWith('[')) {
    if (trimmed.startsWith('[')) {
      try {
        const tree = parseLossless(trimmed);
        if (Array.isArray(tree)) return tree.map((element) => canonicalJson(element));
      } catch {
        // Not JSON: verified as is, so the verdict says malformed_json.
      }
    }
    return [trimmed];
  }
  // An SSE capture: events separated by blank lines, data lines joined with \n; events without data skipped.
  const out: string[] = [];
  for (const block of trimmed.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line === 'data' || line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''));
    const joined = data.join('\n');
    if (joined.trim() !== '') out.push(joined);
  }
  return out;
}

function describe(result: VerificationResult, io: Io, prefix: string): void {
  if (result.valid) {
    io.out(`${prefix}valid: signed by ${result.signerDid} (${result.algorithm}, profile v${result.profile})`);
  } else {
    io.out(`${prefix}invalid: ${result.reason}: ${result.detail}`);
    if (result.signerDid) io.out(`  signer_did:  ${result.signerDid}`);
  }
  const method = result.message && typeof result.message.method === 'string' ? result.message.method : null;
  if (method) io.out(`  method:      ${method}`);
  if (result.timestamp) {
    const age = Math.round((Date.now() - Date.parse(result.timestamp)) / 1000);
    io.out(`  timestamp:   ${result.timestamp} (${age >= 0 ? `${age} s ago` : `${-age} s in the future`})`);
  }
  if (result.sessionId) io.out(`  session_id:  ${result.sessionId}`);
  if (result.nonce) io.out(`  nonce:       ${result.nonce}`);
  if (result.inReplyTo) io.out(`  in_reply_to: ${result.inReplyTo}`);
  if (result.digest) io.out(`  digest:      ${result.digest}`);
}

export async function verify(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    'verify',
    args,
    {
      'peer-did': { type: 'string' },
      'peer-key': { type: 'string' },
      profiles: { type: 'string' },
      'max-age': { type: 'string' },
      json: { type: 'boolean' },
    },
    1,
  );
  const peerDid = values['peer-did'] !== undefined ? didArg(values['peer-did'], '--peer-did', 'verify') : undefined;
  const profiles = profilesArg(values.profiles, 'verify');
  const maxAge = values['max-age'] !== undefined ? secondsArg(values['max-age'], '--max-age', 'verify', 0) : undefined;
  const peer = values['peer-key'] !== undefined ? await peerFromKey(values['peer-key']) : undefined;
  if (peer && peerDid && peer.did !== peerDid) {
    throw usage(`--peer-did ${peerDid} is not the DID of --peer-key (${peer.did})`, 'verify');
  }

  const source = positionals[0] ?? '-';
  let text: string;
  if (source === '-') {
    if (process.stdin.isTTY) throw usage('no message: give a FILE, or pipe the message on stdin', 'verify');
    text = await readStdin();
  } else {
    text = await readTextFile(source, 'message file', 'verify');
  }

  const messages = messagesOf(text);
  const results: VerificationResult[] = [];
  for (const message of messages.length > 0 ? messages : ['']) {
    const result = await MessageSigner.verifyMessage(message, {
      peer,
      profiles,
      // A capture is verified for what it says and who signed it; its age only matters when asked (--max-age).
      clockSkewSec: maxAge ?? Number.POSITIVE_INFINITY,
    });
    if (result.valid && peerDid && result.signerDid !== peerDid) {
      result.valid = false;
      result.reason = 'peer_mismatch';
      result.detail = `signed by ${result.signerDid}, not by --peer-did ${peerDid}`;
    } else if (!result.valid && result.reason === 'invalid_envelope' && !peer && result.detail?.includes('no public_key')) {
      result.detail += ' (give the signer\'s key with --peer-key)';
    } else if (result.valid && !peer && !peerDid) {
      result.detail = 'checked against the public_key in the envelope: integrity only, the signer is not authenticated';
    }
    results.push(result);
  }
  const valid = results.every((r) => r.valid);

  if (values.json) {
    io.out(JSON.stringify({ valid, messages: results.map(({ message: _message, ...rest }) => rest) }));
  } else {
    results.forEach((result, i) => {
      describe(result, io, results.length > 1 ? `message ${i + 1}: ` : '');
      if (result.valid && result.detail) io.out(`  note:        ${result.detail}`);
    });
  }
  return valid ? EXIT.OK : EXIT.FAILED;
}
