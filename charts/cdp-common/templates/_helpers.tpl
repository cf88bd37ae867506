{{/* Name of the workload: <release>-<chart>, unless fullnameOverride. */}}
{{- define "cdp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cdp.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cdp.labels" -}}
{{ include "cdp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
app.kubernetes.io/part-of: cdp
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "cdp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Environment shared by every service that reads Kafka: "cdp.envWithoutKafka" plus the brokers,
the topic prefix and the Kafka TLS/SASL settings.
*/}}
{{- define "cdp.env" -}}
{{- include "cdp.envWithoutKafka" . }}
{{- with .Values.global }}
{{- if .kafkaBrokers }}
- name: KAFKA_BROKERS
  value: {{ .kafkaBrokers | quote }}
{{- end }}
- name: CDP_TOPIC_PREFIX
  value: {{ .topicPrefix | default "cdp." | quote }}
{{- end }}
{{- include "cdp.kafkaSecurityEnv" . }}
{{- end -}}

{{/*
Environment of every service: log level, ops port, and the values of .Values.env (plain) and
.Values.secretEnv (name → {secret, key}: never rendered in clear). A service that does not read
Kafka (jobdb-manager) takes only this: its config schema knows no KAFKA_* variable.
*/}}
{{- define "cdp.envWithoutKafka" -}}
- name: OPS_PORT
  value: {{ .Values.ports.ops | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret }}
      key: {{ $ref.key }}
{{- end }}
{{- end -}}

{{/*
Kafka TLS and SASL (docs/operations.md "Kafka connection") from .Values.global.kafka, the same
for every service and the cdp-topics Job. The SASL password only ever as a Secret reference.
*/}}
{{- define "cdp.kafkaSecurityEnv" -}}
{{- $kafka := .Values.global.kafka | default dict -}}
{{- if and $kafka.caSecret (not $kafka.ssl) }}
{{- fail "global.kafka.caSecret needs global.kafka.ssl: true" }}
{{- end }}
{{- if $kafka.ssl }}
- name: KAFKA_SSL
  value: "true"
{{- end }}
{{- if $kafka.caSecret }}
- name: KAFKA_SSL_CA_FILE
  value: {{ include "cdp.kafkaCaDir" . }}/ca.crt
{{- end }}
{{- $sasl := $kafka.sasl | default dict }}
{{- if $sasl.mechanism }}
{{- $password := $sasl.passwordSecret | default dict }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ required "global.kafka.sasl.username is required with a SASL mechanism" $sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "global.kafka.sasl.passwordSecret.name is required with a SASL mechanism" $password.name }}
      key: {{ $password.key | default "password" }}
{{- end }}
{{- end -}}

{{/*
Consul (director, jobdb-manager): the agent, the key prefix, and the ACL token from the Secret
global.consulTokenSecret ({ name, key }) when it is named.
*/}}
{{- define "cdp.consulEnv" -}}
- name: CONSUL_HTTP_ADDR
  value: {{ .Values.global.consulAddr | quote }}
- name: CDP_CONSUL_PREFIX
  value: {{ .Values.global.consulPrefix | quote }}
{{- with .Values.global.consulTokenSecret }}
{{- if .name }}
- name: CONSUL_HTTP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key | default "token" }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "cdp.kafkaCaDir" -}}/etc/cdp/kafka-ca{{- end -}}

{{/* The Secret of global.kafka.caSecret (key ca.crt), when set: a volume and its mount. */}}
{{- define "cdp.kafkaCaVolume" -}}
{{ include "cdp.caVolume" (dict "name" "kafka-ca" "secret" (.Values.global.kafka | default dict).caSecret) }}
{{- end -}}

{{- define "cdp.kafkaCaMount" -}}
{{ include "cdp.caMount" (dict "name" "kafka-ca" "secret" (.Values.global.kafka | default dict).caSecret) }}
{{- end -}}

{{/*
MySQL TLS (docs/operations.md "MySQL TLS") from .Values.mysql: ssl, and caSecret (a Secret
with ca.crt) mounted at /etc/cdp/mysql-ca.
*/}}
{{- define "cdp.mysqlTlsEnv" -}}
{{- if and .Values.mysql.caSecret (not .Values.mysql.ssl) }}
{{- fail "mysql.caSecret needs mysql.ssl: true" }}
{{- end }}
{{- if .Values.mysql.ssl }}
- name: MYSQL_SSL
  value: "true"
{{- end }}
{{- if .Values.mysql.caSecret }}
- name: MYSQL_SSL_CA_FILE
  value: /etc/cdp/mysql-ca/ca.crt
{{- end }}
{{- end -}}

{{- define "cdp.mysqlCaVolume" -}}
{{ include "cdp.caVolume" (dict "name" "mysql-ca" "secret" .Values.mysql.caSecret) }}
{{- end -}}

{{- define "cdp.mysqlCaMount" -}}
{{ include "cdp.caMount" (dict "name" "mysql-ca" "secret" .Values.mysql.caSecret) }}
{{- end -}}

{{/* A CA bundle from a Secret (key ca.crt), mounted at /etc/cdp/<name>: (dict "name" "secret"); nothing when secret is empty. */}}
{{- define "cdp.caVolume" -}}
{{- if .secret }}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    items: [{ key: ca.crt, path: ca.crt }]
{{- end }}
{{- end -}}

{{- define "cdp.caMount" -}}
{{- if .secret }}
- name: {{ .name }}
  mountPath: /etc/cdp/{{ .name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The ops listener: liveness on /healthz, readiness on /readyz, metrics on /metrics. */}}
{{- define "cdp.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: ops }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: ops }
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet: { path: /healthz, port: ops }
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}

{{- define "cdp.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  fsGroup: 1000
  seccompProfile: { type: RuntimeDefault }
{{- end -}}

{{- define "cdp.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: { drop: [ALL] }
{{- end -}}

{{/* Prometheus scrape annotations (for setups without the operator's ServiceMonitor). */}}
{{- define "cdp.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.ops | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/*
The workspace file: an existing ConfigMap (workspace.existingConfigMap) or one this chart
renders from .Values.workspace.config. Mounted as a directory so Kubernetes' symlink swap on
update is seen by the services' polling reload.
*/}}
{{- define "cdp.workspaceConfigMapName" -}}
{{- .Values.workspace.existingConfigMap | default (printf "%s-workspace" (include "cdp.fullname" .)) -}}
{{- end -}}

{{- define "cdp.workspaceConfigMap" -}}
{{- if and (not .Values.workspace.existingConfigMap) .Values.workspace.config }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "cdp.workspaceConfigMapName" . }}
  labels: {{- include "cdp.labels" . | nindent 4 }}
data:
  workspace.yaml: |
    {{- toYaml .Values.workspace.config | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "cdp.workspaceVolume" -}}
- name: workspace
  configMap:
    name: {{ include "cdp.workspaceConfigMapName" . }}
{{- end -}}

{{- define "cdp.workspaceMount" -}}
- name: workspace
  mountPath: /etc/cdp/workspace
  readOnly: true
{{- end -}}

{{- define "cdp.workspaceEnv" -}}
- name: CDP_WORKSPACE_FILE
  value: /etc/cdp/workspace/workspace.yaml
{{- end -}}

{{- define "cdp.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* CPU-based HorizontalPodAutoscaler of the chart's Deployment when .Values.autoscaling.enabled. */}}
{{- define "cdp.hpa" -}}
{{ include "cdp.hpaFor" (dict "root" . "kind" "Deployment") }}
{{- end -}}

{{/*
The same for a workload of another kind: include "cdp.hpaFor" (dict "root" . "kind" "StatefulSet").
*/}}
{{- define "cdp.hpaFor" -}}
{{- $root := .root -}}
{{- if $root.Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "cdp.fullname" $root }}
  labels: {{- include "cdp.labels" $root | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ .kind }}
    name: {{ include "cdp.fullname" $root }}
  minReplicas: {{ $root.Values.autoscaling.minReplicas }}
  maxReplicas: {{ $root.Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $root.Values.autoscaling.targetCPUUtilizationPercentage }}
  {{- with $root.Values.autoscaling.behavior }}
  behavior: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
