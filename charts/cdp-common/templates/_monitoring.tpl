{{/* A ServiceMonitor (prometheus-operator) when .Values.serviceMonitor.enabled. */}}
{{- define "cdp.serviceMonitor" -}}
{{- if .Values.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "cdp.fullname" . }}
  labels: {{- include "cdp.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels: {{- include "cdp.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: ops
      path: /metrics
      interval: {{ .Values.serviceMonitor.interval | default "30s" }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget keeping at least one pod through voluntary disruptions. */}}
{{- define "cdp.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "cdp.fullname" . }}
  labels: {{- include "cdp.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable | default 1 }}
  selector:
    matchLabels: {{- include "cdp.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
