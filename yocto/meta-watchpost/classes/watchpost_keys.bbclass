# RAUC key handling for Watchpost builds.
#
# WATCHPOST_RAUC_KEYRING  CA certificate(s) installed as the device keyring
# WATCHPOST_RAUC_CERT     signing certificate for bundles
# WATCHPOST_RAUC_KEY      signing key (or PKCS#11 URI) for bundles
#
# Development builds may use the throwaway keys that scripts/image/gen-dev-keys.sh
# writes under build/. A product build (WATCHPOST_PRODUCT_BUILD = "1") refuses:
# - any key or certificate that is missing,
# - any file inside a layer of the build (keys belong in a secrets store, not in git),
# - any certificate carrying the development marker in its subject.
WATCHPOST_PRODUCT_BUILD ??= "0"
WATCHPOST_RAUC_KEYRING ??= ""
WATCHPOST_RAUC_CERT ??= ""
WATCHPOST_RAUC_KEY ??= ""
WATCHPOST_DEV_KEY_MARKER = "Watchpost Development"

def watchpost_key_problems(d):
    import base64
    import os
    problems = []
    layers = [os.path.realpath(p) for p in (d.getVar("BBLAYERS") or "").split()]
    for var in ("WATCHPOST_RAUC_KEYRING", "WATCHPOST_RAUC_CERT", "WATCHPOST_RAUC_KEY"):
        value = d.getVar(var) or ""
        if not value:
            problems.append("%s is not set" % var)
            continue
        if value.startswith("pkcs11:"):
            continue
        path = os.path.realpath(value)
        if not os.path.isfile(path):
            problems.append("%s=%s does not exist" % (var, value))
            continue
        for layer in layers:
            if path.startswith(layer + os.sep):
                problems.append("%s=%s lies inside the layer %s" % (var, value, layer))
        if var != "WATCHPOST_RAUC_KEY":
            marker = d.getVar("WATCHPOST_DEV_KEY_MARKER").encode()
            with open(path, "rb") as f:
                text = f.read()
            blobs = [text]
            for chunk in text.split(b"-----BEGIN CERTIFICATE-----")[1:]:
                body = chunk.split(b"-----END CERTIFICATE-----")[0]
                try:
                    blobs.append(base64.b64decode(b"".join(body.split())))
                except ValueError:
                    problems.append("%s=%s is not a PEM certificate" % (var, value))
            if any(marker in blob for blob in blobs):
                problems.append("%s=%s is a development certificate" % (var, value))
    return problems

python watchpost_check_keys() {
    d = e.data
    if d.getVar("WATCHPOST_PRODUCT_BUILD") != "1":
        return
    problems = watchpost_key_problems(d)
    if problems:
        bb.fatal("Product build refused, RAUC keys: " + "; ".join(problems))
}
addhandler watchpost_check_keys
watchpost_check_keys[eventmask] = "bb.event.ConfigParsed"
