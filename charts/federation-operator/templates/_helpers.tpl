{{/* Names, labels and the few decisions several templates share. */}}

{{- define "federation-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "federation-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Component names are suffixed, so the longest suffix ("-operator-standby") must still fit. */}}
{{- define "federation-operator.componentName" -}}
{{- printf "%s-%s" (include "federation-operator.fullname" .root | trunc 46 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "federation-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "federation-operator.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "federation-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "federation-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: federation
{{- end -}}

{{- define "federation-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "federation-operator.site" -}}
{{- .Values.site | default .Release.Name -}}
{{- end -}}

{{/* The server's client-certificate source: explicit, or the one the selected provider forwards. */}}
{{- define "federation-operator.clientCertSource" -}}
{{- if .Values.server.clientCertSource -}}
{{- .Values.server.clientCertSource -}}
{{- else -}}
{{- get (dict "envoy-gateway" "xfcc" "ingress-nginx" "nginx" "gateway-api" "direct" "none" "direct") .Values.ingress.provider -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that get the operator's namespaced Role: the watched ones, plus the Gateway's
     namespace where the provider writes or patches objects next to a Gateway that lives elsewhere
     (no Gateway namespace = the Gateway sits in each peers' namespace). */}}
{{- define "federation-operator.operatorRoleNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces -}}
{{- if and (has .Values.ingress.provider (list "envoy-gateway" "gateway-api")) .Values.ingress.gateway.namespace -}}
{{- $namespaces = append $namespaces .Values.ingress.gateway.namespace -}}
{{- end -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{/* Restricted pod security, shared by every pod of the chart. */}}
{{- define "federation-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "federation-operator.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
