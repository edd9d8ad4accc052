{{/* Chart name, overridable. */}}
{{- define "parley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name; "<release>-parley", or just the release name when it already says parley. */}}
{{- define "parley.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "parley.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "parley.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: parley
{{- end -}}

{{/* Labels that select every pod of this release (the default-deny policy uses them). */}}
{{- define "parley.releaseSelector" -}}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels that select one service's pods. Call with (dict "root" $ "service" "<name>"). */}}
{{- define "parley.selectorLabels" -}}
{{ include "parley.releaseSelector" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{/* Labels of one service's objects. Call with (dict "root" $ "service" "<name>"). */}}
{{- define "parley.serviceLabels" -}}
{{ include "parley.labels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{/* The image reference; a digest wins over a tag. */}}
{{- define "parley.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Deep merge where the override wins key by key, including false, 0 and "" (sprig's merge and
mergeOverwrite both drop those, which would make `autoscaling: {enabled: false}` on one service
silently keep the default's true). Maps merge recursively; lists and scalars replace.
Call with (dict "base" <map> "override" <map>); returns YAML, read it back with fromYaml.
*/}}
{{- define "parley.merge" -}}
{{- $out := deepCopy .base -}}
{{- range $key, $value := .override -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (include "parley.merge" (dict "base" $current "override" $value) | fromYaml) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* One service's effective settings: `default` overridden by `services.<name>`. Call with (dict "root" $ "service" "<name>"). */}}
{{- define "parley.serviceConfig" -}}
{{- include "parley.merge" (dict "base" .root.Values.default "override" (get .root.Values.services .service | default dict)) -}}
{{- end -}}

{{/* Services that have a public port. */}}
{{- define "parley.publicServices" -}}
{{- toJson (list "edge" "voice-orchestrator") -}}
{{- end -}}

{{/*
The service graph: server -> sorted callers, generated from the services' per-RPC caller
allow-lists (services/<name>/src/policy.ts) into files/service-graph.json. It is the one source
of the service-to-service NetworkPolicy edges; test/deploy checks it against the policies.
*/}}
{{- define "parley.serviceGraph" -}}
{{- $graph := .Files.Get "files/service-graph.json" | fromJson -}}
{{- if not $graph.servers -}}
{{- fail "files/service-graph.json is missing or has no \"servers\"; regenerate it: pnpm exec vitest run test/deploy/service-graph.test.ts --update" -}}
{{- end -}}
{{- toJson $graph.servers -}}
{{- end -}}

{{/* Name of the TLS Secret of a service. Call with (dict "root" $ "service" "<name>"). */}}
{{- define "parley.tlsSecretName" -}}
{{- printf "%s-%s-tls" (include "parley.fullname" .root) .service -}}
{{- end -}}

{{/* The issuerRef of service certificates. */}}
{{- define "parley.issuerRef" -}}
{{- $c := .Values.certificates -}}
{{- if $c.issuerRef.name -}}
name: {{ $c.issuerRef.name }}
kind: {{ $c.issuerRef.kind }}
group: {{ $c.issuerRef.group }}
{{- else if $c.selfSignedCA.enabled -}}
name: {{ include "parley.fullname" . }}-ca
kind: Issuer
group: cert-manager.io
{{- else -}}
{{- fail "certificates: set issuerRef.name to an existing Issuer or ClusterIssuer, or enable selfSignedCA" -}}
{{- end -}}
{{- end -}}

{{/*
NetworkPolicy peers of a location given as {cidrs, namespaceSelector, podSelector}: one ipBlock
per CIDR, plus one selector peer when a selector is set. Returns a JSON list, maybe empty.
*/}}
{{- define "parley.peers" -}}
{{- $peers := list -}}
{{- range .cidrs -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" .)) -}}
{{- end -}}
{{- if or .namespaceSelector .podSelector -}}
{{- $selector := dict -}}
{{- with .namespaceSelector }}{{ $_ := set $selector "namespaceSelector" . }}{{ end -}}
{{- with .podSelector }}{{ $_ := set $selector "podSelector" . }}{{ end -}}
{{- $peers = append $peers $selector -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}

{{/*
Egress rules to a location (Postgres, Vault, OTLP) on its TCP ports, as a JSON list: empty when
no peer is configured, because a rule without `to` would open those ports to every destination.
*/}}
{{- define "parley.egressTo" -}}
{{- $peers := include "parley.peers" . | fromJsonArray -}}
{{- $ports := list -}}
{{- range .ports }}{{ $ports = append $ports (dict "protocol" "TCP" "port" .) }}{{ end -}}
{{- if $peers -}}
{{- toJson (list (dict "to" $peers "ports" $ports)) -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* Egress rules to the cluster DNS on UDP and TCP, as a JSON list; empty when no DNS peer is configured. */}}
{{- define "parley.dnsEgress" -}}
{{- $dns := .Values.networkPolicy.dns -}}
{{- $peers := include "parley.peers" $dns | fromJsonArray -}}
{{- $ports := list -}}
{{- range $dns.ports }}{{ $ports = concat $ports (list (dict "protocol" "UDP" "port" .) (dict "protocol" "TCP" "port" .)) }}{{ end -}}
{{- if $peers -}}
{{- toJson (list (dict "to" $peers "ports" $ports)) -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* Selector peers for a list of Parley services, as a JSON list. Call with (dict "root" $ "services" <list>). */}}
{{- define "parley.servicePeers" -}}
{{- $root := .root -}}
{{- $peers := list -}}
{{- range .services -}}
{{- $peers = append $peers (dict "podSelector" (dict "matchLabels" (include "parley.selectorLabels" (dict "root" $root "service" .) | fromYaml))) -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}
