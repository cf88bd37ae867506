// Every chart: dependencies vendored, `helm lint --strict`, rendered with its defaults and with
// its ci-values.yaml (every option on), each manifest validated against the Kubernetes schemas
// (kubernetes-models), and the house rules checked: probes on the ops port, resources, a
// non-root read-only container, and no secret rendered in clear.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
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
        // A Job's container runs to completion: no probes.
        if (m.kind !== 'Job') {
          expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
          expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
        }
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

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };

/** A pod's Kafka TLS/SASL env and the CA volume it mounts (global.kafka). */
function kafkaSecurityOf(pod: { containers: unknown[]; volumes?: unknown[] }) {
  const c = pod.containers[0] as { env: EnvVar[]; volumeMounts?: { name: string; mountPath: string }[] };
  return {
    env: c.env.filter((e) => /^KAFKA_(SSL|SASL)/.test(e.name)),
    mount: c.volumeMounts?.find((m) => m.name === 'kafka-ca'),
    volume: (pod.volumes as { name: string }[] | undefined)?.find((v) => v.name === 'kafka-ca'),
  };
}

describe('tapi chart: the spool survives the pod', () => {
  const dir = path.join(CHARTS_DIR, 'tapi');
  type Volume = { name: string; persistentVolumeClaim?: { claimName: string }; emptyDir?: unknown };
  type PodSpec = {
    containers: (Container & { args?: string[]; volumeMounts?: { name: string; mountPath: string }[] })[];
    volumes?: Volume[];
  };
  type Workload = Manifest & {
    spec: {
      serviceName?: string;
      persistentVolumeClaimRetentionPolicy?: { whenScaled?: string; whenDeleted?: string };
      volumeClaimTemplates?: {
        metadata: { name: string };
        spec: { storageClassName?: string; resources: { requests: { storage: string } } };
      }[];
      template: { spec: PodSpec };
    };
  };
  let rendered: { defaults: Manifest[]; ci: Manifest[] };
  beforeAll(async () => {
    await helm('deps', dir);
    // "defaults": only the required value set.
    const minimal = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chart-tapi-')), 'values.yaml');
    fs.writeFileSync(minimal, 'global:\n  kafkaBrokers: kafka-0.kafka:9092\n');
    rendered = {
      defaults: parse(await helm('template', dir, minimal)),
      ci: parse(await helm('template', dir, path.join(dir, 'ci-values.yaml'))),
    };
    fs.rmSync(path.dirname(minimal), { recursive: true, force: true });
  });
  const envOf = (pod: PodSpec, name: string) =>
    (pod.containers[0].env as { name: string; value?: string }[]).find((e) => e.name === name)?.value;

  it('runs tapi as a StatefulSet with a retained volume claim per pod, scaled by the HPA', () => {
    for (const [values, manifests] of Object.entries(rendered)) {
      expect([values, manifests.filter((m) => m.kind === 'Deployment')]).toEqual([values, []]);
      const sets = manifests.filter((m): m is Workload => m.kind === 'StatefulSet');
      expect(sets).toHaveLength(1);
      const set = sets[0];
      expect(set.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenScaled: 'Retain', whenDeleted: 'Retain' });
      const claim = set.spec.volumeClaimTemplates?.find((t) => t.metadata.name === 'spool');
      expect(claim).toBeDefined();
      const pod = set.spec.template.spec;
      expect(pod.volumes?.find((v) => v.name === 'spool')).toBeUndefined(); // the claim, not an emptyDir
      const mount = pod.containers[0].volumeMounts?.find((v) => v.name === 'spool');
      expect(envOf(pod, 'SPOOL_DIR')?.startsWith(`${mount?.mountPath}/`)).toBe(true);
      const headless = manifests.find((m) => m.kind === 'Service' && m.metadata.name === set.spec.serviceName) as
        (Manifest & { spec: { clusterIP?: string } }) | undefined;
      expect(headless?.spec.clusterIP).toBe('None');
      const hpa = manifests.find((m) => m.kind === 'HorizontalPodAutoscaler') as
        (Manifest & { spec: { scaleTargetRef: { kind: string; name: string } } }) | undefined;
      expect(hpa?.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: set.metadata.name });
    }
    const claimOf = (manifests: Manifest[]) =>
      (manifests.find((m) => m.kind === 'StatefulSet') as Workload).spec.volumeClaimTemplates![0].spec;
    expect(claimOf(rendered.defaults)).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } });
    expect(claimOf(rendered.ci)).toEqual({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'fast-ssd',
      resources: { requests: { storage: '4Gi' } },
    });
  });

  it('renders a spool-drain Job per listed leftover claim, none by default', () => {
    expect(rendered.defaults.filter((m) => m.kind === 'Job')).toEqual([]);
    const set = rendered.ci.find((m) => m.kind === 'StatefulSet') as Workload;
    const jobs = rendered.ci.filter((m) => m.kind === 'Job') as unknown as Workload[];
    expect(jobs.map((j) => j.spec.template.spec.volumes?.[0].persistentVolumeClaim?.claimName)).toEqual([
      'spool-cdp-tapi-5',
      'spool-cdp-tapi-6',
    ]);
    for (const job of jobs) {
      const pod = job.spec.template.spec;
      const args = pod.containers[0].args ?? [];
      expect(args.slice(0, 5)).toEqual(['node', 'dist/cli.js', 'spool', 'drain', '--dir']);
      // Same directory and Kafka as the pods.
      const tapiPod = set.spec.template.spec;
      expect(args[5]).toBe(envOf(tapiPod, 'SPOOL_DIR'));
      expect(envOf(pod, 'SPOOL_DIR')).toBe(envOf(tapiPod, 'SPOOL_DIR'));
      expect(envOf(pod, 'KAFKA_BROKERS')).toBe(envOf(tapiPod, 'KAFKA_BROKERS'));
      expect(envOf(pod, 'KAFKA_SECONDARY_BROKERS')).toBe(envOf(tapiPod, 'KAFKA_SECONDARY_BROKERS'));
      expect(kafkaSecurityOf(pod)).toEqual(kafkaSecurityOf(tapiPod));
      expect(pod.containers[0].volumeMounts).toEqual(
        tapiPod.containers[0].volumeMounts!.filter((v) => v.name === 'spool' || v.name === 'kafka-ca'),
      );
    }
  });
});

describe('cdp chart: cdp-topics runs as a hook Job before install and upgrade', () => {
  const dir = path.join(CHARTS_DIR, 'cdp');
  type JobManifest = Manifest & {
    metadata: { annotations?: Record<string, string> };
    spec: {
      template: {
        spec: {
          restartPolicy: string;
          containers: (Omit<Container, 'env'> & { image: string; args: string[]; env: { name: string; value?: string }[] })[];
        };
      };
    };
  };
  let job: JobManifest | undefined;
  let all: Manifest[];
  beforeAll(async () => {
    await helm('deps', dir);
    // helm-java's template leaves hooks out of its output: render a copy of the chart whose Job
    // is not marked as a hook (the hook annotation itself is checked on the template below).
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-cdp-'));
    fs.cpSync(dir, copy, { recursive: true });
    const template = path.join(copy, 'templates', 'topics-job.yaml');
    fs.writeFileSync(template, fs.readFileSync(template, 'utf8').replace(/^\s*helm\.sh\/hook: .*\n/m, ''));
    all = parse(await helm('template', copy, path.join(dir, 'ci-values.yaml')));
    fs.rmSync(copy, { recursive: true, force: true });
    job = all.find((m) => m.kind === 'Job' && m.metadata.name === 'cdp-cdp-topics') as JobManifest | undefined;
  });

  it('is a pre-install,pre-upgrade hook, replaced on each run', () => {
    const template = fs.readFileSync(path.join(dir, 'templates', 'topics-job.yaml'), 'utf8');
    expect(template).toMatch(/^\s*helm\.sh\/hook: pre-install,pre-upgrade$/m);
    expect(job?.metadata.annotations?.['helm.sh/hook-delete-policy']).toBe('before-hook-creation,hook-succeeded');
  });

  it("runs cdp-topics create from a service image with the services' Kafka, prefix and dedup window", () => {
    expect(job).toBeDefined();
    const result = validate([job!]);
    expect([result.errors, result.unknown, result.checked]).toEqual([[], [], 1]);
    const pod = job!.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    const [c] = pod.containers;
    expect(c.image).toBe('ghcr.io/cdp/dedup:0.1.0');
    // The dedup image holds libs/kafka's dist at this path (Dockerfile: pnpm deploy into /app).
    expect(c.args).toEqual(['node', 'node_modules/@cdp/kafka/dist/topics-cli.js', 'create']);
    expect(c.resources?.requests).toBeDefined();
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    const env = Object.fromEntries(c.env.filter((e) => !/^KAFKA_(SSL|SASL)/.test(e.name)).map((e) => [e.name, e.value]));
    const dedup = all.find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'cdp-dedup') as unknown as JobManifest;
    const dedupEnv = Object.fromEntries(dedup.spec.template.spec.containers[0].env.map((e) => [e.name, e.value]));
    expect(env).toEqual({
      KAFKA_BROKERS: dedupEnv.KAFKA_BROKERS,
      CDP_TOPIC_PREFIX: dedupEnv.CDP_TOPIC_PREFIX,
      DEDUP_WINDOW_MS: dedupEnv.DEDUP_WINDOW_MS,
      KAFKA_TOPIC_PARTITIONS: '12',
      KAFKA_REPLICATION_FACTOR: '3',
      KAFKA_MIN_INSYNC_REPLICAS: '2',
      LOG_LEVEL: 'info',
    });
    expect(dedupEnv.DEDUP_WINDOW_MS).toBe('2419200000');
  });

  it('gives every workload that reads Kafka and the Job the same Kafka TLS and SASL settings, the password from its Secret', () => {
    const workloads = all.filter((m) => ['Deployment', 'StatefulSet', 'Job'].includes(m.kind));
    expect(workloads.map((m) => m.metadata.name).sort()).toEqual([
      'cdp-archiver',
      'cdp-cdp-topics',
      'cdp-dedup',
      'cdp-director',
      'cdp-identity',
      'cdp-jobdb-manager',
      'cdp-tapi',
      'cdp-tapi-drain-5',
      'cdp-transform',
    ]);
    // jobdb-manager talks to Consul and MySQL only.
    const pods = workloads
      .filter((m) => m.metadata.name !== 'cdp-jobdb-manager')
      .map((m) => [m.metadata.name, kafkaSecurityOf(podSpecOf(m)!)] as const);
    for (const [name, security] of pods) {
      expect([name, security]).toEqual([
        name,
        {
          env: [
            { name: 'KAFKA_SSL', value: 'true' },
            { name: 'KAFKA_SSL_CA_FILE', value: '/etc/cdp/kafka-ca/ca.crt' },
            { name: 'KAFKA_SASL_MECHANISM', value: 'scram-sha-512' },
            { name: 'KAFKA_SASL_USERNAME', value: 'cdp' },
            { name: 'KAFKA_SASL_PASSWORD', valueFrom: { secretKeyRef: { name: 'cdp-kafka-sasl', key: 'password' } } },
          ],
          mount: { name: 'kafka-ca', mountPath: '/etc/cdp/kafka-ca', readOnly: true },
          volume: { name: 'kafka-ca', secret: { secretName: 'cdp-kafka-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        },
      ]);
    }
  });
});

describe('director chart: MySQL TLS', () => {
  it('sets MYSQL_SSL and mounts the CA Secret at the path MYSQL_SSL_CA_FILE names', async () => {
    const dir = path.join(CHARTS_DIR, 'director');
    await helm('deps', dir);
    const deployment = parse(await helm('template', dir, path.join(dir, 'ci-values.yaml'))).find((m) => m.kind === 'Deployment')!;
    const pod = podSpecOf(deployment) as unknown as {
      containers: { env: EnvVar[]; volumeMounts: { name: string; mountPath: string }[] }[];
      volumes: { name: string }[];
    };
    const [c] = pod.containers;
    expect(c.env.filter((e) => e.name.startsWith('MYSQL_SSL'))).toEqual([
      { name: 'MYSQL_SSL', value: 'true' },
      { name: 'MYSQL_SSL_CA_FILE', value: '/etc/cdp/mysql-ca/ca.crt' },
    ]);
    expect(c.volumeMounts.find((m) => m.name === 'mysql-ca')).toEqual({ name: 'mysql-ca', mountPath: '/etc/cdp/mysql-ca', readOnly: true });
    expect(pod.volumes.find((v) => v.name === 'mysql-ca')).toEqual({
      name: 'mysql-ca',
      secret: { secretName: 'rds-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
  });
});

describe('transform chart', () => {
  const dir = path.join(CHARTS_DIR, 'transform');
  beforeAll(async () => {
    await helm('deps', dir);
  });

  it("finds the release's directors through their headless Service, with the RPC token from the director's Secret", async () => {
    const deployment = parse(await helm('template', dir)).find((m) => m.kind === 'Deployment')!;
    const [c] = (podSpecOf(deployment) as unknown as { containers: { env: EnvVar[] }[] }).containers;
    expect(c.env.find((e) => e.name === 'DIRECTOR_RPC_SERVICE')).toEqual({ name: 'DIRECTOR_RPC_SERVICE', value: 'cdp-director:8080' });
    expect(c.env.find((e) => e.name === 'DIRECTOR_RPC_TOKEN')).toEqual({
      name: 'DIRECTOR_RPC_TOKEN',
      valueFrom: { secretKeyRef: { name: 'cdp-director-rpc', key: 'token' } },
    });
    // The admin API: its port on the Service, its token from a Secret.
    expect(c.env.find((e) => e.name === 'ADMIN_TOKEN')).toEqual({
      name: 'ADMIN_TOKEN',
      valueFrom: { secretKeyRef: { name: 'cdp-admin', key: 'token' } },
    });
    const service = parse(await helm('template', dir)).find((m) => m.kind === 'Service') as unknown as {
      spec: { ports: { name: string; port: number }[] };
    };
    expect(service.spec.ports.find((p) => p.name === 'admin')?.port).toBe(8081);
  });

  it('refuses an HPA allowed more pods than cdp.identified has partitions', async () => {
    const values = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chart-transform-')), 'values.yaml');
    fs.writeFileSync(values, 'transform:\n  identifiedPartitions: 6\nautoscaling:\n  maxReplicas: 8\n');
    await expect(helm('template', dir, values)).rejects.toThrow(
      /autoscaling.maxReplicas \(8\) must not exceed transform.identifiedPartitions \(6\)/,
    );
    fs.rmSync(path.dirname(values), { recursive: true, force: true });
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
