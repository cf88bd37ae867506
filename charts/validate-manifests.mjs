// Validates Kubernetes manifests (a JSON array on stdin) against the schemas of
// kubernetes-models, which ships as ESM only, hence this helper process. Prints one JSON line:
// { "errors": ["<kind>/<name>: <message>", ...], "checked": N, "unknown": ["<apiVersion>/<kind>"] }
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';

const MODELS = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'batch/v1/Job': Job,
};

let input = '';
for await (const chunk of process.stdin) input += chunk;
const manifests = JSON.parse(input);
const errors = [];
const unknown = [];
let checked = 0;
for (const m of manifests) {
  const Model = MODELS[`${m.apiVersion}/${m.kind}`];
  if (!Model) {
    unknown.push(`${m.apiVersion}/${m.kind}`);
    continue;
  }
  try {
    new Model(m).validate();
    checked++;
  } catch (error) {
    errors.push(`${m.kind}/${m.metadata?.name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify({ errors, checked, unknown }) + '\n');
