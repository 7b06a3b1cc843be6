/**
 * Every capability Fleet's worker kinds offer advertises a result schema (issue 18), and describeHandler
 * renders it as a JSON Schema the catalog admits. That the schemas are *true* (what the handlers really
 * return) is proven against real runs in test/integration/workers/result-schemas.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parseConfig } from '../../../../src/config/load.js';
import { CapabilityCatalog } from '../../../../src/manager/catalog/capability-catalog.js';
import { describeHandler } from '../../../../src/workers/common/describe.js';
import { WORKER_KINDS } from '../../../../src/workers/kinds.js';

const config = parseConfig({});
const ajv = new Ajv2020({ strict: false, validateFormats: false });

describe('result schemas of every worker kind', () => {
  for (const [type, entry] of Object.entries(WORKER_KINDS)) {
    it(`${type}: every handler has a resultSchema, rendered as a JSON Schema the catalog admits`, async () => {
      const create = await entry.load();
      const kind = create(config[entry.section]);
      expect(kind.handlers.length).toBeGreaterThan(0);
      // Every capability the config lets the kind offer has a handler (so none escapes this check).
      for (const c of config[entry.section].capabilities)
        expect(kind.handlers.map((h) => h.capability)).toContain(c);
      const describes = kind.handlers.map((h) => {
        expect(h.resultSchema, `${h.capability} has no resultSchema`).toBeDefined();
        const d = describeHandler(h);
        expect(d.resultSchema, `${h.capability}'s resultSchema did not render`).toBeDefined();
        expect(ajv.validateSchema(d.resultSchema!), `${h.capability}: ${ajv.errorsText()}`).toBe(true);
        return d;
      });
      const refused = new CapabilityCatalog().admit(
        `${type}-1`,
        type,
        describes.map((d) => d.capability),
        describes,
      );
      expect(refused.map((r) => r.error.message)).toEqual([]);
      await kind.stop?.();
    });
  }

  it('a result that is one of several objects is still `type: object` at the top (an MCP outputSchema)', async () => {
    const kind = (await WORKER_KINDS['python-sandbox']!.load())(config.python_sandbox);
    for (const capability of ['python-execution', 'file-operations']) {
      const d = describeHandler(kind.handlers.find((h) => h.capability === capability)!);
      expect(d.resultSchema).toMatchObject({ type: 'object', anyOf: expect.any(Array) });
    }
    await kind.stop?.();
  });

  it('fail and crash never return: their result schema accepts nothing', async () => {
    const kind = (await WORKER_KINDS.echo!.load())(config.echo);
    for (const capability of ['fail', 'crash']) {
      const d = describeHandler(kind.handlers.find((h) => h.capability === capability)!);
      const validate = ajv.compile(d.resultSchema!);
      expect(validate({})).toBe(false);
      expect(validate(null)).toBe(false);
    }
  });
});
