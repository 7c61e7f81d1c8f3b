/**
 * A float from a Python peer: `json.dumps` writes `7.0` and `1e-07`, and the signature covers those lexemes
 * (docs/PROTOCOL.md §2). It verifies from the received text; `JSON.parse` loses `7.0` (it becomes `7`), so verifying the
 * parsed object must fail.
 */
import { toHex, utf8 } from '../src/bytes.js';
import { sha3_256, sha3_256Hex } from '../src/crypto/hash.js';
import { MESSAGE_CONTEXT } from '../src/protocol.js';
import {
  MessageSigner,
  canonicalJson,
  parseLossless,
} from '../src/index.js';
import { VECTOR_TIME, seededIdentity } from '@pqc-mcp/test-kit';

const python = seededIdentity(21, 'ML-DSA-65', 'python-peer');
const SESSION = '5e55105e55105e55105e55105e55105e';
const NONCE = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const TIMESTAMP = '2026-11-25T12:00:00.123000+00:00'; // Python's isoformat() of VECTOR_TIME

/** The message part as Python's `json.dumps(..., separators=(",", ":"))` writes it, floats and all. */
const BODY = '"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"a":7.0,"b":1e-07}}';
const ENVELOPE =
  `"v":2,"signer_did":"${python.did}","algorithm":"ML-DSA-65","timestamp":"${TIMESTAMP}",` +
  `"nonce":"${NONCE}","session_id":"${SESSION}"`;

/** What Python signs: its canonical form, keys sorted, lexemes as Python prints them. */
const EXPECTED_SIGNING_INPUT =
  `{"_pqc":{"algorithm":"ML-DSA-65","nonce":"${NONCE}","session_id":"${SESSION}","signer_did":"${python.did}",` +
  `"timestamp":"${TIMESTAMP}","v":2},"id":1,"jsonrpc":"2.0","method":"tools/call",` +
  `"params":{"arguments":{"a":7.0,"b":1e-07}}}`;

/** The wire text a Python peer sends: the signature spliced into the envelope it signed. */
async function pythonWire(): Promise<{ text: string; signingInput: string }> {
  const unsigned = `{${BODY},"_pqc":{${ENVELOPE}}}`;
  const signingInput = canonicalJson(parseLossless(unsigned));
  const signature = toHex(await python.sign(sha3_256(utf8(signingInput)), MESSAGE_CONTEXT));
  return { text: `{${BODY},"_pqc":{${ENVELOPE},"signature":"${signature}"}}`, signingInput };
}

const options = { peer: python.toPeer(), now: VECTOR_TIME };

test('the signing input is what CPython prints: 7.0 and 1e-07 kept', async () => {
  const { signingInput, text } = await pythonWire();
  expect(signingInput).toBe(EXPECTED_SIGNING_INPUT);
  expect(text.startsWith('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"a":7.0,"b":1e-07}},"_pqc":{')).toBe(
    true,
  );
});

test('the Python message verifies from its text (string and bytes)', async () => {
  const { text, signingInput } = await pythonWire();
  for (const form of [text, utf8(text)]) {
    const result = await MessageSigner.verifyMessage(form, options);
    expect(result).toMatchObject({
      valid: true,
      reason: null,
      profile: 2,
      signerDid: python.did,
      nonce: NONCE,
      sessionId: SESSION,
      digest: sha3_256Hex(signingInput),
    });
    // Handed to the application as plain JS values.
    expect(result.message).toEqual({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { arguments: { a: 7, b: 1e-7 } } });
  }
});

test('the same message after JSON.parse fails with invalid_signature (7.0 became 7)', async () => {
  const { text } = await pythonWire();
  const parsed = JSON.parse(text) as { params: { arguments: { a: number } } };
  expect(Object.is(parsed.params.arguments.a, 7)).toBe(true);
  expect(MessageSigner.canonicalize(parsed)).toContain('"a":7,');
  const result = await MessageSigner.verifyMessage(parsed, options);
  expect(result).toMatchObject({ valid: false, reason: 'invalid_signature', digest: null, message: null });
});

test('1e-07 alone survives JSON.parse: JS 1e-7 is canonicalized as Python prints it', async () => {
  // Only the integral float breaks the object path; a message without it verifies either way.
  const body = '"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{"b":1e-07,"c":2.5}}';
  const unsigned = `{${body},"_pqc":{${ENVELOPE}}}`;
  const signature = toHex(await python.sign(sha3_256(utf8(canonicalJson(parseLossless(unsigned)))), MESSAGE_CONTEXT));
  const text = `{${body},"_pqc":{${ENVELOPE},"signature":"${signature}"}}`;
  expect((await MessageSigner.verifyMessage(text, options)).valid).toBe(true);
  expect((await MessageSigner.verifyMessage(JSON.parse(text) as object, options)).valid).toBe(true);
});

test('signMessage of text keeps 7.0 in its output and verifies', async () => {
  const signer = new MessageSigner(python);
  const input = `{${BODY}}`;
  const signed = await signer.signMessage(input, { sessionId: SESSION, now: VECTOR_TIME });
  expect(signed.text).toContain('"arguments":{"a":7.0,"b":1e-07}');
  expect(signed.text.startsWith(`{${BODY},"_pqc":{"v":2,`)).toBe(true);
  const result = await MessageSigner.verifyMessage(signed.text, options);
  expect(result).toMatchObject({ valid: true, digest: signed.digest });
  // The signed digest is over the lexemes as written.
  const unsigned: Record<string, unknown> = { ...signed.envelope };
  delete unsigned.signature;
  const expectedInput = canonicalJson(parseLossless(`{${BODY},"_pqc":${JSON.stringify(unsigned)}}`));
  expect(expectedInput).toContain('"a":7.0');
  expect(signed.digest).toBe(sha3_256Hex(expectedInput));
  // Its parsed object has lost the lexeme, and with it the signature.
  expect((await MessageSigner.verifyMessage(signed.message, options)).reason).toBe('invalid_signature');
});

test('signMessage of an object signs what it writes (7 stays 7) and verifies both ways', async () => {
  const signed = await new MessageSigner(python).signMessage(
    { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { arguments: { a: 7.0, b: 1e-7 } } },
    { sessionId: SESSION, now: VECTOR_TIME },
  );
  expect(signed.text).toContain('"arguments":{"a":7,"b":1e-7}');
  expect((await MessageSigner.verifyMessage(signed.text, options)).valid).toBe(true);
  expect((await MessageSigner.verifyMessage(signed.message, options)).valid).toBe(true);
});
