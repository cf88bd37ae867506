{{/* Where the spool volume is mounted, and the spool directory on it. */}}
{{- define "tapi.spoolMount" -}}/var/lib/cdp-tapi{{- end -}}
{{- define "tapi.spoolDir" -}}{{ include "tapi.spoolMount" . }}/spool{{- end -}}

{{/* Environment shared by the tapi pods and the spool-drain Jobs (same Kafka, topics, spool). */}}
{{- define "tapi.env" -}}
{{ include "cdp.env" . }}
{{- with .Values.kafka.secondaryBrokers }}
- name: KAFKA_SECONDARY_BROKERS
  value: {{ . | quote }}
{{- end }}
- name: PUBLISH_TIMEOUT_MS
  value: {{ .Values.kafka.publishTimeoutMs | quote }}
- name: SPOOL_DIR
  value: {{ include "tapi.spoolDir" . }}
{{- end -}}
