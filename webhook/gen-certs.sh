#!/usr/bin/env bash
# Certificates for the webhook without cert-manager: a private CA and a serving certificate signed by it.
# Creates the TLS Secret and writes the CA into the MutatingWebhookConfiguration's caBundle.
#
#   webhook/gen-certs.sh [NAMESPACE] [SERVICE] [DAYS]      (defaults: image-mirror image-mirror-webhook 365)
#
# Needs openssl and kubectl with access to the cluster. Run it again before the certificate expires: the
# webhook reloads the renewed Secret without a restart (kubelet updates the mounted files within a minute).
set -euo pipefail

namespace="${1:-image-mirror}"
service="${2:-image-mirror-webhook}"
days="${3:-365}"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -keyout "$workdir/ca.key" -out "$workdir/ca.crt" -subj "/CN=${service} webhook CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$workdir/tls.key" -out "$workdir/tls.csr" -subj "/CN=${service}.${namespace}.svc"

cat >"$workdir/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:${service}.${namespace}.svc,DNS:${service}.${namespace}.svc.cluster.local
EXT
openssl x509 -req -in "$workdir/tls.csr" -CA "$workdir/ca.crt" -CAkey "$workdir/ca.key" -CAcreateserial \
  -days "$days" -extfile "$workdir/ext.cnf" -out "$workdir/tls.crt"

kubectl -n "$namespace" create secret tls "${service}-tls" \
  --cert="$workdir/tls.crt" --key="$workdir/tls.key" --dry-run=client -o yaml | kubectl apply -f -

ca_bundle="$(base64 <"$workdir/ca.crt" | tr -d '\n')"
kubectl patch mutatingwebhookconfiguration "$service" --type=json \
  -p "[{\"op\": \"add\", \"path\": \"/webhooks/0/clientConfig/caBundle\", \"value\": \"${ca_bundle}\"}]"
echo "certificate for ${service}.${namespace}.svc valid for ${days} days; caBundle updated"
