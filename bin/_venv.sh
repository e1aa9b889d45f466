# Shared by bin/llmrelay and bin/test: find Python >= 3.11 and keep .venv installed and current.
venv="$root/.venv"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "llmrelay needs Python 3.11 or newer" >&2
  return 1
}

ensure_venv() {  # $1: extras to install, e.g. "[test]" or ""
  local extras="$1" stamp
  # The stamp covers what pip builds from: a changed C source is compiled again (setup.py).
  stamp="$venv/.installed$(echo "$extras" | tr -cd 'a-z')-$(cat "$root/pyproject.toml" "$root/setup.py" "$root"/llmrelay/*.c "$root"/llmrelay/*/*.c | cksum | cut -d' ' -f1)"
  [ -f "$stamp" ] && return 0
  if [ ! -x "$venv/bin/python" ]; then
    "$(find_python)" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$root$extras" >&2
  touch "$stamp"
}
