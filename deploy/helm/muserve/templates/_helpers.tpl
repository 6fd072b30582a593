{{/* The name of every object: the release's name, at most 63 characters. */}}
{{- define "muserve.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "muserve.labels" -}}
app.kubernetes.io/name: muserve
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: muserve-{{ .Chart.Version }}
{{- end -}}

{{/* The labels that select this release's pods. */}}
{{- define "muserve.selectorLabels" -}}
app.kubernetes.io/name: muserve
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
