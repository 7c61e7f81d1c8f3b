// Puts the repository's LICENSE into a package while it is packed (prepack: copy, postpack: remove), so that every
// tarball carries it and the repository keeps one copy.
import { copyFileSync, rmSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../LICENSE', import.meta.url));
const action = process.argv[2];
if (action === 'copy') copyFileSync(source, 'LICENSE');
else if (action === 'remove') rmSync('LICENSE', { force: true });
else throw new Error('usage: node scripts/license.mjs copy|remove');
