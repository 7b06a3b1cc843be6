import { describe, expect, it } from 'vitest';
import { prettyLine, resolveLogFormat } from '../../../../src/workers/common/logger.js';

describe('log format', () => {
  it('auto is pretty on a terminal and JSON elsewhere; explicit choices win', () => {
    expect(resolveLogFormat(undefined, true)).toBe('pretty');
    expect(resolveLogFormat(undefined, false)).toBe('json');
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('PRETTY', false)).toBe('pretty');
    expect(() => resolveLogFormat('xml', true)).toThrow(/log format "xml" is not one of auto, pretty, json/);
  });

  it('one line per event: who, the message and the key fields only, each cut short', () => {
    const line = prettyLine({
      name: 'fleet-worker-python-sandbox',
      msg: 'sandbox isolation chosen',
      isolation: 'strong',
      workerId: 'python-sandbox-vm-3001',
      selfTest: { chain: ['bwrap', 'cgroups'], details: 'x'.repeat(600) },
      err: new Error('first line\nsecond line'),
      code: 'y'.repeat(200),
    });
    expect(line).toMatch(/^python-sandbox: sandbox isolation chosen {2}/);
    expect(line).toContain('workerId=python-sandbox-vm-3001');
    expect(line).toContain('isolation=strong');
    expect(line).toContain('err=first line second line');
    expect(line).not.toContain('selfTest');
    expect(line).not.toContain('\n');
    expect(line).toMatch(/code=y{79}…/);
    expect(line.length).toBeLessThan(300);
    expect(prettyLine({ msg: 'manager listening', managerId: 'm1' })).toBe('manager: manager listening');
  });
});
