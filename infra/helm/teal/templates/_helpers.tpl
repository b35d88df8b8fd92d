{{/* Names and labels, as `helm create` makes them. */}}
{{- define "teal.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "teal.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "teal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "teal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* (dict "root" $ "component" "producer") */}}
{{- define "teal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "teal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The Secret every container takes its environment from. */}}
{{- define "teal.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else if .Values.secret.create }}
{{- include "teal.fullname" . }}
{{- else }}
{{- fail "teal needs a Secret with TEAL_BLUE_URL, TEAL_GREEN_URL, TEAL_KAFKA_BROKERS and TEAL_API_TOKEN: set secret.existingSecret to its name, or secret.create=true with secret.values" }}
{{- end }}
{{- end }}

{{/*
One teal Deployment: producer, consumer or api. Every role is the same image and the same
environment; only the command, the replica count and the strategy differ.
(dict "root" $ "component" "producer" "args" (list ...) "replicas" 1 "strategy" "Recreate" "role" .Values.producer)
*/}}
{{- define "teal.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $role := .role }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "teal.fullname" $root }}-{{ .component }}
  labels:
    {{- include "teal.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .replicas }}
  strategy:
    type: {{ .strategy }}
  selector:
    matchLabels:
      {{- include "teal.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "teal.selectorLabels" . | nindent 8 }}
      annotations:
        {{- /* A changed config or Secret restarts the pods that read it. */}}
        checksum/config: {{ $v.config | sha256sum }}
        {{- if $v.secret.create }}
        checksum/secret: {{ toJson $v.secret.values | sha256sum }}
        {{- end }}
        {{- if $v.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.apiPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
    spec:
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $role.terminationGracePeriodSeconds | default 30 }}
      containers:
        - name: {{ .component }}
          image: "{{ $v.image.repository }}:{{ $v.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $v.image.pullPolicy }}
          {{- /* node directly, not npx: npx wants a writable cache; the V8 flags and MALLOC_ARENA_MAX are bin/teal.mjs's shebang's. */}}
          command: ["node", "--max-semi-space-size=16", "--heap-growing-percent=50", "bin/teal.mjs"]
          args:
            {{- toYaml .args | nindent 12 }}
            {{- if $v.config }}
            - --config
            - /app/config/teal.config.ts
            {{- end }}
          ports:
            - name: api
              containerPort: {{ $v.apiPort }}
              protocol: TCP
          env:
            - name: MALLOC_ARENA_MAX
              value: "2"
            - name: TEAL_API_HOST
              value: 0.0.0.0
            - name: TEAL_API_PORT
              value: {{ $v.apiPort | quote }}
            {{- range $name, $value := $v.env }}
            - name: {{ $name }}
              value: {{ $value | quote }}
            {{- end }}
          envFrom:
            - secretRef:
                name: {{ include "teal.secretName" $root }}
          {{- /* Liveness: the process and its event loop answer; never blue, green or Kafka,
                 whose outage a restart does not fix. Readiness: all three answer (/readyz). */}}
          startupProbe:
            httpGet: { path: /healthz, port: api }
            periodSeconds: 2
            failureThreshold: 90
          livenessProbe:
            httpGet: { path: /healthz, port: api }
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 6
          readinessProbe:
            httpGet: { path: /readyz, port: api }
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            {{- toYaml $role.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $v.config }}
            - name: config
              mountPath: /app/config
              readOnly: true
            {{- end }}
            {{- if $v.tlsFiles.secretName }}
            - name: tls
              mountPath: {{ $v.tlsFiles.mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $role.tmpSizeLimit | default "1Gi" }}
        {{- if $v.config }}
        - name: config
          configMap:
            name: {{ include "teal.fullname" $root }}-config
        {{- end }}
        {{- if $v.tlsFiles.secretName }}
        - name: tls
          secret:
            secretName: {{ $v.tlsFiles.secretName }}
            defaultMode: 0400
        {{- end }}
      {{- with $role.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $role.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
