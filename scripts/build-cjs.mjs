// Marks the CommonJS build of @pgwarden/pool as CommonJS. The package itself is "type": "module", so
// without this file Node would load dist/cjs/*.js as ES modules. Run after
// `tsc -p packages/pool/tsconfig.cjs.json` (see the "build" script).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'packages', 'pool', 'dist', 'cjs');
await mkdir(dir, { recursive: true });
await writeFile(path.join(dir, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);
