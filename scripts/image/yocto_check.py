#!/usr/bin/env python3
"""Offline checks of the Yocto layer and kas files (run with the project venv's python).

1. kas files validate against kas's own configuration schema (the same one `kas` uses).
2. conf/layer.conf declares LAYERSERIES_COMPAT for scarthgap (oelint-adv does not check it).
3. Every recipe, append and class parses with the real BitBake parser (the `bb` package
   that the bitbake-setup wheel ships), with empty stand-ins for classes of other layers:
   a syntax and inherit-name check, not a semantic one.
4. watchpost-crates.inc matches Cargo.lock (a stale file is reported; with --strict it
   fails, which is what a release checks).
5. Every GStreamer element the appliance's code names is shipped: the package that
   provides it is in the appliance recipe's RDEPENDS (a missing plugin set would only show
   on the board, as a pipeline that does not start).

oelint-adv runs separately (mk/image.mk) because it is its own command.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "yocto/meta-watchpost"
KAS_DIR = REPO / "yocto/kas"
# Classes the layer inherits from oe-core and other layers; stubbed for the parse check.
FOREIGN_CLASSES = ["base", "cargo", "systemd", "useradd", "core-image", "bundle", "deploy",
                   "kernel-arch", "nopackages"]


def check_kas() -> list[str]:
    import jsonschema
    import yaml
    from kas.configschema import CONFIGSCHEMA

    problems = []
    validator = jsonschema.Draft7Validator(CONFIGSCHEMA)
    files = sorted(KAS_DIR.glob("*.yml"))
    if not files:
        problems.append(f"no kas files in {KAS_DIR}")
    for f in files:
        data = yaml.safe_load(f.read_text())
        for err in sorted(validator.iter_errors(data), key=str):
            where = "/".join(map(str, err.absolute_path)) or "<root>"
            problems.append(f"{f.relative_to(REPO)}: {where}: {err.message}")
        for inc in (data.get("header") or {}).get("includes") or []:
            if isinstance(inc, str) and not (f.parent / inc).exists():
                problems.append(f"{f.relative_to(REPO)}: include {inc} does not exist")
        for name, repo in (data.get("repos") or {}).items():
            if repo and repo.get("url") and not repo.get("commit"):
                problems.append(f"{f.relative_to(REPO)}: repo {name} is not pinned by commit")
        print(f"kas: {f.relative_to(REPO)}: checked")
    return problems


def check_layerseries() -> list[str]:
    text = (LAYER / "conf/layer.conf").read_text()
    for line in text.splitlines():
        if line.startswith("LAYERSERIES_COMPAT_") and "scarthgap" in line:
            print("layer.conf: LAYERSERIES_COMPAT names scarthgap")
            return []
    return ["conf/layer.conf: no LAYERSERIES_COMPAT for scarthgap"]


def check_bb_parse() -> list[str]:
    stubdir = Path(tempfile.mkdtemp(prefix="bbstub-"))
    (stubdir / "hashserv").mkdir()
    (stubdir / "hashserv/__init__.py").write_text(
        "def is_valid_unihash(u):\n    return True\n"
        "def create_client(*a, **k):\n    raise RuntimeError('no hash server in the parse check')\n")
    (stubdir / "hashserv/client.py").write_text("")
    sys.path.insert(0, str(stubdir))
    try:
        import bb
        import bb.data
        import bb.parse
    except ImportError as e:
        return [f"BitBake parser not importable ({e}); is bitbake-setup in the venv?"]
    for sub in ("classes", "classes-recipe", "classes-global"):
        (stubdir / "bbroot" / sub).mkdir(parents=True)
    for c in FOREIGN_CLASSES:
        (stubdir / "bbroot/classes" / f"{c}.bbclass").write_text("")
    (stubdir / "bbroot/conf/distro").mkdir(parents=True)
    (stubdir / "bbroot/conf/distro/poky.conf").write_text("")
    problems = []
    suffixes = (".bb", ".bbappend", ".bbclass", ".conf", ".inc")
    # files/ holds what recipes install (not BitBake syntax); wic/ holds wic's own format.
    targets = sorted(p for p in LAYER.rglob("*") if p.suffix in suffixes
                     and "files" not in p.relative_to(LAYER).parts and p.parts[-2] != "wic")
    for f in targets:
        name = str(f)
        if f.suffix == ".bbappend":
            # The parser takes appends only together with their recipe; parse the text
            # as a recipe of its own (same lines, so errors point at the right place).
            copy = stubdir / "appends" / (f.stem.replace("%", "any") + "_append.bb")
            copy.parent.mkdir(exist_ok=True)
            copy.write_text(f.read_text())
            name = str(copy)
        d = bb.data.init()
        d.setVar("BBPATH", f"{stubdir / 'bbroot'}:{LAYER}")
        d.setVar("TOPDIR", str(stubdir))
        d.setVar("__bbclasstype", "recipe")
        try:
            bb.parse.init_parser(d)
            bb.parse.handle(name, d, f.suffix in (".conf", ".inc"))
            print(f"bb parse: {f.relative_to(REPO)}: OK")
        except Exception as e:  # the parser raises many exception types
            problems.append(f"{f.relative_to(REPO)}: parse error: {type(e).__name__}: {e}")
    return problems


def check_crates(strict: bool) -> list[str]:
    import subprocess
    r = subprocess.run([sys.executable, str(REPO / "scripts/image/gen-yocto-crates.py"), "--check"],
                       capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    print(out)
    if r.returncode == 1 and not strict:
        print("yocto-check: warning: the crate pins are stale (release builds run with --strict)")
        return []
    return [] if r.returncode == 0 else [out]


# GStreamer element -> the Yocto package (oe-core) that provides it.
ELEMENT_PACKAGES = {
    "appsink": "gstreamer1.0-plugins-base", "appsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base", "videoscale": "gstreamer1.0-plugins-base",
    "videorate": "gstreamer1.0-plugins-base", "decodebin": "gstreamer1.0-plugins-base",
    "rtspsrc": "gstreamer1.0-plugins-good", "rtph264pay": "gstreamer1.0-plugins-good",
    "rtph264depay": "gstreamer1.0-plugins-good", "jpegenc": "gstreamer1.0-plugins-good",
    "jpegdec": "gstreamer1.0-plugins-good", "v4l2src": "gstreamer1.0-plugins-good",
    "souphttpsrc": "gstreamer1.0-plugins-good", "multipartdemux": "gstreamer1.0-plugins-good",
    "splitmuxsink": "gstreamer1.0-plugins-good", "mp4mux": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad", "h265parse": "gstreamer1.0-plugins-bad",
    "shmsink": "gstreamer1.0-plugins-bad", "shmsrc": "gstreamer1.0-plugins-bad",
    "openh264enc": "gstreamer1.0-plugins-bad", "openh264dec": "gstreamer1.0-plugins-bad",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "avdec_h264": "gstreamer1.0-libav", "avdec_h265": "gstreamer1.0-libav",
}


def check_gst_packages() -> list[str]:
    import re
    recipe = (LAYER / "recipes-watchpost/watchpost/watchpost_0.1.0.bb").read_text()
    m = re.search(r'^RDEPENDS:\$\{PN\} = "((?:[^"\\]|\\\n)*)"', recipe, re.M)
    shipped = set(m.group(1).replace("\\\n", " ").split()) if m else set()
    used: dict[str, str] = {}
    word = re.compile(r"\b(" + "|".join(map(re.escape, ELEMENT_PACKAGES)) + r")\b")
    for f in sorted((REPO / "app").rglob("*.rs")):
        if "/tests/" in str(f) or "/benches/" in str(f):
            continue
        for name in word.findall(f.read_text(errors="replace")):
            used.setdefault(name, str(f.relative_to(REPO)))
    problems = [f"GStreamer element {el} (used in {where}) needs {ELEMENT_PACKAGES[el]} in RDEPENDS"
                for el, where in sorted(used.items()) if ELEMENT_PACKAGES[el] not in shipped]
    print(f"gst packages: {len(used)} elements used, provided by "
          f"{len({ELEMENT_PACKAGES[e] for e in used})} packages, {len(problems)} missing")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strict", action="store_true", help="fail on stale crate pins")
    args = ap.parse_args()
    os.chdir(REPO)
    problems = (check_kas() + check_layerseries() + check_bb_parse() + check_crates(args.strict)
                + check_gst_packages())
    for p in problems:
        print(f"yocto-check: {p}", file=sys.stderr)
    print(f"yocto-check: {'FAILED' if problems else 'passed'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
