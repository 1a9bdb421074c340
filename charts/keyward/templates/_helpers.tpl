{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name, plus the chart name unless it is in it. */}}
{{- define "keyward.fullname" -}}
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

{{/* Labels that select the operator pods; never change them in an upgrade. */}}
{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "keyward.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "keyward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keyward
{{- end }}

{{- define "keyward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keyward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keyward.leaseName" -}}
{{- default (printf "%s-leader" (include "keyward.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The pod's imagePullSecrets: `imagePullSecrets` and a parent chart's `global.imagePullSecrets`,
each entry either `{name: x}` or, as older releases of the chart took them, a plain name;
duplicates once.
*/}}
{{- define "keyward.imagePullSecrets" -}}
{{- $names := list }}
{{- $global := .Values.global | default dict }}
{{- range concat (.Values.imagePullSecrets | default list) ($global.imagePullSecrets | default list) }}
{{- if kindIs "string" . }}
{{- $names = append $names . }}
{{- else }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}
{{- range uniq $names }}
- name: {{ . }}
{{- end }}
{{- end }}

{{- define "keyward.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
What keyward may do on its own kinds and on Secrets and Events, in every namespace it
watches. This list is the operator's API use (docs/helm.md "RBAC"); tests/chart.rs checks
the rendered RBAC against the requests the operator makes.
*/}}
{{- define "keyward.watchRules" -}}
# keyward reads from its watch caches and never GETs single objects; the operator's
# end-to-end suite checks these rules against the requests it actually makes.
- apiGroups: [keyward.dev]
  resources: [mfaproviders, employees, accessgrants, revocationapprovals]
  verbs: [list, watch]
- apiGroups: [keyward.dev]
  # The finalizer keyward.dev/revoke-enrolments: deleting an Employee revokes first.
  resources: [employees]
  verbs: [patch]
- apiGroups: [keyward.dev]
  # revocationapprovals/status: an approval is marked consumed once its plan is carried out.
  resources: [mfaproviders/status, employees/status, accessgrants/status, revocationapprovals/status]
  verbs: [patch]
- apiGroups: [""]
  # Provider credentials, referenced by MfaProviders.
  resources: [secrets]
  verbs: [list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [coordination.k8s.io]
  # The claim on each MfaProvider (Lease keyward-claim-<provider>), so that one installation
  # acts on it; named after the providers, so not restricted by name.
  resources: [leases]
  verbs: [get, create, update]
{{- end }}

{{/* The operator's ServiceAccount as an RBAC subject. */}}
{{- define "keyward.subject" -}}
- kind: ServiceAccount
  name: {{ include "keyward.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The namespaces keyward watches, as a JSON list: `watch.namespaces`, else the release namespace
alone; empty with `watch.clusterWide` (every namespace).
*/}}
{{- define "keyward.watchedNamespaces" -}}
{{- if .Values.watch.clusterWide -}}
[]
{{- else if .Values.watch.namespaces -}}
{{ toJson .Values.watch.namespaces }}
{{- else -}}
{{ list .Release.Namespace | toJson }}
{{- end -}}
{{- end }}

{{/* Values that are valid one by one but not together, or not safe to leave out. */}}
{{- define "keyward.checks" -}}
{{- if and (not .Values.providerHosts) (not .Values.allowAnyProviderHost) }}
{{- fail "providerHosts is empty: name the hosts keyward may send provider credentials to (e.g. --set 'providerHosts={acme.okta.com,pi.acme.example}'), or set allowAnyProviderHost=true to let every MfaProvider name any host" }}
{{- end }}
{{- end }}

{{/*
The Secret holding the audit checkpoints' signing key: `audit.file.signingKey.secretName`, else
the one the chart generates (`audit.file.signingKey.generate`); empty when checkpoints are not
signed (audit records on stdout, or generation turned off).
*/}}
{{- define "keyward.signingKeySecret" -}}
{{- $key := .Values.audit.file.signingKey -}}
{{- if ne .Values.audit.destination "file" -}}
{{- else if $key.secretName -}}
{{ $key.secretName }}
{{- else if $key.generate -}}
{{ include "keyward.fullname" . }}-audit-signing
{{- end -}}
{{- end }}
