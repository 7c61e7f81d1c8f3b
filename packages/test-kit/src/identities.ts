/** Fixed-seed identities for tests: never random, so that a failure reproduces. */
import { AgentIdentity, type Algorithm } from '@pqc-mcp/core';

/** The identity whose 32-byte seed is `byte` repeated. */
export function seededIdentity(byte: number, algorithm: Algorithm = 'ML-DSA-65', name = `agent-${byte}`): AgentIdentity {
  return AgentIdentity.fromSeed(new Uint8Array(32).fill(byte), { algorithm, name });
}
