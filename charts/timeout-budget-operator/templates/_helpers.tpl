{{/* Names and labels. */}}
{{- define "tbo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tbo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tbo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tbo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tbo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tbo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tbo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tbo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tbo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap that hosts the evaluation loop (a kopf daemon), in the release namespace. */}}
{{- define "tbo.loopConfigMap" -}}
{{- printf "%s-loop" (include "tbo.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" when the operator serves every namespace (kopf's cluster-wide mode). */}}
{{- define "tbo.clusterwide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* The namespaces served: watchNamespaces plus the release namespace, as a JSON list. */}}
{{- define "tbo.servedNamespaces" -}}
{{- $all := list .Release.Namespace -}}
{{- range .Values.watchNamespaces -}}
{{- $all = append $all . -}}
{{- end -}}
{{- $all | uniq | toJson -}}
{{- end -}}

{{/*
The rules the operator needs wherever it serves routes. Each rule says why.
Argument: the root context.
*/}}
{{- define "tbo.routeRules" -}}
# kopf watches TimeoutBudgets and CloudflareZones and patches them for its finalizer and
# its progress annotations.
- apiGroups: [timeoutbudget.io]
  resources: [timeoutbudgets, cloudflarezones]
  verbs: [list, watch, patch]
# The operator's status reports (status subresource).
- apiGroups: [timeoutbudget.io]
  resources: [timeoutbudgets/status, cloudflarezones/status]
  verbs: [patch]
# Origins: listed once and watched (or listed every cycle with originReads=list); the
# baseline-replicas annotation is patched on the Deployment, replicas through the scale
# subresource only.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, patch]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
# An HPA that targets the origin owns its replicas: the operator raises minReplicas.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, watch, patch]
# Reroute: the Service selector is switched to the long-running pool and back.
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, patch]
# The timeout chain (spec.chain): the Ingresses in front of the routes, read only.
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [list, watch]
{{- if .Values.rbac.ingressWrites }}
# spec.chain.sync: the named Ingress's proxy-read-timeout, by server-side apply (opt-in).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, patch]
{{- end }}
# ... and through the Gateway API: the HTTPRoutes, and the Gateways they attach to (a
# Gateway in a namespace the operator does not serve is shown as not readable).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, gateways]
  verbs: [get, list]
{{- if .Values.rbac.httpRouteWrites }}
# spec.chain.sync: the named HTTPRoute rule's timeouts, and spec.reroute.httpRoute: the
# rule's backendRefs weights, by server-side apply; their restore by merge patch (opt-in).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [patch]
{{- end }}
# One Event per action taken, failed or refused (and kopf's own warnings).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# kopf watches configmaps with a field selector on the evaluation loop's ConfigMap name,
# and adds its finalizer to it; no other ConfigMap is readable.
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ include "tbo.loopConfigMap" . | quote }}]
  verbs: [list, watch, patch]
{{- end -}}

{{- define "tbo.secretRule" -}}
# CloudflareZone API tokens: get by name only (never list or watch).
- apiGroups: [""]
  resources: [secrets]
  {{- with .Values.cloudflare.tokenSecretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: [get]
{{- end -}}
