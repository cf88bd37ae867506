// The umbrella chart (charts/cdp) rendered as `helm install` would run it, hook Jobs included,
// checked against what the services themselves read:
// - every env var a container gets is a variable of that program's config schema (imported from
//   the service, not copied), every variable the schema requires is set, and every literal value
//   passes the schema;
// - no consumer's HorizontalPodAutoscaler (nor dedup's fixed replica count) may exceed the
//   partitions of its input topic, as cdp-topics creates them from the same release's values.
// Rendered with the minimal values of the README, with every service and Job on (ci-values.yaml),
// and with partitions and replicas raised together. ~15 s (one helm dependency update, three renders).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archiverEnv } from '@cdp/archiver/src/config';
import { topicTableEnv, z } from '@cdp/config';
import { dedupEnv } from '@cdp/dedup/src/config';
import { directorEnv } from '@cdp/director/src/config';
import { identityEnv, identityTablesEnv } from '@cdp/identity/src/config';
import { managerEnv } from '@cdp/jobdb-manager/src/config';
import { topicsCliEnv, topicSettings, topicSpecs, type TopicRole } from '@cdp/kafka';
import { pipelineEnv, tapiEnv } from '@cdp/tapi/src/config';
import { helm, REPO_ROOT } from '@cdp/testkit';
import { transformEnv } from '@cdp/transform/src/config';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';

type EnvVar = { name: string; value?: string; valueFrom?: Record<string, unknown> };
type Container = { name: string; env?: EnvVar[]; envFrom?: unknown[]; volumeMounts?: { mountPath: string }[] };
type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    maxReplicas?: number;
    scaleTargetRef?: { kind: string; name: string };
    template?: { spec: { containers: Container[] } };
  };
};

type EnvSchema = {
  shape: Record<string, unknown>;
  safeParse(env: unknown): { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } };
};

/** The program each container runs, by container name: its config schema. */
const SCHEMAS: Record<string, EnvSchema> = {
  tapi: tapiEnv,
  'spool-drain': pipelineEnv, // tapi's `spool drain` command
  dedup: dedupEnv,
  identity: identityEnv,
  tables: z.object(identityTablesEnv), // identity-tables create
  transform: transformEnv,
  director: directorEnv,
  'jobdb-manager': managerEnv,
  archiver: archiverEnv,
  topics: topicsCliEnv, // cdp-topics create
};

/** Read by Node itself, not by a schema. */
const RUNTIME_ENV = new Set(['NODE_OPTIONS']);

/**
 * The Kafka consumers and the topic whose partitions bound their replicas (a group member
 * beyond them gets no partition). The archiver's group also reads cdp.undelivered, but its
 * load is cdp.deduped's.
 */
const CONSUMER_INPUT: Record<string, TopicRole> = { dedup: 'ingest', identity: 'deduped', transform: 'identified', archiver: 'deduped' };
/**
 * Not bound by partitions: tapi only produces (its HPA scales on CPU); a director consumes no
 * topic (its HPA scales on CPU; each holds JobDBs, jobdb-manager provisions one per live
 * director); jobdb-manager runs a fixed pair (one leads).
 */
const NOT_CONSUMERS = new Set(['tapi', 'director', 'jobdb-manager']);

const chartOf = (m: Manifest) => (m.metadata.labels?.['helm.sh/chart'] ?? '?').replace(/-[0-9][^-]*$/, '');
const containersOf = (m: Manifest) => m.spec?.template?.spec.containers ?? [];

/** Problems of one container's env against its program's schema, each naming chart, container and variable. */
function envProblems(m: Manifest, c: Container): string[] {
  const where = `chart ${chartOf(m)}, ${m.kind} ${m.metadata.name}, container ${c.name}`;
  const schema = SCHEMAS[c.name];
  if (!schema) return [`${where}: no config schema known for this container (add it to SCHEMAS)`];
  // Keys from a whole ConfigMap or Secret cannot be checked here.
  if (c.envFrom) return [`${where}: envFrom is not allowed (set each variable by name)`];
  const problems: string[] = [];
  const env = c.env ?? [];
  const seen = new Set<string>();
  for (const e of env) {
    if (seen.has(e.name)) problems.push(`${where}: ${e.name} is set twice`);
    seen.add(e.name);
    if (!(e.name in schema.shape) && !RUNTIME_ENV.has(e.name)) problems.push(`${where}: ${e.name} is not a variable ${c.name} reads`);
  }
  // A value from a Secret, ConfigMap key or the downward API is only known at run time: present,
  // not checked. So is a file under one of the container's mounts (a CA bundle).
  const atRunTime = (e: EnvVar) => e.valueFrom !== undefined || (c.volumeMounts ?? []).some((v) => e.value?.startsWith(`${v.mountPath}/`));
  const values = Object.fromEntries(env.map((e) => [e.name, e.valueFrom ? 'set-at-run-time' : e.value]));
  for (const issue of schema.safeParse(values).error?.issues ?? []) {
    const name = String(issue.path[0] ?? '(env)');
    const e = [...env].reverse().find((v) => v.name === name); // the last one counts
    if (!e) problems.push(`${where}: ${name} is required and not set (${issue.message})`);
    else if (!atRunTime(e)) problems.push(`${where}: ${name}=${JSON.stringify(e.value)} is refused: ${issue.message}`);
  }
  return problems;
}

/** Consumers' replicas (HPA maxReplicas, or dedup's fixed count) beyond their input topic's partitions. */
function partitionProblems(manifests: Manifest[]): string[] {
  const job = manifests.find((m) => m.kind === 'Job' && containersOf(m)[0]?.name === 'topics');
  if (!job) return ['the cdp-topics Job is not rendered: the partition counts are unknown'];
  // The partitions cdp-topics creates, computed by its own code from the Job's env.
  const literal = Object.fromEntries((containersOf(job)[0].env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
  const table = z.object({ ...topicTableEnv, CDP_TOPIC_PREFIX: z.string() }).parse(literal);
  const specs = topicSpecs(topicSettings(table));
  const problems: string[] = [];
  const workloads = manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet');
  const bound = (m: Manifest, replicas: number, what: string) => {
    const service = containersOf(m)[0].name;
    const role = CONSUMER_INPUT[service];
    if (!role) {
      if (!NOT_CONSUMERS.has(service))
        problems.push(`chart ${chartOf(m)}: ${what} of ${service}, which is in neither CONSUMER_INPUT nor NOT_CONSUMERS`);
      return;
    }
    const { name, partitions } = specs[role];
    if (replicas > partitions) problems.push(`chart ${chartOf(m)}: ${what} ${replicas} exceeds the ${partitions} partitions of ${name}`);
  };
  for (const hpa of manifests.filter((m) => m.kind === 'HorizontalPodAutoscaler')) {
    const target = workloads.find((w) => w.kind === hpa.spec?.scaleTargetRef?.kind && w.metadata.name === hpa.spec.scaleTargetRef.name);
    if (!target) problems.push(`HorizontalPodAutoscaler ${hpa.metadata.name}: its target is not rendered`);
    else bound(target, hpa.spec!.maxReplicas!, `HorizontalPodAutoscaler ${hpa.metadata.name} maxReplicas`);
  }
  for (const w of workloads) {
    const scaled = manifests.some((m) => m.kind === 'HorizontalPodAutoscaler' && m.spec?.scaleTargetRef?.name === w.metadata.name);
    if (!scaled && w.spec?.replicas !== undefined) bound(w, w.spec.replicas, `${w.kind} ${w.metadata.name} replicas`);
  }
  return problems;
}

const parse = (text: string) =>
  parseAllDocuments(text)
    .map((d) => d.toJSON() as Manifest | null)
    .filter((m): m is Manifest => m !== null && typeof m === 'object');

describe('umbrella chart against the services', () => {
  const CHARTS = path.join(REPO_ROOT, 'charts');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'umbrella-chart-'));
  const umbrella = path.join(tmp, 'charts', 'cdp');
  const raised = path.join(tmp, 'raised-values.yaml');
  const rendered: Record<'minimal' | 'everything' | 'raised', Manifest[]> = { minimal: [], everything: [], raised: [] };

  beforeAll(async () => {
    // helm-java's template leaves hooks out: render a copy of the charts whose hook Jobs (cdp-topics,
    // identity-tables) are not marked as hooks (charts.int.test.ts checks the annotations).
    fs.cpSync(CHARTS, path.join(tmp, 'charts'), { recursive: true, filter: (src) => !/\/charts\/[^/]+\/(charts|Chart\.lock)$/.test(src) });
    for (const chart of fs.readdirSync(path.join(tmp, 'charts'))) {
      const templates = path.join(tmp, 'charts', chart, 'templates');
      if (!fs.existsSync(templates)) continue;
      for (const file of fs.readdirSync(templates)) {
        const f = path.join(templates, file);
        fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/^\s*helm\.sh\/hook: .*\n/gm, ''));
      }
    }
    // More partitions, and every consumer allowed as many pods.
    const minimal = parseYaml(fs.readFileSync(path.join(CHARTS, 'cdp', 'values-minimal.yaml'), 'utf8')) as Record<string, object>;
    const upTo48 = { autoscaling: { maxReplicas: 48 } };
    const raisedValues = {
      ...minimal,
      topics: { partitions: 48 },
      dedup: { replicas: 48 },
      identity: { ...minimal.identity, ...upTo48 },
      transform: { ...minimal.transform, ...upTo48, transform: { identifiedPartitions: 48 } },
      archiver: { ...minimal.archiver, ...upTo48 },
    };
    fs.writeFileSync(raised, stringify(raisedValues));
    await helm('deps', umbrella);
    rendered.minimal = parse(await helm('template', umbrella, path.join(CHARTS, 'cdp', 'values-minimal.yaml')));
    rendered.everything = parse(await helm('template', umbrella, path.join(CHARTS, 'cdp', 'ci-values.yaml')));
    rendered.raised = parse(await helm('template', umbrella, raised));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("uses the README's install values", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const shown = /## Installing on Kubernetes[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(shown).toBe(fs.readFileSync(path.join(CHARTS, 'cdp', 'values-minimal.yaml'), 'utf8'));
  });

  it('renders every service and Job with everything on', () => {
    const containers = rendered.everything.flatMap((m) => containersOf(m).map((c) => c.name));
    expect([...new Set(containers)].sort()).toEqual(Object.keys(SCHEMAS).sort());
  });

  it.each(['minimal', 'everything', 'raised'] as const)(
    'sets only variables each program reads, every one it requires, and values it accepts (%s values)',
    (values) => {
      const problems = rendered[values].flatMap((m) => containersOf(m).flatMap((c) => envProblems(m, c)));
      expect(problems).toEqual([]);
    },
  );

  it.each(['minimal', 'everything', 'raised'] as const)(
    "keeps every consumer's replicas within its input topic's partitions (%s values)",
    (values) => {
      expect(partitionProblems(rendered[values])).toEqual([]);
    },
  );

  it('raised values did raise the bound they are checked against', () => {
    const hpa = rendered.raised.find((m) => m.kind === 'HorizontalPodAutoscaler' && m.metadata.name === 'cdp-identity');
    expect(hpa?.spec?.maxReplicas).toBe(48);
    const topics = rendered.raised.find((m) => containersOf(m)[0]?.name === 'topics');
    expect(containersOf(topics!)[0].env?.find((e) => e.name === 'KAFKA_TOPIC_PARTITIONS')?.value).toBe('48');
  });

  it('names the chart, container and variable of a mismatch', () => {
    const copy = structuredClone(rendered.everything);
    const director = copy.find((m) => m.kind === 'Deployment' && m.metadata.name === 'cdp-director')!;
    const c = containersOf(director)[0];
    c.env = c
      .env!.filter((e) => e.name !== 'MYSQL_URL')
      .concat({ name: 'DIRECTOR_TYPO_MS', value: '1' }, { name: 'LOG_LEVEL', value: 'loud' });
    expect(envProblems(director, c)).toEqual([
      'chart director, Deployment cdp-director, container director: DIRECTOR_TYPO_MS is not a variable director reads',
      'chart director, Deployment cdp-director, container director: LOG_LEVEL is set twice',
      expect.stringMatching(/^chart director, Deployment cdp-director, container director: LOG_LEVEL="loud" is refused: /),
      expect.stringMatching(/^chart director, Deployment cdp-director, container director: MYSQL_URL is required and not set/),
    ]);
    const identity = copy.find((m) => m.kind === 'HorizontalPodAutoscaler' && m.metadata.name === 'cdp-identity')!;
    identity.spec!.maxReplicas = 13;
    expect(partitionProblems(copy)).toEqual([
      'chart identity: HorizontalPodAutoscaler cdp-identity maxReplicas 13 exceeds the 12 partitions of cdp.deduped',
    ]);
  });
});
