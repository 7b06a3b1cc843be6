import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failure } from '../../../helpers/failure.js';
import { MARKETING_KEY } from '../../../../src/workers/figma-mcp/fake/fixtures/index.js';
import { rig, type Rig } from './setup.js';

let r: Rig;
beforeAll(async () => {
  r = await rig({ cache: { version_ttl: '10s' } });
});
afterAll(() => r.close());
beforeEach(() => {
  r.fake.setMode({ kind: 'normal' });
  r.core.client.clearCache();
  r.fake.requests.reset();
});

const call = (ms = 10_000) => ({ signal: new AbortController().signal, deadline: Date.now() + ms });

describe('FigmaClient against the fake', () => {
  it('serves a repeated call from the cache and shares identical concurrent calls', async () => {
    await r.core.client.getFileNodes(MARKETING_KEY, ['1:1'], {}, call());
    const first = r.fake.requests.total;
    expect(first).toBe(1); // cold: the nodes answer carries the version, no meta call
    await r.core.client.getFileNodes(MARKETING_KEY, ['1:1'], {}, call());
    expect(r.fake.requests.total).toBe(first);
    r.core.client.clearCache();
    r.fake.requests.reset();
    await Promise.all(
      Array.from({ length: 5 }, () => r.core.client.getFileNodes(MARKETING_KEY, ['2:1'], {}, call())),
    );
    expect(r.fake.requests.count('file_nodes')).toBe(1);
    expect(r.fake.requests.count('file_meta')).toBe(0);
  });

  it('refetches once the file version changes', async () => {
    const short = await rig({ cache: { version_ttl: '1ms' } });
    try {
      await short.core.client.getFileNodes(MARKETING_KEY, ['1:1'], { depth: 1 }, call());
      await new Promise((res) => setTimeout(res, 5));
      await short.core.client.getFileNodes(MARKETING_KEY, ['1:1'], { depth: 1 }, call());
      expect(short.fake.requests.count('file_nodes')).toBe(1);
      short.fake.bumpVersion(MARKETING_KEY);
      await new Promise((res) => setTimeout(res, 5));
      const res = await short.core.client.getFileNodes(MARKETING_KEY, ['1:1'], { depth: 1 }, call());
      expect(short.fake.requests.count('file_nodes')).toBe(2);
      expect(res.version).toBe('4402918812');
    } finally {
      await short.close();
    }
  });

  it('implements depth from each node, null for unknown ids, geometry only when asked', async () => {
    const res = await r.core.client.getFileNodes(MARKETING_KEY, ['1:1', '404:404'], { depth: 1 }, call());
    expect(res.nodes['404:404']).toBeNull();
    const doc = res.nodes['1:1']!.document as { children: { children?: unknown }[] };
    expect(doc.children.length).toBe(5);
    expect(doc.children.every((c) => c.children === undefined)).toBe(true);
    const file = await r.core.client.getFile(MARKETING_KEY, { depth: 1 }, call());
    expect(file.document.children.map((c) => (c as { children?: unknown }).children)).toEqual([
      undefined,
      undefined,
    ]);
    const plain = JSON.stringify(await r.core.client.getFileNodes(MARKETING_KEY, ['1:1'], {}, call()));
    expect(plain).not.toContain('fillGeometry');
    const geo = JSON.stringify(
      await r.core.client.getFileNodes(MARKETING_KEY, ['1:1'], { geometry: true }, call()),
    );
    expect(geo).toContain('fillGeometry');
  });

  it('batches many ids and halves a batch Figma calls too large', async () => {
    const batched = await rig({ max_ids_per_request: 4 });
    try {
      const ids = ['1:1', '1:2', '1:3', '1:4', '1:5', '1:6', '1:7', '1:8', '1:9', '1:10'];
      const res = await batched.core.client.getFileNodes(MARKETING_KEY, ids, { depth: 1 }, call());
      expect(Object.keys(res.nodes)).toHaveLength(10);
      expect(batched.fake.requests.count('file_nodes')).toBe(3);
      batched.core.client.clearCache();
      batched.fake.requests.reset();
      batched.fake.setMode({ kind: 'too_large', maxIds: 2 });
      const split = await batched.core.client.getFileNodes(MARKETING_KEY, ids, { depth: 1 }, call());
      expect(Object.keys(split.nodes)).toHaveLength(10);
      expect(batched.fake.requests.log.filter((e) => e.status === 400).length).toBeGreaterThan(0);
    } finally {
      await batched.close();
    }
  });

  it('waits out a 429 whose Retry-After fits the deadline', async () => {
    r.fake.setMode({ kind: 'rate_limit', retryAfter: 1 }, { times: 1, match: '/nodes' });
    const t0 = Date.now();
    await r.core.client.getFileNodes(MARKETING_KEY, ['1:1'], {}, call());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(r.fake.requests.count('file_nodes')).toBe(2);
  });

  it('answers a structured retryable error when Retry-After does not fit the deadline', async () => {
    r.fake.setMode({ kind: 'rate_limit', retryAfter: 60, planTier: 'enterprise', limitType: 'high' });
    const e = await failure(r.core.client.getTeamProjects(r.fake.teamId, call(5_000)));
    expect(e.code).toBe('figma_rate_limited');
    expect(e.retryable).toBe(true);
    expect(e.details).toMatchObject({
      retryAfter: 60,
      planTier: 'enterprise',
      limitType: 'high',
      tier: 'tier2',
    });
  });

  it('retries 5xx and network errors with backoff, and gives up as figma_upstream', async () => {
    r.fake.setMode({ kind: 'server_error' }, { times: 2, match: '/projects' });
    await r.core.client.getTeamProjects(r.fake.teamId, call());
    expect(r.fake.requests.count('team_projects')).toBe(3);
    r.fake.setMode({ kind: 'network_error' }, { times: 1, match: '/projects' });
    r.core.client.clearCache();
    await r.core.client.getTeamProjects(r.fake.teamId, call());
    r.core.client.clearCache();
    r.fake.setMode({ kind: 'server_error' }, { match: '/projects' });
    const e = await failure(r.core.client.getTeamProjects(r.fake.teamId, call()));
    expect(e.code).toBe('figma_upstream');
  });

  it('maps 403, 404 and a bad token without retrying and without leaking the token', async () => {
    r.fake.setMode({ kind: 'forbidden' }, { times: 1 });
    expect((await failure(r.core.client.getProjectFiles('101', call()))).code).toBe('figma_forbidden');
    expect(r.fake.requests.total).toBe(1);
    expect((await failure(r.core.client.getProjectFiles('999', call()))).code).toBe('figma_not_found');
    const bad = await rig({ api_token: 'figd_wrong-token-value-1234' });
    try {
      const e = await failure(bad.core.client.getTeamProjects(bad.fake.teamId, call()));
      expect(e.code).toBe('figma_auth');
      expect(JSON.stringify({ m: e.message, d: e.details })).not.toContain('figd_wrong-token-value-1234');
      expect(JSON.stringify(bad.core.client.snapshot())).not.toContain('figd_wrong');
    } finally {
      await bad.close();
    }
  });

  it('treats the Enterprise-only variables 403 as an answer, in the {error, status, message} shape', async () => {
    const v = await r.core.client.getLocalVariables(MARKETING_KEY, call());
    expect(v).toMatchObject({ available: false, code: 'figma_forbidden' });
  });

  it('says figma_not_configured without a token', async () => {
    const none = await rig({ api_token: undefined });
    try {
      expect((await failure(none.core.client.getTeamProjects('1', call()))).code).toBe(
        'figma_not_configured',
      );
    } finally {
      await none.close();
    }
  });

  it('spends the local tier budget and refuses a wait past the deadline', async () => {
    const slow = await rig({ rate_limits: { tier2: { per_minute: 60, burst: 1 } } });
    try {
      await slow.core.client.getProjectFiles('101', { ...call(), deadline: Date.now() + 10_000 });
      const e = await failure(
        slow.core.client.getProjectFiles('102', { ...call(), deadline: Date.now() + 200 }),
      );
      expect(e.code).toBe('figma_rate_limited');
      expect(e.details).toMatchObject({ limitType: 'local', tier: 'tier2' });
    } finally {
      await slow.close();
    }
  });
});
