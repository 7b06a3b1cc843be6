/**
 * The CI check for deploy/: there is no Docker engine or Kubernetes cluster here, so the files are
 * parsed, cross-checked against each other and against the config schema (ports, /health, the spec's
 * Chromium flags, memory targets), and the Dockerfiles are linted with dockerfile-utils.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
import { ManagerSchema, WORKER_DEFAULTS } from '../../../src/config/schema.js';
import { parseBrowserOptions } from '../../../src/workers/browser/options.js';

// Parsed YAML has no static type; the assertions below are what check its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const DOCKER = join(DEPLOY, 'docker');

const MANAGER_PORT = ManagerSchema.parse({}).port;
const WORKERS = {
  'python-sandbox': WORKER_DEFAULTS.python_sandbox.port,
  'figma-mcp': WORKER_DEFAULTS.figma_mcp.port,
  'browser-worker': WORKER_DEFAULTS.browser_worker.port,
} as const;
type WorkerName = keyof typeof WORKERS;
const WORKER_NAMES = Object.keys(WORKERS) as WorkerName[];
const SPEC_PORTS: Record<string, number> = { manager: MANAGER_PORT, ...WORKERS };

const CPU_FLAGS = [
  '--disable-gpu',
  '--disable-software-rasterizer',
  '--disable-dev-shm-usage',
  '--no-sandbox',
  '--disable-setuid-sandbox',
  '--disable-accelerated-2d-canvas',
  '--disable-accelerated-jpeg-decoding',
  '--disable-accelerated-mjpeg-decode',
  '--disable-accelerated-video-decode',
  '--memory-pressure-off',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];
const GPU_FLAGS = [
  '--use-gl=angle',
  '--use-angle=gl-egl',
  '--enable-gpu-rasterization',
  '--ignore-gpu-blocklist',
];
const MANAGER_URL = `http://manager:${MANAGER_PORT}`;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

function loadDocs(path: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Obj[] = [];
  for (const doc of list) {
    const problems = [...doc.errors, ...doc.warnings].map((e) => e.message);
    expect(problems, relative(ROOT, path)).toEqual([]);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Kubernetes quantity → bytes (only the suffixes these manifests may use). */
function bytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(q);
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

const yamlFiles = walk(DEPLOY).filter((p) => /\.ya?ml$/.test(p));
// Fleet config files (fleet-*.yaml) feed kustomize's configMapGenerator; they are not Kubernetes objects.
const k8sFiles = walk(K8S).filter((p) => /\.ya?ml$/.test(p) && !/(^|\/)fleet-[^/]*$/.test(p));
const baseFiles = readdirSync(K8S)
  .filter((n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml')
  .map((n) => join(K8S, n));
const base = baseFiles.flatMap((p) => loadDocs(p).map((doc) => ({ file: relative(ROOT, p), doc })));
const objects = base.map((b) => b.doc);
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const named = (kind: string, name: string) => byKind(kind).find((o) => o.metadata?.name === name);
const workloads = [...byKind('Deployment'), ...byKind('StatefulSet')];
const fleetDeployments = byKind('Deployment').filter((d) =>
  (d.spec.template.spec.containers as Obj[]).some((c) => String(c.image).startsWith('fleet-')),
);
const deploymentFor = (name: string) => {
  const d = named('Deployment', name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return d;
};
const labelsMatch = (selector: Obj | undefined, labels: Obj | undefined) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('deploy/: every YAML file parses', () => {
  it('finds the files the deployment needs', () => {
    const rel = yamlFiles.map((p) => relative(DEPLOY, p)).sort();
    for (const f of [
      'compose.yaml',
      'compose.gpu.yaml',
      'fleet.compose.yaml',
      'docker/fleet.container.yaml',
      'k8s/kustomization.yaml',
      'k8s/monitoring/prometheus-adapter.yaml',
      'k8s/overlays/gpu/kustomization.yaml',
    ]) {
      expect(rel).toContain(f);
    }
  });

  it.each(yamlFiles.map((p) => [relative(ROOT, p), p]))('%s is valid YAML', (_name, path) => {
    expect(loadDocs(path).length).toBeGreaterThan(0);
  });

  it('rejects a broken file (the check can fail)', () => {
    const docs = parseAllDocuments('a: [1, 2\nb: {');
    const list = Array.isArray(docs) ? docs : [docs];
    expect(list.some((d) => d.errors.length > 0)).toBe(true);
  });
});

describe('deploy/k8s', () => {
  it('every object has apiVersion, kind and metadata.name', () => {
    for (const path of k8sFiles) {
      for (const doc of loadDocs(path)) {
        const where = `${relative(ROOT, path)}: ${doc.kind}/${doc.metadata?.name}`;
        expect(typeof doc.apiVersion, where).toBe('string');
        expect(typeof doc.kind, where).toBe('string');
        if (doc.kind !== 'Kustomization') expect(typeof doc.metadata?.name, where).toBe('string');
      }
    }
  });

  it('kustomization lists exactly the base manifests, and the overlay patches a base object', () => {
    const kust = loadDocs(join(K8S, 'kustomization.yaml'))[0]!;
    expect([...(kust.resources as string[])].sort()).toEqual(baseFiles.map((p) => relative(K8S, p)).sort());
    const images = (kust.images as Obj[]).map((i) => i.name);
    const used = workloads.flatMap((w) =>
      (w.spec.template.spec.containers as Obj[]).map((c) => c.image as string),
    );
    for (const image of used.filter((i) => i.startsWith('fleet-'))) expect(images).toContain(image);

    const overlayDir = join(K8S, 'overlays/gpu');
    const overlay = loadDocs(join(overlayDir, 'kustomization.yaml'))[0]!;
    for (const r of overlay.resources as string[]) expect(existsSync(resolve(overlayDir, r))).toBe(true);
    const generated = new Map<string, string>();
    for (const gen of overlay.configMapGenerator as Obj[]) {
      for (const f of gen.files as string[]) {
        const [key, file] = f.split('=') as [string, string];
        // kustomize only reads files inside the overlay (its default load restrictor).
        expect(resolve(overlayDir, file).startsWith(overlayDir + '/'), f).toBe(true);
        generated.set(`${gen.name}/${key}`, readFileSync(join(overlayDir, file), 'utf8'));
      }
    }
    const [p] = overlay.patches as Obj[];
    const patch = loadDocs(join(overlayDir, p!.path as string))[0]!;
    expect(named(patch.kind as string, patch.metadata.name as string)).toBeDefined();
    const pod = patch.spec.template.spec as Obj;
    const env = new Map((pod.containers[0].env as Obj[]).map((e) => [e.name as string, e.value as string]));
    expect(env.get('CHROME_FLAGS')?.split(/\s+/)).toEqual(GPU_FLAGS);
    const mount = (pod.containers[0].volumeMounts as Obj[])[0]!;
    expect(env.get('FLEET_CONFIG')).toBe(`${mount.mountPath}/fleet.yaml`);
    const volume = (pod.volumes as Obj[]).find((v) => v.name === mount.name)!;
    const gpuConfig = generated.get(`${volume.configMap.name}/fleet.yaml`);
    expect(gpuConfig).toBeDefined();
    expectGpuBrowserConfig(gpuConfig!);
  });

  it('a Deployment for the managers and for each worker type, with the spec ports', () => {
    expect(deploymentFor('manager').spec.replicas).toBeGreaterThanOrEqual(2);
    for (const [name, port] of Object.entries(SPEC_PORTS)) {
      const d = deploymentFor(name);
      const ports = (d.spec.template.spec.containers as Obj[]).flatMap((c) =>
        (c.ports as Obj[]).map((p) => p.containerPort),
      );
      expect(ports, name).toEqual([port]);
    }
    expect(fleetDeployments.map((d) => d.metadata.name).sort()).toEqual(Object.keys(SPEC_PORTS).sort());
  });

  it('selectors match their pod labels', () => {
    for (const w of workloads) {
      expect(labelsMatch(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(
        true,
      );
    }
    for (const svc of byKind('Service')) {
      const pods = workloads.filter((w) => labelsMatch(svc.spec.selector, w.spec.template.metadata.labels));
      expect(pods.length, `Service ${svc.metadata.name} selects nothing`).toBeGreaterThan(0);
      const containerPorts = pods.flatMap((w) =>
        (w.spec.template.spec.containers as Obj[]).flatMap((c) => c.ports as Obj[]),
      );
      for (const p of svc.spec.ports as Obj[]) {
        const target = p.targetPort ?? p.port;
        const ok = containerPorts.some((cp) => cp.name === target || cp.containerPort === target);
        expect(ok, `Service ${svc.metadata.name} targets ${target}`).toBe(true);
      }
    }
  });

  it('every Fleet container probes /health on its own port (startup, readiness, liveness)', () => {
    for (const d of fleetDeployments) {
      for (const c of d.spec.template.spec.containers as Obj[]) {
        const portNames = (c.ports as Obj[]).map((p) => p.name);
        for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
          const where = `${d.metadata.name}.${probe}`;
          expect(c[probe]?.httpGet?.path, where).toBe('/health');
          expect(portNames, where).toContain(c[probe].httpGet.port);
        }
      }
    }
  });

  it('memory: requests and limits set, every worker under 1 GB (the spec target)', () => {
    for (const w of workloads) {
      for (const c of w.spec.template.spec.containers as Obj[]) {
        const where = `${w.metadata.name}/${c.name}`;
        const limit = bytes(c.resources?.limits?.memory);
        const request = bytes(c.resources?.requests?.memory);
        expect(request, where).toBeLessThanOrEqual(limit);
        expect(c.resources?.requests?.cpu, where).toBeDefined();
        expect(limit, where).toBeLessThan(1e9);
      }
    }
  });

  it('workers announce themselves to the manager Service and are found through headless Services', () => {
    const managerSvc = named('Service', 'manager');
    expect((managerSvc?.spec.ports as Obj[]).map((p) => p.port)).toEqual([MANAGER_PORT]);
    const cfgMap = named('ConfigMap', 'fleet-config')!;
    const config = parseConfig(parseYaml(cfgMap.data['fleet.yaml'] as string));
    expect(config.manager.store).toBe('redis');

    for (const name of WORKER_NAMES) {
      const d = deploymentFor(name);
      const c = d.spec.template.spec.containers[0] as Obj;
      expect(c.args).toEqual(['worker', name, '--manager', MANAGER_URL, '--advertise-host', '$(POD_IP)']);
      const headless = byKind('Service').find(
        (s) => s.spec.clusterIP === 'None' && labelsMatch(s.spec.selector, d.spec.template.metadata.labels),
      );
      expect(headless, `headless Service for ${name}`).toBeDefined();
      expect(config.manager.dns).toContain(`${headless!.metadata.name}:${WORKERS[name]}`);
      const env = new Map((c.env as Obj[]).map((e) => [e.name, e]));
      expect(env.get('FLEET_CONFIG')?.value).toBe('/etc/fleet/fleet.yaml');
      expect(env.get('POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(
        Object.values(WORKER_DEFAULTS).find((w) => w.name === name)!.timeout,
      );
    }
    for (const section of [config.python_sandbox, config.figma_mcp, config.browser_worker]) {
      expect(section.host).toBe('0.0.0.0');
      expect(section.autoscale.enabled).toBe(false);
    }
  });

  it('one HPA per worker type on fleet_worker_type_utilization, and a PDB for every Deployment', () => {
    const hpas = byKind('HorizontalPodAutoscaler');
    expect(hpas).toHaveLength(WORKER_NAMES.length);
    for (const name of WORKER_NAMES) {
      const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === name);
      expect(hpa, `HPA for ${name}`).toBeDefined();
      expect(hpa!.apiVersion).toBe('autoscaling/v2');
      expect(hpa!.spec.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(hpa!.spec.minReplicas).toBeLessThanOrEqual(hpa!.spec.maxReplicas);
      const [metric] = hpa!.spec.metrics as Obj[];
      expect(metric).toMatchObject({
        type: 'External',
        external: {
          metric: { name: 'fleet_worker_type_utilization', selector: { matchLabels: { worker_type: name } } },
          target: { type: 'Value' },
        },
      });
      expect(hpa!.spec.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThan(0);
    }
    for (const d of byKind('Deployment')) {
      const pdb = byKind('PodDisruptionBudget').find((p) =>
        labelsMatch(p.spec.selector.matchLabels, d.spec.template.metadata.labels),
      );
      expect(pdb, `PDB for ${d.metadata.name}`).toBeDefined();
    }
  });

  it('the Prometheus adapter rule serves the metric the HPAs ask for', () => {
    const [cm] = loadDocs(join(K8S, 'monitoring/prometheus-adapter.yaml'));
    const rules = parseYaml(cm!.data['config.yaml'] as string) as Obj;
    const rule = (rules.externalRules as Obj[])[0]!;
    expect(rule.seriesQuery).toContain('fleet_worker_type_utilization');
    expect(rule.name.as).toBe('fleet_worker_type_utilization');
    expect(rule.metricsQuery).toMatch(/by \(worker_type\)/);
  });

  it('pods run as non-root without privilege escalation; only python-sandbox lifts seccomp/AppArmor', () => {
    for (const d of fleetDeployments) {
      const pod = d.spec.template.spec as Obj;
      expect(pod.securityContext.runAsNonRoot, d.metadata.name).toBe(true);
      for (const c of pod.containers as Obj[]) {
        expect(c.securityContext.allowPrivilegeEscalation, d.metadata.name).toBe(false);
        expect(c.securityContext.capabilities.drop, d.metadata.name).toEqual(['ALL']);
        expect(c.securityContext.capabilities.add, d.metadata.name).toBeUndefined();
        expect(c.securityContext.privileged, d.metadata.name).toBeUndefined();
      }
      const unconfined = pod.securityContext.seccompProfile.type === 'Unconfined';
      expect(unconfined, d.metadata.name).toBe(d.metadata.name === 'python-sandbox');
    }
    // Pod Security "baseline" rejects Unconfined seccomp/AppArmor and an unmasked /proc.
    const ns = named('Namespace', 'fleet')!;
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
    expect(ns.metadata.labels['pod-security.kubernetes.io/warn']).toBe('baseline');
    const py = deploymentFor('python-sandbox').spec.template.spec as Obj;
    expect(py.hostUsers).toBe(false);
    expect(py.containers[0].securityContext.procMount).toBe('Unmasked');
  });
});

describe('deploy/compose.yaml', () => {
  const compose = loadDocs(join(DEPLOY, 'compose.yaml'))[0]!;
  const services = compose.services as Record<string, Obj>;

  it('has Redis, two managers and the three workers', () => {
    expect(Object.keys(services).sort()).toEqual(['redis', 'manager-1', 'manager-2', ...WORKER_NAMES].sort());
    const managers = ['manager-1', 'manager-2'].map((n) => services[n]!);
    for (const m of managers) {
      expect(m.environment.FLEET_STORE).toBe('redis');
      expect(m.environment.FLEET_REDIS_URL).toBe('redis://redis:6379');
      expect(m.networks.default.aliases).toContain('manager');
      expect(m.depends_on.redis.condition).toBe('service_healthy');
    }
  });

  it('publishes the spec ports and starts every worker with --manager', () => {
    for (const name of WORKER_NAMES) {
      const svc = services[name]!;
      expect(svc.ports, name).toEqual([`${WORKERS[name]}:${WORKERS[name]}`]);
      expect(svc.command, name).toEqual(['worker', name, '--manager', MANAGER_URL, '--advertise-host', name]);
    }
    expect(services['manager-1']!.ports).toEqual([`${MANAGER_PORT}:${MANAGER_PORT}`]);
  });

  it('uses the spec environment variables', () => {
    const env = (name: string) => services[name]!.environment as Obj;
    expect(env('python-sandbox').WORKER_PYTHON_PORT).toMatch(/3001/);
    expect(env('figma-mcp').WORKER_FIGMA_PORT).toMatch(/3002/);
    expect(env('browser-worker').WORKER_BROWSER_PORT).toMatch(/3003/);
    expect(env('figma-mcp').FIGMA_API_TOKEN).toContain('FIGMA_API_TOKEN');
    expect(env('figma-mcp').FIGMA_TEAM_ID).toContain('FIGMA_TEAM_ID');
    for (const v of [
      'BROWSER_POOL_SIZE',
      'BROWSER_MEMORY_LIMIT',
      'BROWSER_AUTO_RESTART',
      'BROWSER_SOFTWARE_RENDERING',
      'BROWSER_CPU_OPTIMIZED',
    ]) {
      expect(env('browser-worker')[v], v).toBeDefined();
    }
    for (const name of ['manager-1', ...WORKER_NAMES])
      expect(env(name).WORKER_HEALTH_CHECK_INTERVAL).toBeDefined();
  });

  it('every build references an existing Dockerfile, and every bind mount an existing file', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (svc.build) {
        const context = resolve(DEPLOY, svc.build.context as string);
        const dockerfile = join(context, svc.build.dockerfile as string);
        expect(existsSync(dockerfile), `${name}: ${dockerfile}`).toBe(true);
      } else {
        expect(svc.image, name).toMatch(/^redis:/);
      }
      for (const v of (svc.volumes ?? []) as string[]) {
        const source = v.split(':')[0]!;
        if (source.startsWith('.'))
          expect(existsSync(resolve(DEPLOY, source)), `${name}: ${source}`).toBe(true);
        else expect(Object.keys(compose.volumes as Obj), `${name}: volume ${source}`).toContain(source);
      }
    }
  });

  it('memory limits stay under 1 GB per worker; only python-sandbox lifts seccomp, with no capability added', () => {
    for (const name of WORKER_NAMES) {
      const svc = services[name]!;
      expect(bytes(String(svc.mem_limit).replace(/m$/, 'Mi')), name).toBeLessThan(1e9);
      expect(svc.cap_drop, name).toEqual(['ALL']);
      expect(svc.cap_add, name).toBeUndefined();
      expect(svc.privileged, name).toBeUndefined();
      const opts = (svc.security_opt ?? []) as string[];
      expect(opts, name).toContain('no-new-privileges:true');
      expect(opts.includes('seccomp=unconfined'), name).toBe(name === 'python-sandbox');
    }
  });

  it('the config file it mounts is a valid Fleet config naming every worker for DNS discovery', () => {
    const config = parseConfig(parseYaml(readFileSync(join(DEPLOY, 'fleet.compose.yaml'), 'utf8')));
    expect(config.manager.dns.sort()).toEqual(WORKER_NAMES.map((n) => `${n}:${WORKERS[n]}`).sort());
  });

  it('the GPU overlay switches the browser worker to the spec GPU flags', () => {
    const gpu = loadDocs(join(DEPLOY, 'compose.gpu.yaml'))[0]!;
    expect(Object.keys(gpu.services as Obj)).toEqual(['browser-worker']);
    const svc = (gpu.services as Obj)['browser-worker'] as Obj;
    expect(String(svc.environment.CHROME_FLAGS).split(/\s+/)).toEqual(GPU_FLAGS);
    expect(svc.build.args.GPU_DRIVERS).toBe('true');
    const [source, target] = (svc.volumes as string[])[0]!.split(':') as [string, string];
    expect(svc.environment.FLEET_CONFIG).toBe(target);
    expectGpuBrowserConfig(readFileSync(resolve(DEPLOY, source), 'utf8'));
  });

  it('without the overlay the browser worker resolves to the spec CPU-only flags', () => {
    const config = parseConfig(parseYaml(readFileSync(join(DEPLOY, 'fleet.compose.yaml'), 'utf8')));
    const flags = parseBrowserOptions(config.browser_worker.browser_config).flags;
    for (const flag of CPU_FLAGS) expect(flags).toContain(flag);
    for (const flag of GPU_FLAGS) expect(flags).not.toContain(flag);
  });
});

/** A browser-worker config for GPU hosts: valid, and Chromium gets the GPU flags instead of --disable-gpu. */
function expectGpuBrowserConfig(text: string): void {
  const config = parseConfig(parseYaml(text));
  expect(config.browser_worker.host).toBe('0.0.0.0');
  const flags = parseBrowserOptions(config.browser_worker.browser_config).flags;
  for (const flag of GPU_FLAGS) expect(flags).toContain(flag);
  expect(flags).not.toContain('--disable-gpu');
}

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions of a Dockerfile, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (!buf && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (buf && line.trim().startsWith('#')) return;
    if (!buf) start = i + 1;
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' ';
      return;
    }
    buf += line;
    const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(buf)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ').trim(), line: start });
    buf = '';
  });
  return out;
}

/** The ignore file: `**` then `!path` / `!dir/**` exceptions; true when `path` is sent to the build. */
function included(ignoreLines: string[], path: string): boolean {
  let inc = true;
  for (const raw of ignoreLines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = negate ? line.slice(1) : line;
    const re = new RegExp(
      '^' +
        pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*/g, '@@')
          .replace(/\*/g, '[^/]*')
          .replace(/@@/g, '.*') +
        '$',
    );
    const hit = re.test(path) || (pattern.endsWith('/**') && path === pattern.slice(0, -3));
    if (hit) inc = negate;
  }
  return inc;
}

describe('deploy/docker Dockerfiles', () => {
  const files = readdirSync(DOCKER).filter((n) => n.endsWith('.Dockerfile'));
  const expected: Record<string, { cmd: string[]; port: number }> = {
    'manager.Dockerfile': { cmd: ['manager'], port: MANAGER_PORT },
    ...Object.fromEntries(
      WORKER_NAMES.map((n) => [`${n}.Dockerfile`, { cmd: ['worker', n], port: WORKERS[n] }]),
    ),
  };

  it('one per service', () => {
    expect(files.sort()).toEqual(Object.keys(expected).sort());
  });

  it('the linter catches a bad Dockerfile (the check can fail)', () => {
    const problems = lintDockerfile('FROM node:22\nHEALTHCHECK --intervl=3s CMD true\nfrom x\n');
    expect(problems.length).toBeGreaterThanOrEqual(2);
  });

  describe.each(files)('%s', (file) => {
    const text = readFileSync(join(DOCKER, file), 'utf8');
    const ins = instructions(text);
    const stages = ins.reduce<Instruction[][]>((acc, i) => {
      if (i.keyword === 'FROM') acc.push([]);
      acc.at(-1)?.push(i);
      return acc;
    }, []);
    const final = stages.at(-1) ?? [];
    const want = expected[file]!;

    it('passes dockerfile-utils with no error or warning', () => {
      const diagnostics = lintDockerfile(text).map(
        (d) =>
          `line ${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`,
      );
      expect(diagnostics).toEqual([]);
    });

    it('builds on a current Node LTS slim image with npm ci, build, prune', () => {
      const arg = ins.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_IMAGE='));
      expect(arg?.args).toMatch(/^NODE_IMAGE=node:(22|24)-(bookworm|trixie)-slim$/);
      for (const stage of stages) expect(stage[0]!.args).toMatch(/^\$\{NODE_IMAGE\}/);
      const runs = ins.filter((i) => i.keyword === 'RUN').map((i) => i.args);
      expect(runs.some((r) => r.includes('npm ci'))).toBe(true);
      expect(runs.some((r) => r.includes('npm run build') && r.includes('npm prune --omit=dev'))).toBe(true);
    });

    it('runs as a non-root user, exposes its spec port, health-checks /health, starts the right command', () => {
      const users = final.filter((i) => i.keyword === 'USER').map((i) => i.args);
      expect(users.length).toBeGreaterThan(0);
      expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
      expect(final.filter((i) => i.keyword === 'EXPOSE').map((i) => i.args)).toEqual([String(want.port)]);
      const hc = final.find((i) => i.keyword === 'HEALTHCHECK');
      expect(hc?.args).toContain('healthcheck.mjs');
      const env = final
        .filter((i) => i.keyword === 'ENV')
        .map((i) => i.args)
        .join(' ');
      expect(env).toContain(`FLEET_HEALTH_URL=http://127.0.0.1:${want.port}/health`);
      const cmd = final.find((i) => i.keyword === 'CMD');
      expect(JSON.parse(cmd!.args)).toEqual(want.cmd);
      const entry = final.find((i) => i.keyword === 'ENTRYPOINT');
      expect(JSON.parse(entry!.args)).toEqual(['/usr/bin/tini', '--', 'node', '/app/dist/cli/main.js']);
    });

    it('copies only files that exist and that its .dockerignore sends', () => {
      const ignorePath = join(DOCKER, `${file}.dockerignore`);
      expect(existsSync(ignorePath)).toBe(true);
      const ignore = readFileSync(ignorePath, 'utf8').split('\n');
      const copies = ins.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='));
      expect(copies.length).toBeGreaterThan(0);
      for (const c of copies) {
        const parts = c.args.split(' ').filter((p) => !p.startsWith('--'));
        for (const src of parts.slice(0, -1)) {
          expect(existsSync(join(ROOT, src)), `${file}: COPY ${src}`).toBe(true);
          const probe = statSync(join(ROOT, src)).isDirectory() ? `${src}/x.ts` : src;
          expect(included(ignore, probe), `${file}: ${src} is excluded by the .dockerignore`).toBe(true);
        }
      }
      expect(included(ignore, 'node_modules/zod/index.js')).toBe(false);
      expect(included(ignore, '.git/config')).toBe(false);
    });
  });

  it('browser image: Debian chromium and fonts, the spec CPU flags, a documented GPU switch', () => {
    const text = readFileSync(join(DOCKER, 'browser-worker.Dockerfile'), 'utf8');
    const ins = instructions(text);
    const install = ins
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join(' ');
    expect(install).toMatch(/apt-get install[^&]* chromium/);
    expect(install).toMatch(/fonts-/);
    expect(install).not.toContain('google-chrome');
    const arg = ins.find((i) => i.keyword === 'ARG' && i.args.startsWith('CHROME_FLAGS='))!;
    expect(JSON.parse(arg.args.slice('CHROME_FLAGS='.length)).split(' ')).toEqual(CPU_FLAGS);
    expect(ins.some((i) => i.keyword === 'ENV' && i.args.includes('CHROME_FLAGS=${CHROME_FLAGS}'))).toBe(
      true,
    );
    expect(install).toMatch(/chromium-headless-shell/);
    const env = ins
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toContain('BROWSER_EXECUTABLE_PATH=/usr/lib/chromium/chromium-headless-shell');
    expect(text).toContain(GPU_FLAGS.join(' '));
  });

  it('python image: bubblewrap and Python from Debian, non-root, workspace owned by the worker user', () => {
    const ins = instructions(readFileSync(join(DOCKER, 'python-sandbox.Dockerfile'), 'utf8'));
    const install = ins
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join(' ');
    for (const pkg of ['bubblewrap', 'python3', 'python3-pip', '${PYTHON_DEBIAN_PACKAGES}'])
      expect(install).toContain(pkg);
    const pkgs = ins.find((i) => i.keyword === 'ARG' && i.args.startsWith('PYTHON_DEBIAN_PACKAGES='))!;
    expect(pkgs.args).toContain('python3-pyflakes');
    expect(install).toContain('chown node:node /workspace');
    expect(ins.filter((i) => i.keyword === 'USER').at(-1)?.args).toBe('node');
  });

  it('the config baked into the images is valid and listens on all interfaces', () => {
    const config = parseConfig(parseYaml(readFileSync(join(DOCKER, 'fleet.container.yaml'), 'utf8')));
    expect(config.manager.host).toBe('0.0.0.0');
    for (const s of [config.python_sandbox, config.figma_mcp, config.browser_worker, config.echo]) {
      expect(s.host).toBe('0.0.0.0');
    }
  });
});

describe('deploy/docker/healthcheck.mjs', () => {
  const script = join(DOCKER, 'healthcheck.mjs');

  async function runAgainst(url: string): Promise<{ code: number | null; stderr: string }> {
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, [script], {
        env: { ...process.env, FLEET_HEALTH_URL: url, FLEET_HEALTH_TIMEOUT_MS: '2000' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', fail);
      child.on('exit', (code) => done({ code, stderr }));
    });
  }

  it('exits 0 on 200, 1 on 503 and 1 when nothing listens', async () => {
    let status = 200;
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/health' ? status : 404;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      expect((await runAgainst(`http://127.0.0.1:${port}/health`)).code).toBe(0);
      status = 503;
      const draining = await runAgainst(`http://127.0.0.1:${port}/health`);
      expect(draining.code).toBe(1);
      expect(draining.stderr).toContain('503');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const refused = await runAgainst(`http://127.0.0.1:${port}/health`);
    expect(refused.code).toBe(1);
  });
});
