import { statSync, readFileSync, writeFileSync } from 'node:fs';
import { AgentIdentity } from '@pqc-mcp/core';
import { expectCleanError, runCli, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('keygen then identity', () => {
  test('keygen writes a 0600 identity file and prints its DID; identity shows it without the seed', async () => {
    const file = tmp.path('alice.json');
    const made = await runCli(['keygen', '--name', 'alice', '--out', file]);
    expect(made.code).toBe(0);
    const did = made.stdout.trim();
    expect(did).toMatch(/^did:pqaid:[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const jwk = JSON.parse(readFileSync(file, 'utf8')) as { priv: string; pub: string; did: string; alg: string; name: string };
    expect(jwk).toMatchObject({ kty: 'AKP', alg: 'ML-DSA-65', did, name: 'alice' });
    const loaded = await AgentIdentity.load(file);
    expect(loaded.did).toBe(did);

    const shown = await runCli(['identity', file]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(did);
    expect(shown.stdout).toContain('ML-DSA-65');
    expect(shown.stdout).toContain(jwk.pub);
    expect(shown.stdout + shown.stderr).not.toContain(jwk.priv);
    expect(shown.stdout).not.toContain('"priv"');

    const json = await runCli(['identity', file, '--json']);
    expect(json.code).toBe(0);
    const info = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(info).toEqual({ did, algorithm: 'ML-DSA-65', name: 'alice', private: true, public_jwk: { kty: 'AKP', alg: 'ML-DSA-65', pub: jwk.pub, did, name: 'alice' } });

    // The public JWK is itself a public identity file.
    const pub = tmp.path('alice.pub.json');
    writeFileSync(pub, JSON.stringify(info.public_jwk));
    const shownPub = await runCli(['identity', pub]);
    expect(shownPub.code).toBe(0);
    expect(shownPub.stdout).toContain('public identity');
    expect(shownPub.stdout).toContain(did);
  });

  test('other algorithms; an existing file is never overwritten without --force', async () => {
    const file = tmp.path('bob.json');
    expect((await runCli(['keygen', '--algorithm', 'ML-DSA-44', '--out', file])).code).toBe(0);
    const before = readFileSync(file, 'utf8');
    expect(JSON.parse(before)).toMatchObject({ alg: 'ML-DSA-44', name: 'agent' });

    const refused = await runCli(['keygen', '--out', file]);
    expectCleanError(refused, 2, /already exists.*--force/);
    expect(readFileSync(file, 'utf8')).toBe(before);

    const forced = await runCli(['keygen', '--algorithm', 'ML-DSA-87', '--out', file, '--force']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ alg: 'ML-DSA-87', did: forced.stdout.trim() });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test('identity warns when a private identity file is readable by others', async () => {
    const file = tmp.path('loose.json');
    await AgentIdentity.create('loose').save(file);
    const { chmodSync } = await import('node:fs');
    chmodSync(file, 0o644);
    const shown = await runCli(['identity', file]);
    expect(shown.code).toBe(0);
    expect(shown.stderr).toMatch(/warning: .*mode 0644.*chmod 600/);
  });
});

describe('usage errors: exit 2, one clear line, no stack trace', () => {
  const id = tmp.path('usage-id.json');
  beforeAll(async () => {
    await AgentIdentity.create('usage').save(id);
    writeFileSync(tmp.path('broken.json'), '{"kty":"AKP",');
    writeFileSync(tmp.path('notakey.json'), JSON.stringify({ kty: 'EC', crv: 'P-256' }));
  });

  const cases: [string, () => string[], RegExp][] = [
    ['no command', () => [], /^Usage: pqc-mcp/m],
    ['unknown command', () => ['frobnicate'], /unknown command "frobnicate"/],
    ['unknown option', () => ['keygen', '--out', tmp.path('x.json'), '--bogus'], /Unknown option '--bogus'/],
    ['keygen without --out', () => ['keygen'], /--out is required/],
    ['keygen with a bad algorithm', () => ['keygen', '--algorithm', 'RSA', '--out', tmp.path('y.json')], /--algorithm must be one of/],
    ['keygen into a missing directory', () => ['keygen', '--out', tmp.path('nope/z.json')], /cannot write .*no such file/],
    ['identity without FILE', () => ['identity'], /identity FILE is required/],
    ['identity of a missing file', () => ['identity', tmp.path('missing.json')], /cannot read identity file .*missing\.json: no such file/],
    ['identity of a directory', () => ['identity', tmp.dir], /cannot read identity file .*is a directory/],
    ['identity of broken JSON', () => ['identity', tmp.path('broken.json')], /invalid identity file .*broken\.json/],
    ['identity of a non-ML-DSA key', () => ['identity', tmp.path('notakey.json')], /invalid identity file .*kty must be "AKP"/],
    ['gateway without --upstream', () => ['gateway', '--listen', '127.0.0.1:0', '--identity', id], /give one of --upstream URL or --upstream-command/],
    ['gateway with a bad --listen', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', 'localhost', '--identity', id], /--listen must be HOST:PORT/],
    ['gateway with a bad --upstream', () => ['gateway', '--upstream', 'ftp://x/mcp', '--listen', '127.0.0.1:0', '--identity', id], /--upstream must be an http\(s\) URL/],
    ['gateway with a bad --allow', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', '127.0.0.1:0', '--identity', id, '--allow', 'did:web:x'], /--allow must be a DID/],
    ['gateway with bad --profiles', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', '127.0.0.1:0', '--identity', id, '--profiles', 'v3'], /--profiles takes/],
    ['gateway with a bad --redis', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', '127.0.0.1:0', '--identity', id, '--redis', 'http://x'], /--redis must use the redis: or rediss: scheme/],
    ['gateway with an unwritable --audit', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', '127.0.0.1:0', '--identity', id, '--audit', tmp.path('no/audit.jsonl')], /cannot open audit file/],
    ['gateway with a missing identity', () => ['gateway', '--upstream', 'http://127.0.0.1:1/mcp', '--listen', '127.0.0.1:0', '--identity', tmp.path('none.json')], /cannot read identity file/],
    ['bridge without a pinned server', () => ['bridge', '--server', 'http://127.0.0.1:1/mcp', '--identity', id], /--server-did DID is required.*--trust-on-first-use/],
    ['bridge with both pins', () => ['bridge', '--server', 'http://127.0.0.1:1/mcp', '--identity', id, '--server-did', `did:pqaid:${'a'.repeat(64)}`, '--trust-on-first-use'], /either --server-did or --trust-on-first-use/],
    ['call without TOOL', () => ['call', 'http://127.0.0.1:1/mcp', '--identity', id, '--trust-on-first-use'], /URL and TOOL are required/],
    ['call with JSON-ARGS that are not JSON', () => ['call', 'http://127.0.0.1:1/mcp', 'echo', '{text:', '--identity', id, '--trust-on-first-use'], /JSON-ARGS is not valid JSON/],
    ['call with JSON-ARGS that are not an object', () => ['call', 'http://127.0.0.1:1/mcp', 'echo', '[1]', '--identity', id, '--trust-on-first-use'], /JSON-ARGS must be a JSON object/],
    ['call with a bad --timeout', () => ['call', 'http://127.0.0.1:1/mcp', 'echo', '--identity', id, '--trust-on-first-use', '--timeout', '0'], /--timeout must be a positive number/],
    ['verify of a missing file', () => ['verify', tmp.path('none.txt')], /cannot read message file/],
    ['verify with a bad --peer-did', () => ['verify', '--peer-did', 'bob', tmp.path('none.txt')], /--peer-did must be a DID/],
    ['verify with a short --peer-key', () => ['verify', '--peer-key', 'abcd', tmp.path('none.txt')], /--peer-key: 4 hex characters is not an ML-DSA public key/],
  ];

  test.concurrent.each(cases)('%s', async (_name, args, message) => {
    const result = await runCli(args());
    if (args().length === 0) {
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      return;
    }
    expectCleanError(result, 2, message);
    expect(result.stderr).toMatch(/Run 'pqc-mcp .*--help' for usage\./);
  });

  test('--help for the top level and every command (exit 0, on stdout)', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['keygen', 'identity', 'gateway', 'bridge', 'call', 'verify']) expect(top.stdout).toContain(command);
    expect(top.stdout).toMatch(/Exit codes:/);
    for (const command of ['keygen', 'identity', 'gateway', 'bridge', 'call', 'verify']) {
      const help = await runCli([command, '--help']);
      expect({ command, code: help.code }).toEqual({ command, code: 0 });
      expect(help.stdout).toMatch(new RegExp(`^Usage: pqc-mcp ${command}`));
      expect(help.stdout).toMatch(/Exit codes:/);
    }
    expect((await runCli(['help', 'gateway'])).stdout).toMatch(/^Usage: pqc-mcp gateway/);
    expect((await runCli(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
