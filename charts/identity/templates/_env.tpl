{{/* Where the graph's DynamoDB tables are: the same for the service and the tables Job. */}}
{{- define "identity.dynamodbEnv" -}}
- name: AWS_REGION
  value: {{ .Values.dynamodb.region | quote }}
{{- with .Values.dynamodb.endpoint }}
- name: DYNAMODB_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: IDENTITY_TABLE_PREFIX
  value: {{ .Values.dynamodb.tablePrefix | quote }}
{{- end -}}
