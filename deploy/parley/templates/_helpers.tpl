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
A dependency's location ({cidrs, namespaceSelector, podSelector, ports}) with the chart's default
selectors applied, as JSON. Call with (dict "root" $ "name" "database" | "vault" | "dns" | "telemetry").
The defaults live here rather than in values.yaml because Helm merges a user's map into a default
map key by key: `--set database.networkPolicy.podSelector.matchLabels.app=pg` would render both
labels and match nothing. In values.yaml the selectors are {} ("the default"), so a user's selector
replaces the default whole; null (which removes the key) means no selector.
*/}}
{{- define "parley.location" -}}
{{- $defaults := dict
  "database" (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "postgresql")))
  "vault" (dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" "vault")) "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "vault")))
  "dns" (dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" "kube-system")) "podSelector" (dict "matchLabels" (dict "k8s-app" "kube-dns")))
  "telemetry" (dict) -}}
{{- $given := dict -}}
{{- if eq .name "database" }}{{ $given = .root.Values.database.networkPolicy }}
{{- else if eq .name "vault" }}{{ $given = .root.Values.vault.networkPolicy }}
{{- else if eq .name "dns" }}{{ $given = .root.Values.networkPolicy.dns }}
{{- else if eq .name "telemetry" }}{{ $given = .root.Values.telemetry.networkPolicy }}
{{- else }}{{ fail (printf "parley.location: unknown location %q" .name) }}
{{- end -}}
{{- $out := deepCopy $given -}}
{{- $own := get $defaults .name -}}
{{- range $key := list "namespaceSelector" "podSelector" -}}
{{- $value := get $given $key -}}
{{- if and (kindIs "map" $value) (empty $value) -}}
{{- with get $own $key }}{{ $_ := set $out $key . }}{{ else }}{{ $_ := unset $out $key }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
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
{{- $dns := include "parley.location" (dict "root" . "name" "dns") | fromJson -}}
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

{{/*
The Secret with the edge's public certificate: config.edge.publicTls.existingSecret, or the one
the chart's own Certificate fills; empty when the edge serves its internal certificate.
*/}}
{{- define "parley.edgePublicTlsSecret" -}}
{{- $tls := .Values.config.edge.publicTls -}}
{{- if and $tls.existingSecret $tls.certificate.enabled -}}
{{- fail "config.edge.publicTls: set existingSecret or enable certificate, not both" -}}
{{- end -}}
{{- if $tls.existingSecret -}}
{{- $tls.existingSecret -}}
{{- else if $tls.certificate.enabled -}}
{{- printf "%s-edge-public-tls" (include "parley.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The public session URL identity signs into session URLs (see config.identity.sessionPublicUrl). */}}
{{- define "parley.sessionPublicUrl" -}}
{{- $x := .Values.exposure -}}
{{- if .Values.config.identity.sessionPublicUrl -}}
{{- .Values.config.identity.sessionPublicUrl -}}
{{- else if $x.ingress.enabled -}}
{{- printf "https://%s" $x.ingress.session.host -}}
{{- else if and $x.gateway.enabled $x.gateway.session.hostnames -}}
{{- printf "https://%s" (first $x.gateway.session.hostnames) -}}
{{- else -}}
{{- /* An in-cluster name would make every Twilio signature check fail and point browsers nowhere. */ -}}
{{- fail "config.identity.sessionPublicUrl: set the public https URL of the voice-orchestrator's session port (Twilio signs call webhooks over it and session_url sends browsers there), or enable exposure.ingress (session.host) or exposure.gateway with session.hostnames; none is set, so the chart cannot derive it (behind a LoadBalancer, give the load balancer's DNS name)" -}}
{{- end -}}
{{- end -}}

{{/* An env entry whose value comes from a Secret key, as YAML. */}}
{{- define "parley.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s.existingSecret: name the Secret holding %s" .from .name) .ref.existingSecret }}
      key: {{ .ref.key }}
{{- end -}}

{{/*
The blob store of recorded calls (config.recordings), the same for tenant-data and the
voice-orchestrator: PARLEY_BLOB_STORE and, for s3, the bucket and (optionally) a key pair from an
existing Secret. Call with config.recordings.
*/}}
{{- define "parley.blobStoreEnv" -}}
- name: PARLEY_BLOB_STORE
  value: {{ .store | quote }}
{{- if eq .store "s3" }}
- name: PARLEY_S3_BUCKET
  value: {{ required "config.recordings.s3.bucket: name the bucket recordings are kept in" .s3.bucket | quote }}
- name: PARLEY_S3_REGION
  value: {{ .s3.region | quote }}
{{- with .s3.endpoint }}
- name: PARLEY_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: PARLEY_S3_FORCE_PATH_STYLE
  value: {{ ternary "true" "false" .s3.forcePathStyle | quote }}
{{- with .s3.prefix }}
- name: PARLEY_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with .s3.credentials }}
{{- if .existingSecret }}
- name: PARLEY_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyIdKey }}
- name: PARLEY_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
A service's own environment (config.<service>) and, for the services that keep a KEK in Vault
(vault.services), exactly the variables @parley/envelope's loadKekProviderConfig reads. Returns
a YAML list of env entries; credentials only as secretKeyRef or as paths of mounted files.
Call with (dict "root" $ "service" "<name>").
*/}}
{{- define "parley.serviceEnv" -}}
{{- $root := .root -}}
{{- $service := .service -}}
{{- $c := $root.Values.config -}}
{{- $vault := $root.Values.vault -}}
{{- if eq $service "edge" }}
- name: PARLEY_EDGE_AUTH_CACHE_MS
  value: {{ $c.edge.authCacheMs | quote }}
- name: PARLEY_EDGE_TRUSTED_PROXIES
  value: {{ join "," $c.edge.trustedProxies | quote }}
- name: PARLEY_EDGE_TRACE_PROXIES
  value: {{ join "," $c.edge.traceProxies | quote }}
- name: PARLEY_EDGE_JWKS_CACHE_MS
  value: {{ $c.edge.jwksCacheMs | quote }}
- name: PARLEY_EDGE_LONG_READ_DEADLINE_MS
  value: {{ $c.edge.longReadDeadlineMs | quote }}
- name: PARLEY_EDGE_MAX_CONCURRENT_STREAMS
  value: {{ $c.edge.limits.maxConcurrentStreams | quote }}
- name: PARLEY_EDGE_MAX_CONNECTIONS_PER_ADDRESS
  value: {{ $c.edge.limits.maxConnectionsPerAddress | quote }}
- name: PARLEY_EDGE_HEADERS_TIMEOUT_MS
  value: {{ $c.edge.limits.headersTimeoutMs | quote }}
- name: PARLEY_EDGE_REQUEST_TIMEOUT_MS
  value: {{ $c.edge.limits.requestTimeoutMs | quote }}
- name: PARLEY_EDGE_IDLE_TIMEOUT_MS
  value: {{ $c.edge.limits.idleTimeoutMs | quote }}
- name: PARLEY_EDGE_STREAM_RESET_BURST
  value: {{ $c.edge.limits.streamResetBurst | quote }}
- name: PARLEY_EDGE_STREAM_RESET_RATE
  value: {{ $c.edge.limits.streamResetRate | quote }}
{{- if include "parley.edgePublicTlsSecret" $root }}
- name: PARLEY_PUBLIC_TLS_CERT
  value: /var/run/parley/public-tls/tls.crt
- name: PARLEY_PUBLIC_TLS_KEY
  value: /var/run/parley/public-tls/tls.key
{{- end }}
{{- with $c.edge.oidc }}
{{- if .enabled }}
- name: PARLEY_OIDC_ISSUER
  value: {{ required "config.edge.oidc.issuer: the provider's issuer URL" .issuer | quote }}
- name: PARLEY_OIDC_CLIENT_ID
  value: {{ required "config.edge.oidc.clientId: the edge's client id at the provider" .clientId | quote }}
- name: PARLEY_OIDC_CLIENT_SECRET_FILE
  value: /var/run/parley/oidc/client-secret
{{- if .caSecret.name }}
- name: PARLEY_OIDC_CA_FILE
  value: /var/run/parley/oidc-ca/ca.crt
{{- end }}
- name: PARLEY_PUBLIC_URL
  value: {{ .publicUrl | default (printf "https://%s" $root.Values.exposure.ingress.edge.host) | quote }}
- name: PARLEY_OIDC_SCOPES
  value: {{ .scopes | quote }}
- name: PARLEY_OIDC_ALLOWED_DOMAINS
  value: {{ join "," .allowedDomains | quote }}
- name: PARLEY_OPERATOR_SESSION_HOURS
  value: {{ .sessionHours | quote }}
- name: PARLEY_OIDC_ADMIN_GROUPS
  value: {{ join "," .adminGroups | quote }}
- name: PARLEY_ADMIN_EMAILS
  value: {{ join "," .adminEmails | quote }}
{{- end }}
{{- end }}
{{- else if eq $service "identity" }}
{{ include "parley.secretEnv" (dict "name" "PARLEY_API_KEY_PEPPER" "ref" $c.identity.apiKeyPepper "from" "config.identity.apiKeyPepper") }}
- name: PARLEY_API_KEY_ENVIRONMENT
  value: {{ $c.identity.apiKeyEnvironment | quote }}
- name: PARLEY_SESSION_ISSUER
  value: {{ $c.identity.sessionIssuer | quote }}
- name: PARLEY_SESSION_AUDIENCE
  value: {{ $c.identity.sessionAudience | quote }}
- name: PARLEY_SESSION_PUBLIC_URL
  value: {{ include "parley.sessionPublicUrl" $root | quote }}
- name: PARLEY_SIGNING_KEY_ROTATION_HOURS
  value: {{ $c.identity.signingKeyRotationHours | quote }}
- name: PARLEY_SIGNING_KEY_RELOAD_MS
  value: {{ $c.identity.signingKeyReloadMs | int64 | quote }}
- name: PARLEY_AUTH_MAX_FAILURES
  value: {{ $c.identity.authThrottle.maxFailures | quote }}
- name: PARLEY_AUTH_FAILURE_WINDOW_SECONDS
  value: {{ $c.identity.authThrottle.failureWindowSeconds | quote }}
- name: PARLEY_AUTH_BLOCK_SECONDS
  value: {{ $c.identity.authThrottle.blockSeconds | quote }}
- name: PARLEY_OPERATOR_SESSION_HOURS
  value: {{ $c.edge.oidc.sessionHours | quote }}
{{- else if eq $service "secrets" }}
- name: PARLEY_SECRET_VERSION_GRACE_MS
  value: {{ $c.secrets.versionGraceMs | int64 | quote }}
- name: PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS
  value: {{ $c.secrets.maintenanceIntervalMs | int64 | quote }}
- name: PARLEY_KEK_REWRAP_BATCH_SIZE
  value: {{ $c.secrets.rewrapBatchSize | quote }}
- name: PARLEY_DEK_CACHE
  value: {{ ternary "on" "off" $c.secrets.dataKeyCache.enabled | quote }}
- name: PARLEY_DEK_CACHE_MAX_AGE_MS
  value: {{ $c.secrets.dataKeyCache.maxAgeMs | int64 | quote }}
- name: PARLEY_DEK_CACHE_MAX_USES
  value: {{ $c.secrets.dataKeyCache.maxUses | int64 | quote }}
- name: PARLEY_DEK_CACHE_MAX_ENTRIES
  value: {{ $c.secrets.dataKeyCache.maxEntries | int64 | quote }}
{{- else if eq $service "tenant-data" }}
- name: PARLEY_DB_POOL_MAX
  value: {{ (index $c "tenant-data").dbPoolMax | quote }}
{{ include "parley.secretEnv" (dict "name" "PARLEY_SUBJECT_HASH_PEPPER" "ref" (index $c "tenant-data").subjectHashPepper "from" "config.tenant-data.subjectHashPepper") }}
- name: PARLEY_RECORDING_READ_MAX_BYTES
  value: {{ $c.recordings.readMaxBytes | int64 | quote }}
{{ include "parley.blobStoreEnv" $c.recordings }}
{{- else if eq $service "audit" }}
- name: PARLEY_DB_POOL_MAX
  value: {{ $c.audit.dbPoolMax | quote }}
- name: PARLEY_AUDIT_CHECKPOINT_EVERY_EVENTS
  value: {{ $c.audit.checkpointEveryEvents | int64 | quote }}
- name: PARLEY_AUDIT_CHECKPOINT_EVERY_MS
  value: {{ $c.audit.checkpointEveryMs | int64 | quote }}
- name: PARLEY_AUDIT_SIGNING_KEY_PATH
  value: /var/run/parley/audit-signing-key/signing-key.json
{{- if $c.audit.witness.existingClaim }}
- name: PARLEY_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
# One append-only file per replica on the witness volume (appends from several hosts to one file are not atomic).
- name: PARLEY_AUDIT_WITNESS_PATH
  value: /var/run/parley/audit-witness/witness-$(PARLEY_POD_NAME).ndjson
{{- end }}
{{- else if eq $service "lifecycle" }}
{{- $l := $c.lifecycle }}
{{ include "parley.secretEnv" (dict "name" "PARLEY_EXPORT_KEY" "ref" $l.exportKey "from" "config.lifecycle.exportKey") }}
- name: PARLEY_PURGE_INTERVAL_MS
  value: {{ $l.purgeIntervalMs | int64 | quote }}
- name: PARLEY_PURGE_BATCH_SIZE
  value: {{ $l.purgeBatchSize | int64 | quote }}
- name: PARLEY_AUDIT_LEGAL_MINIMUM_DAYS
  value: {{ $l.auditLegalMinimumDays | int64 | quote }}
- name: PARLEY_PRIVACY_LEASE_MS
  value: {{ $l.privacyLeaseMs | int64 | quote }}
- name: PARLEY_PRIVACY_MAX_ATTEMPTS
  value: {{ $l.privacyMaxAttempts | int64 | quote }}
- name: PARLEY_PRIVACY_RETRY_MS
  value: {{ $l.privacyRetryMs | int64 | quote }}
- name: PARLEY_PRIVACY_CONCURRENCY
  value: {{ $l.privacyConcurrency | int64 | quote }}
- name: PARLEY_EXPORT_LINK_TTL_SECONDS
  value: {{ $l.exportLinkTtlSeconds | int64 | quote }}
- name: PARLEY_PURGE_SCHEDULER
  value: {{ $l.purgeScheduler | quote }}
- name: PARLEY_PURGE_FIRST_RUN_MS
  value: {{ $l.purgeFirstRunMs | int64 | quote }}
- name: PARLEY_PRIVACY_POLL_MS
  value: {{ $l.privacyPollMs | int64 | quote }}
- name: PARLEY_AUTH_FAILURE_RETENTION_HOURS
  value: {{ $l.authFailureRetentionHours | int64 | quote }}
- name: PARLEY_SESSION_RETENTION_DAYS
  value: {{ $l.sessionRetentionDays | int64 | quote }}
{{- else if eq $service "voice-orchestrator" }}
# Twilio signs its call webhook over the public URL: the orchestrator checks it against this, never the Host header.
- name: PARLEY_SESSION_PUBLIC_URL
  value: {{ include "parley.sessionPublicUrl" $root | quote }}
- name: PARLEY_TTS_EMBEDDED_WORKERS
  value: {{ (index $c "voice-orchestrator").ttsEmbeddedWorkers | int64 | quote }}
- name: PARLEY_SESSION_TRUSTED_PROXIES
  value: {{ join "," (index $c "voice-orchestrator").trustedProxies | quote }}
- name: PARLEY_RECORDING_MAX_BYTES
  value: {{ $c.recordings.maxBytes | int64 | quote }}
- name: PARLEY_RECORDING_BUFFER_BYTES
  value: {{ $c.recordings.bufferBytes | int64 | quote }}
{{ include "parley.blobStoreEnv" $c.recordings }}
{{- end }}
{{- if hasKey $vault.services $service }}
{{- $client := get $vault.services $service }}
- name: PARLEY_KEK_PROVIDER
  value: vault
- name: PARLEY_VAULT_ADDR
  value: {{ required "vault.address: set Vault's address, e.g. https://vault.vault.svc:8200" $vault.address | quote }}
{{- with $vault.namespace }}
- name: PARLEY_VAULT_NAMESPACE
  value: {{ . | quote }}
{{- end }}
- name: PARLEY_VAULT_TRANSIT_MOUNT
  value: {{ $vault.transitMount | quote }}
- name: PARLEY_VAULT_TRANSIT_KEY
  value: {{ $client.transitKey | quote }}
- name: PARLEY_VAULT_TIMEOUT_MS
  value: {{ $vault.requestTimeoutMs | quote }}
- name: PARLEY_VAULT_AUTH
  value: {{ $vault.auth.method | quote }}
{{- if $vault.caSecret.name }}
- name: PARLEY_VAULT_CACERT
  value: /var/run/parley/vault-ca/ca.crt
{{- end }}
{{- if eq $vault.auth.method "kubernetes" }}
- name: PARLEY_VAULT_K8S_ROLE
  value: {{ required (printf "vault.services.%s.role: name the Vault Kubernetes auth role of %s" $service $service) $client.role | quote }}
- name: PARLEY_VAULT_K8S_JWT_PATH
  value: /var/run/secrets/kubernetes.io/serviceaccount/token
{{- with $vault.auth.mountPath }}
- name: PARLEY_VAULT_K8S_MOUNT
  value: {{ . | quote }}
{{- end }}
{{- else if eq $vault.auth.method "approle" }}
{{- $_ := required "vault.auth.existingSecret: name the Secret holding the AppRole secret_ids" $vault.auth.existingSecret }}
- name: PARLEY_VAULT_APPROLE_ROLE_ID
  value: {{ required (printf "vault.services.%s.role: set the AppRole role_id of %s" $service $service) $client.role | quote }}
- name: PARLEY_VAULT_APPROLE_SECRET_ID_FILE
  value: /var/run/parley/vault-auth/secret-id
{{- with $vault.auth.mountPath }}
- name: PARLEY_VAULT_APPROLE_MOUNT
  value: {{ . | quote }}
{{- end }}
{{- else if eq $vault.auth.method "token" }}
{{- $_ := required "vault.auth.existingSecret: name the Secret holding the Vault tokens" $vault.auth.existingSecret }}
- name: PARLEY_VAULT_TOKEN_FILE
  value: /var/run/parley/vault-auth/token
{{- end }}
{{- end }}
{{- end -}}

{{/*
The `replicas` field of a service's Deployment, as YAML (maybe empty). Call with
(dict "cfg" <service config> "live" <the live Deployment from lookup, or an empty map>).
Without an HPA it is the configured count. With one, the HPA owns the count, but simply leaving
the field out is what drops 3 pods to 1 when autoscaling is turned on for a running release: the
previous manifest set replicas, the new one lacks it, so Helm's three-way merge (or server-side
apply, which gives up the field) removes it and the API server defaults it to 1 until the HPA
acts. So when the Deployment exists, the field keeps its live value (what the HPA last chose): the
patch is then a no-op for the count. On a first install (and in `helm template`, where lookup
sees no cluster) it is left out and the HPA scales up from the API server's default of 1.
*/}}
{{- define "parley.replicas" -}}
{{- if not .cfg.autoscaling.enabled -}}
replicas: {{ .cfg.replicas }}
{{- else -}}
{{- $live := dig "spec" "replicas" nil (.live | default dict) -}}
{{- if not (kindIs "invalid" $live) -}}
replicas: {{ $live }}
{{- end -}}
{{- end -}}
{{- end -}}
