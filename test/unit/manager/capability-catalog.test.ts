import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { CapabilityCatalog } from '../../../src/manager/catalog/capability-catalog.js';
import type { CapabilityDescriptor } from '../../../src/protocol/messages.js';
import { FleetError } from '../../../src/protocol/errors.js';
import { describeHandler } from '../../../src/workers/common/describe.js';
import { sleepHandler } from '../../../src/workers/echo/handlers/sleep.js';
import { PythonExecutionPayloadSchema } from '../../../src/workers/python-sandbox/handlers/python-execution.js';
import { CodeAnalysisPayloadSchema } from '../../../src/workers/python-sandbox/handlers/code-analysis.js';
import { FileOperationsPayloadSchema } from '../../../src/workers/python-sandbox/handlers/file-operations.js';
import { PackageInstallPayloadSchema } from '../../../src/workers/python-sandbox/handlers/package-install.js';
import { FormFillingPayloadSchema } from '../../../src/workers/browser/handlers/form-filling.js';
import { PdfPayloadSchema } from '../../../src/workers/browser/handlers/pdf-generation.js';
import { ScrapingPayloadSchema } from '../../../src/workers/browser/handlers/scraping.js';
import { ScreenshotPayloadSchema } from '../../../src/workers/browser/handlers/screenshot.js';
import { TestingPayloadSchema } from '../../../src/workers/browser/handlers/testing.js';
import { AutomationPayloadSchema } from '../../../src/workers/browser/handlers/web-automation.js';

const described = (capability: string, payloadSchema: Record<string, unknown>): CapabilityDescriptor => ({
  capability,
  description: `${capability} things`,
  payloadSchema,
});

function refusal(fn: () => void): FleetError {
  try {
    fn();
  } catch (err) {
    return err as FleetError;
  }
  throw new Error('expected a refusal');
}

describe('capability self-description', () => {
  it('is generated from the zod schema (input side: defaults are optional)', () => {
    const d = describeHandler(sleepHandler);
    expect(d.payloadSchema).toMatchObject({ type: 'object', required: ['ms'] });
    expect(d.resultSchema).toMatchObject({ properties: { sleptMs: { type: 'number' } } });
    expect(d).toMatchObject({ idempotent: true, readOnly: true });
    const py = z.toJSONSchema(PythonExecutionPayloadSchema, { io: 'input', unrepresentable: 'any' });
    expect(py).not.toHaveProperty('required');
  });
});

describe('CapabilityCatalog', () => {
  const sleep = describeHandler(sleepHandler);

  it('validates payloads, naming the JSON path and the rule', () => {
    const c = new CapabilityCatalog();
    expect(c.admit('w1', 'echo', ['sleep'], [sleep])).toEqual([]);
    c.validate('sleep', { ms: 5 });
    const e = refusal(() => c.validate('sleep', { ms: 5, progressEvery: -1 }));
    expect(e.code).toBe('invalid_payload');
    expect(e.details).toMatchObject({ path: 'progressEvery', rule: 'exclusiveMinimum' });
    expect(refusal(() => c.validate('sleep', {})).details).toMatchObject({ path: 'ms', rule: 'required' });
    const nested = new CapabilityCatalog();
    nested.admit(
      'w',
      't',
      ['n'],
      [
        described(
          'n',
          z.toJSONSchema(z.object({ items: z.array(z.object({ w: z.number().max(3) })) }), {
            io: 'input',
          }),
        ),
      ],
    );
    expect(refusal(() => nested.validate('n', { items: [{ w: 1 }, { w: 9 }] })).message).toMatch(
      /at items\[1\]\.w: must be <= 3 \(rule: maximum\)/,
    );
  });

  it('leaves capabilities of peers that describe nothing unchecked', () => {
    const c = new CapabilityCatalog();
    c.admit('old', 'echo', ['sleep'], undefined);
    c.validate('sleep', { anything: true });
    expect(c.entries()).toMatchObject([{ capability: 'sleep', workers: 1, description: '' }]);
  });

  it('suggests the closest capability and lists the known ones', () => {
    const e = CapabilityCatalog.unknownCapability('pyton-execution', ['echo', 'python-execution']);
    expect(e.code).toBe('unknown_capability');
    expect(e.message).toMatch(/did you mean "python-execution"/);
    expect(e.details).toMatchObject({ known: ['echo', 'python-execution'], suggestion: 'python-execution' });
    expect(CapabilityCatalog.unknownCapability('zzzzzzzz', ['echo']).details).not.toHaveProperty(
      'suggestion',
    );
  });

  it('refuses a hostile schema: huge, deep, not compiling, reaching out or backtracking', () => {
    const c = new CapabilityCatalog();
    const huge = {
      type: 'object',
      description: 'x'.repeat(8000),
      properties: Object.fromEntries(
        Array.from({ length: 40 }, (_, i) => [`p${i}`, { description: 'y'.repeat(8000) }]),
      ),
    };
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 10_000; i++) deep = { items: deep };
    const refused = c.admit(
      'evil',
      'evil',
      ['huge', 'deep', 'bad', 'remote', 'redos', 'fine'],
      [
        described('huge', huge),
        described('deep', deep),
        described('bad', { type: 'object', properties: { a: { type: 'no-such-type' } } }),
        described('remote', { $ref: 'https://attacker.example/schema.json' }),
        described('redos', { type: 'object', properties: { a: { type: 'string', pattern: '^(a+)+$' } } }),
        { ...sleep, capability: 'fine' },
      ],
    );
    expect(refused.map((r) => r.capability).sort()).toEqual(['bad', 'deep', 'huge', 'redos', 'remote']);
    for (const r of refused) expect(r.error.code).toBe('capability_refused');
    // The refused capabilities are not offered by this worker; the good one is.
    expect(c.entries().map((e) => e.capability)).toEqual(['fine']);
  });

  it('bounds all the schemas of one hello together', () => {
    const c = new CapabilityCatalog();
    const big = (i: number) =>
      described(`c${i}`, {
        type: 'object',
        description: 'z'.repeat(7000),
        properties: Object.fromEntries(
          Array.from({ length: 8 }, (_, j) => [`p${j}`, { description: 'q'.repeat(7000) }]),
        ),
      });
    const names = Array.from({ length: 30 }, (_, i) => `c${i}`);
    const refused = c.admit(
      'w',
      't',
      names,
      names.map((_, i) => big(i)),
    );
    expect(refused.length).toBeGreaterThan(10);
    expect(refused[0]!.error.message).toMatch(/over the 1048576-byte budget/);
  });

  it("admits every schema Fleet's own handlers generate (the guards refuse none of them)", () => {
    const schemas: Record<string, z.ZodType> = {
      'python-execution': PythonExecutionPayloadSchema,
      'code-analysis': CodeAnalysisPayloadSchema,
      'file-operations': FileOperationsPayloadSchema,
      'package-install': PackageInstallPayloadSchema,
      'form-filling': FormFillingPayloadSchema,
      'pdf-generation': PdfPayloadSchema,
      scraping: ScrapingPayloadSchema,
      screenshot: ScreenshotPayloadSchema,
      testing: TestingPayloadSchema,
      'web-automation': AutomationPayloadSchema,
    };
    const c = new CapabilityCatalog();
    const describes = Object.entries(schemas).map(([capability, schema]) =>
      described(capability, z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as never),
    );
    expect(c.admit('w', 'all', Object.keys(schemas), describes).map((r) => r.error.message)).toEqual([]);
    c.validate('screenshot', { html: '<p>hi</p>' });
    expect(
      refusal(() => c.validate('screenshot', { html: '<p>hi</p>', options: { fullPage: 'yes' } })).details,
    ).toMatchObject({
      path: 'options.fullPage',
    });
  });

  it('announces changes only when the offer changes', () => {
    const c = new CapabilityCatalog();
    c.admit('w1', 'echo', ['sleep'], [sleep]);
    expect(c.takeChange()).toMatchObject({ added: ['sleep'], removed: [] });
    c.admit('w2', 'echo', ['sleep'], [sleep]);
    expect(c.takeChange()).toBeUndefined();
    c.setLive('w1', false);
    c.forget('w2');
    expect(c.takeChange()).toMatchObject({ removed: ['sleep'] });
    // The last description is remembered for tasks queued while no worker is there.
    expect(refusal(() => c.validate('sleep', {})).code).toBe('invalid_payload');
  });

  describe('fleet-wide (records other managers published)', () => {
    const sleep = describeHandler(sleepHandler);
    const remote = (workerId: string, status = 'online', describes = [sleep]) => ({
      workerId,
      workerType: 'echo',
      capabilities: ['sleep'],
      status,
      describes,
    });

    it('lists, checks and counts a remote worker; drops it when its record goes', () => {
      const c = new CapabilityCatalog();
      expect(c.syncRemote([remote('r1')])).toEqual({ refused: [], changed: true });
      expect(c.entry('sleep')).toMatchObject({ workers: 1, workerTypes: ['echo'] });
      expect(c.remoteOffers()).toEqual([
        expect.objectContaining({ workerType: 'echo', capabilities: ['sleep'] }),
      ]);
      expect(refusal(() => c.validate('sleep', { ms: 'x' })).code).toBe('invalid_payload');
      expect(c.takeChange()).toMatchObject({ added: ['sleep'] });
      // An unchanged record is not checked again and changes nothing.
      expect(c.syncRemote([remote('r1')]).changed).toBe(false);
      // An offline record is not offered, then gone altogether.
      expect(c.syncRemote([remote('r1', 'offline')]).changed).toBe(true);
      expect(c.entries()).toEqual([]);
      expect(c.syncRemote([]).changed).toBe(true);
      expect(c.remoteOffers()).toEqual([]);
      expect(c.takeChange()).toMatchObject({ removed: ['sleep'] });
    });

    it('a worker connected here wins over its record, and forgetting it leaves the records alone', () => {
      const c = new CapabilityCatalog();
      c.admit('w1', 'echo', ['sleep'], [sleep]);
      c.syncRemote([{ ...remote('w1'), describes: [] }, remote('r2')]);
      // w1 keeps its own (local) description; r2 is counted beside it.
      expect(c.entry('sleep')).toMatchObject({ workers: 2 });
      expect(c.published('w1')?.describes).toEqual([sleep]);
      expect(c.published('r2')).toBeUndefined(); // only this manager's own workers are published by it
      c.forget('r2');
      expect(c.entry('sleep')).toMatchObject({ workers: 2 });
      c.forget('w1');
      expect(c.entry('sleep')).toMatchObject({ workers: 1 });
    });

    it('refuses a hostile schema in a record as it would in a hello', () => {
      const c = new CapabilityCatalog();
      const evil = described('sleep', {
        type: 'object',
        properties: { a: { type: 'string', pattern: '(a|aa)+$' } },
      });
      const { refused } = c.syncRemote([remote('r1', 'online', [evil])]);
      expect(refused.map((r) => r.error.code)).toEqual(['capability_refused']);
      expect(c.entries()).toEqual([]);
    });
  });
});
