#!/usr/bin/env bash
# Throwaway RAUC keys for development builds and the QEMU test image:
#   build/dev-keys/ca.cert.pem        keyring (CA)
#   build/dev-keys/signing.cert.pem   bundle signing certificate (codeSigning)
#   build/dev-keys/signing.key.pem    its key
# Their subjects carry "Watchpost Development", which a product build refuses
# (yocto/meta-watchpost/classes/watchpost_keys.bbclass). Never commit them.
set -euo pipefail
out=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/dev-keys}
if [ -f "$out/signing.cert.pem" ]; then
  echo "dev-keys: present in $out"
  exit 0
fi
mkdir -p "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$out/ca.key.pem" -out "$out/ca.cert.pem" -days 3650 \
  -subj "/O=Watchpost Development/CN=Watchpost Development CA (not for products)" \
  -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$out/signing.key.pem" -out "$out/signing.csr" \
  -subj "/O=Watchpost Development/CN=Watchpost Development bundle signer" 2>/dev/null
printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' > "$out/signing.ext"
openssl x509 -req -in "$out/signing.csr" -CA "$out/ca.cert.pem" -CAkey "$out/ca.key.pem" -CAcreateserial \
  -out "$out/signing.cert.pem" -days 3650 -extfile "$out/signing.ext" 2>/dev/null
rm -f "$out/signing.csr" "$out/signing.ext"
chmod 0644 "$out/ca.cert.pem" "$out/signing.cert.pem"
echo "dev-keys: generated in $out"
