#!/usr/bin/env bash
# Installs a real Home Assistant core into .venv-ha for the discovery test
# (tests/bridge/test_homeassistant.py): the newest release the machine's Pythons can run, with
# Home Assistant's own package constraints (its pinned dependency set), by uv. The ONVIF
# integration's requirements come at the versions that release's manifest pins, for
# tests/rtsp/test_onvif_ha.py; they stay out of .venv, where onvif-zeep owns the same
# top-level `onvif` module.
#   - Python 3.13 (pyenv's, or python3.13 on PATH): homeassistant 2025.4.4
#   - otherwise the default python3 (3.11):         homeassistant 2024.3.3 (with josepy<2)
# Re-running is cheap: skipped while the stamp matches this script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-ha
stamp=$VENV/.setup.sha
want=$(sha256sum "$0" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$VENV/bin/hass" ]; then
  exit 0
fi

pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
py=""
for cand in "$pyenv_root"/versions/3.13.*/bin/python3 "$(command -v python3.13 || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ]; then py=$cand; break; fi
done
if [ -n "$py" ]; then
  HA=2025.4.4
  extra=()
else
  py=$(command -v python3)
  HA=2024.3.3
  # josepy 2 breaks every HTTP request of 2024.3's cloud component (hass_nabucasa/acme).
  extra=("josepy<2")
fi
echo "setup-ha: Home Assistant $HA on $("$py" --version)"
rm -rf "$VENV"
"$py" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check uv==0.6.10
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps "homeassistant==$HA" -d "$tmp"
"$VENV/bin/python" - "$tmp" <<'EOF'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/homeassistant-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    open(sys.argv[1] + "/constraints.txt", "wb").write(z.read("homeassistant/package_constraints.txt"))
EOF
frontend=$(grep -E '^home-assistant-frontend==' "$tmp/constraints.txt" | head -1)
paho=$(grep -E "^paho-mqtt==" "$tmp/constraints.txt" | head -1 || true)
# 2024.3 does not pin paho-mqtt among its core packages; its MQTT integration wants 1.6.1.
paho=${paho:-paho-mqtt==1.6.1}
# .pyc are compiled at install: this environment sets PYTHONDONTWRITEBYTECODE, and without
# them Home Assistant takes 9-10 s instead of 3 s to start.
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --compile-bytecode -q \
  "homeassistant==$HA" "$frontend" ${paho:+"$paho"} ${extra[@]+"${extra[@]}"} -c "$tmp/constraints.txt"
# What Home Assistant itself installs when its ONVIF integration is set up: the requirements
# of that release's homeassistant/components/onvif/manifest.json (2025.4.4: onvif-zeep-async
# 3.2.5, WSDiscovery 2.1.2), with the same constraints.
"$VENV/bin/python" - "$tmp/onvif-requirements.txt" <<'EOF'
import json, pathlib, sys
import homeassistant.components as components
manifest = pathlib.Path(components.__path__[0]) / "onvif" / "manifest.json"
pathlib.Path(sys.argv[1]).write_text("\n".join(json.loads(manifest.read_text())["requirements"]) + "\n")
EOF
echo "setup-ha: ONVIF integration: $(tr '\n' ' ' < "$tmp/onvif-requirements.txt")"
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --compile-bytecode -q \
  -r "$tmp/onvif-requirements.txt" -c "$tmp/constraints.txt"
echo "$want" > "$stamp"
