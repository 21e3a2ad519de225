{{/*
Named templates shared by the chart. Only a small set of functions is used (include,
printf, default, trunc, trimSuffix, quote, toYaml, nindent, indent), because
lb-k8s/tests/manifests.rs renders the chart with a Go text/template engine and
implements those Helm functions itself.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "lb-k8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of objects that need a unique name: the release name, with the chart name appended unless they are equal. */}}
{{- define "lb-k8s.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name (include "lb-k8s.name" .) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "lb-k8s.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "lb-k8s.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "lb-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of the controller pods. */}}
{{- define "lb-k8s.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lb-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Selector labels of the speaker pods. */}}
{{- define "lb-k8s.speaker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lb-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: speaker
{{- end -}}

{{/* The container image. */}}
{{- define "lb-k8s.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Arguments both components share. */}}
{{- define "lb-k8s.commonArgs" -}}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
{{- with .Values.loadBalancerClass }}
- --lb-class={{ . }}
{{- end }}
{{- end -}}
