{{/* Names. Every object is named after the full name; derived names are cut to 63 characters. */}}
{{- define "component-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "component-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "component-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "component-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "component-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "component-operator.labels" -}}
helm.sh/chart: {{ include "component-operator.chart" . }}
{{ include "component-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: component-operator
{{- end }}

{{- define "component-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "component-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "component-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "component-operator.peeringName" -}}
{{- .Values.peering.name | default (include "component-operator.fullname" .) }}
{{- end }}

{{/* Webhook objects: the Service, the configuration, the Secret the operator keeps its certificate in. */}}
{{- define "component-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "component-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "component-operator.webhookConfigurationName" -}}
{{- include "component-operator.fullname" . }}
{{- end }}

{{- define "component-operator.webhookSecretName" -}}
{{- printf "%s-webhook-cert" (include "component-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "component-operator.certificateName" -}}
{{- printf "%s-webhook" (include "component-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "component-operator.selfSignedIssuerName" -}}
{{- printf "%s-selfsigned" (include "component-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Does the operator manage the webhook certificate itself (webhook on, cert-manager off)? */}}
{{- define "component-operator.operatorManagedCerts" -}}
{{- if and .Values.webhook.enabled (not .Values.certManager.enabled) }}true{{ end }}
{{- end }}

{{/* The operator's configuration: config as given, agentImage defaulting to the operator's image. */}}
{{- define "component-operator.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- if not (hasKey $config "agentImage") }}
{{- $_ := set $config "agentImage" (include "component-operator.image" .) }}
{{- end }}
{{- toYaml $config }}
{{- end }}
