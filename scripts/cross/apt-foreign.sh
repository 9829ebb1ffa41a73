# Sourced by the cross and image scripts: a private apt for a foreign architecture
# (default arm64) with its own state under build/cross/apt-<arch>, so the host's dpkg
# is never told about the architecture. Defines `foreign_apt ARGS...` (apt-get) and
# `foreign_apt_cache ARGS...` (apt-cache); call `foreign_apt_update` once first.
# Expects $repo (repository root) and optionally $arch.
arch=${arch:-arm64}
apt_work=$repo/build/cross/apt-$arch
mkdir -p "$apt_work"/{lists/partial,archives/partial,sources.list.d,debs} "$apt_work/etc/preferences.d"
[ -f "$apt_work/status" ] || : > "$apt_work/status"
apt_opts=(
  -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
  -o "Dir::State=$apt_work" -o "Dir::State::status=$apt_work/status"
  -o "Dir::State::Lists=$apt_work/lists" -o "Dir::Cache=$apt_work" -o "Dir::Cache::archives=$apt_work/archives"
  -o "Dir::Etc::SourceList=$apt_work/sources.list" -o "Dir::Etc::SourceParts=$apt_work/sources.list.d"
  -o "Dir::Etc::Preferences=$apt_work/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt_work/etc/preferences.d"
  -o "APT::Install-Recommends=false" -o "Debug::NoLocking=true" -o "APT::Sandbox::User=root"
)
foreign_apt() { apt-get "${apt_opts[@]}" "$@"; }
foreign_apt_cache() { apt-cache "${apt_opts[@]}" "$@"; }
foreign_apt_update() {
  # The host's own Debian sources, so the same mirror (or snapshot) is used.
  rm -f "$apt_work"/sources.list.d/*
  cp /etc/apt/sources.list.d/*.sources "$apt_work/sources.list.d/" 2>/dev/null || true
  if [ -f /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$apt_work/sources.list"; else : > "$apt_work/sources.list"; fi
  local stamp=$apt_work/.updated
  if [ -z "$(find "$stamp" -mmin -360 2>/dev/null)" ]; then
    echo "apt-$arch: updating the private package lists"
    foreign_apt update -qq
    touch "$stamp"
  fi
}
# Lists every package needed to install "$@" on an empty system, one a line.
foreign_apt_closure() {
  foreign_apt install -s -qq "$@" | awk '/^Inst /{print $2}' | sort -u
}
