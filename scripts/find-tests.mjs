// The test files scripts/test.mjs and scripts/test-compat.mjs run: every packages/*/src/**/*.test.ts,
// as paths relative to the repository root with "/" separators, sorted.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function findTests() {
  const found = [];
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(full);
    }
  };
  const packages = path.join(root, 'packages');
  for (const pkg of readdirSync(packages, { withFileTypes: true })) {
    if (pkg.isDirectory()) walk(path.join(packages, pkg.name, 'src'));
  }
  return found.map((f) => path.relative(root, f).split(path.sep).join('/')).sort();
}

/** The files among `files` whose path contains one of `filters` (all of them when there is none). */
export function selectTests(files, filters) {
  return filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
}
