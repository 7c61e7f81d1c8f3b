/** The ML-DSA parameter sets of FIPS 204, named exactly as on the wire (docs/PROTOCOL.md §1). */
export type Algorithm = 'ML-DSA-44' | 'ML-DSA-65' | 'ML-DSA-87';

/** Every algorithm, strongest last. */
export const ALGORITHMS: readonly Algorithm[] = Object.freeze(['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87']);

/** The algorithm used when none is given. */
export const DEFAULT_ALGORITHM: Algorithm = 'ML-DSA-65';

/** Raw FIPS 204 public-key length in bytes, per algorithm. */
export const PUBLIC_KEY_BYTES: Readonly<Record<Algorithm, number>> = Object.freeze({
  'ML-DSA-44': 1312,
  'ML-DSA-65': 1952,
  'ML-DSA-87': 2592,
});

/** Raw FIPS 204 signature length in bytes, per algorithm. */
export const SIGNATURE_BYTES: Readonly<Record<Algorithm, number>> = Object.freeze({
  'ML-DSA-44': 2420,
  'ML-DSA-65': 3309,
  'ML-DSA-87': 4627,
});

/** Length of a key-generation seed in bytes. */
export const SEED_BYTES = 32;

/** True when `value` names a supported algorithm. */
export function isAlgorithm(value: unknown): value is Algorithm {
  return value === 'ML-DSA-44' || value === 'ML-DSA-65' || value === 'ML-DSA-87';
}
