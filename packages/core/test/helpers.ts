import { availableBackends } from '../src/index.js';

/** Backends this runtime has, by name. */
export const BACKENDS = availableBackends() as ('noble' | 'node')[];
