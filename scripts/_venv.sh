# Sourced by the scripts in this folder: creates .venv and installs andon with the extras the
# calling script names in ANDON_EXTRAS (serve, demo: "examples"; test, bench: "dev"), again
# whenever pyproject.toml changed since that install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python="${PYTHON:-python3}"
extras="${ANDON_EXTRAS:-examples}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp="$venv/.andon-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
