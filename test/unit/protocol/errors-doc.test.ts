import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../../src/protocol/errors.js';

const DOC = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

interface Row {
  code: string;
  http: number;
  retryable: string;
}

function rows(): Row[] {
  const out: Row[] = [];
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    const m = /^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|/.exec(line);
    if (m) out.push({ code: m[1]!, http: Number(m[2]), retryable: m[3]! });
  }
  return out;
}

describe('docs/errors.md documents exactly the codes in ERROR_CODES', () => {
  const documented = rows();

  it('every code in the table has a row', () => {
    const missing = Object.keys(ERROR_CODES).filter((code) => !documented.some((r) => r.code === code));
    expect(missing, `add a row to docs/errors.md for: ${missing.join(', ')}`).toEqual([]);
  });

  it('every row names a real code, once', () => {
    const unknown = documented.filter((r) => !Object.hasOwn(ERROR_CODES, r.code)).map((r) => r.code);
    expect(unknown, 'rows for codes that are not in src/protocol/errors.ts').toEqual([]);
    const seen = new Set<string>();
    const dupes = documented
      .filter((r) => (seen.has(r.code) ? true : (seen.add(r.code), false)))
      .map((r) => r.code);
    expect(dupes).toEqual([]);
  });

  it('HTTP status and retryable columns agree with the table', () => {
    const wrong = documented
      .filter((r) => Object.hasOwn(ERROR_CODES, r.code))
      .filter((r) => {
        const def = ERROR_CODES[r.code as keyof typeof ERROR_CODES];
        return def.http !== r.http || (def.retryable ? 'yes' : 'no') !== r.retryable;
      })
      .map((r) => r.code);
    expect(wrong).toEqual([]);
  });
});
