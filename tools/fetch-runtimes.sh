#!/usr/bin/env bash
# Fetches the pinned native runtimes from npm by package name and version, verifies each tarball against the
# sha512 integrity pinned below, and lays the libraries out as runtimes/<rid>/native/ (ignored by git).
#
#   bash tools/fetch-runtimes.sh                 # linux-x64 (default)
#   RID=linux-arm64 bash tools/fetch-runtimes.sh # the arm64 twins
#
# Also clones llama.cpp's source bundle (shipped inside node-llama-cpp) into .cache/llama.cpp-src, for llama.h
# and the tokenizer test vectors under models/.
#
# Idempotent: a stamp file holding the pinned versions makes a second run a no-op. Pinned integrities were
# compared once against `npm view <pkg>@<ver> dist.integrity`; a mismatch means a tampered or wrong tarball.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
rid=${RID:-linux-x64}
cache="$root/.cache/npm"
src_dir="$root/.cache/llama.cpp-src"

ORT_VERSION=1.30.0
LLAMA_VERSION=3.22.1

# package@version -> sha512 integrity (from the npm registry's dist.integrity, checked when pinned)
declare -A INTEGRITY=(
  ["onnxruntime-node@1.30.0"]="sha512-twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw=="
  ["@node-llama-cpp/linux-x64@3.22.1"]="sha512-5uCCDNqWCNfaAm8aR/Uzxbo4HBpKgNF91kCHPepKhgMgV2OAmatoefbOlMihsqCiH2Od35E/eUHQCFbfRBJuOg=="
  ["@node-llama-cpp/linux-arm64@3.22.1"]="sha512-W+7naKCXX9/eEjjFmRS8vvx91QyLXDbeFxexZc3bh/PtQABZgmRL3C0AtYYXn4YGTj/3Qor4lWZn2tpjZFPLdQ=="
  ["node-llama-cpp@3.22.1"]="sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw=="
)

case "$rid" in
  linux-x64) ort_arch=x64 ;;
  linux-arm64) ort_arch=arm64 ;;
  *) echo "fetch-runtimes: unsupported RID '$rid' (supported: linux-x64, linux-arm64)" >&2; exit 2 ;;
esac

die() { echo "fetch-runtimes: $*" >&2; exit 1; }

for tool in tar openssl base64 git; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is needed to fetch the pinned runtimes (Debian: apt-get install nodejs npm tar openssl coreutils git)"
done

# npm's tarball name for a spec: "@scope/name@v" -> "scope-name-v.tgz".
tarball_name() {
  local spec=$1 name=${1%@*} version=${1##*@}
  name=${name#@}
  echo "${name//\//-}-${version}.tgz"
}

sri_of() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

# Downloads (unless cached) and verifies one package tarball; prints its path.
fetch() {
  local spec=$1 expected=${INTEGRITY[$1]:-}
  [ -n "$expected" ] || die "no pinned integrity for $spec"
  local file="$cache/$(tarball_name "$spec")"
  if [ ! -f "$file" ] || [ "$(sri_of "$file")" != "$expected" ]; then
    rm -f "$file"
    mkdir -p "$cache"
    command -v npm >/dev/null 2>&1 || die "npm is needed to download $spec (Debian: apt-get install npm), or copy the libraries into runtimes/$rid/native/ by hand"
    if ! (cd "$cache" && npm pack "$spec" --silent >/dev/null 2>"$cache/npm-pack.log"); then
      echo "fetch-runtimes: could not download $spec from the npm registry ($(npm config get registry 2>/dev/null))." >&2
      echo "  Check the network or proxy settings, or copy the libraries into runtimes/$rid/native/ by hand." >&2
      sed 's/^/  npm: /' "$cache/npm-pack.log" | grep -v 'Unknown user config' | tail -5 >&2 || true
      exit 1
    fi
    [ -f "$file" ] || die "npm pack $spec did not produce $file"
  fi
  local actual
  actual=$(sri_of "$file")
  if [ "$actual" != "$expected" ]; then
    rm -f "$file"
    die "integrity mismatch for $spec: expected $expected, got $actual (tarball deleted)"
  fi
  echo "$file"
}

# --- llama.cpp source bundle (llama.h, tokenizer vectors) -------------------------------------------------
src_stamp="$src_dir/.edgequant-stamp"
if [ ! -f "$src_stamp" ] || [ "$(cat "$src_stamp")" != "node-llama-cpp@$LLAMA_VERSION" ]; then
  tgz=$(fetch "node-llama-cpp@$LLAMA_VERSION")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tgz" -C "$tmp" package/llama/gitRelease.bundle || die "node-llama-cpp@$LLAMA_VERSION has no package/llama/gitRelease.bundle"
  rm -rf "$src_dir"
  git clone --quiet "$tmp/package/llama/gitRelease.bundle" "$src_dir" 2>/dev/null \
    || die "git clone of llama.cpp's gitRelease.bundle failed"
  [ -f "$src_dir/include/llama.h" ] || die "llama.cpp bundle has no include/llama.h"
  echo "node-llama-cpp@$LLAMA_VERSION" > "$src_stamp"
  rm -rf "$tmp"; trap - EXIT
fi
src_rev=$(git -C "$src_dir" describe --tags --always 2>/dev/null || echo unknown)
echo "llama.cpp source  $src_rev  .cache/llama.cpp-src (from node-llama-cpp@$LLAMA_VERSION)"

# --- native libraries ---------------------------------------------------------------------------------------
native="$root/runtimes/$rid/native"
stamp="$native/.edgequant-stamp"
want_stamp="rid=$rid onnxruntime-node@$ORT_VERSION @node-llama-cpp/$rid@$LLAMA_VERSION"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ] || [ ! -e "$native/libonnxruntime.so.1" ] || [ ! -e "$native/libllama.so" ]; then
  ort_tgz=$(fetch "onnxruntime-node@$ORT_VERSION")
  llama_tgz=$(fetch "@node-llama-cpp/$rid@$LLAMA_VERSION")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/ort" "$tmp/llama" "$tmp/native"
  tar -xzf "$ort_tgz" -C "$tmp/ort" "package/bin/napi-v6/linux/$ort_arch" \
    || die "onnxruntime-node@$ORT_VERSION has no package/bin/napi-v6/linux/$ort_arch"
  tar -xzf "$llama_tgz" -C "$tmp/llama" || die "cannot extract @node-llama-cpp/$rid@$LLAMA_VERSION"
  # -a keeps symlinks (libonnxruntime.so -> libonnxruntime.so.1 ...) as the package ships them.
  cp -a "$tmp/ort/package/bin/napi-v6/linux/$ort_arch"/libonnxruntime.so* "$tmp/native/" \
    || die "no libonnxruntime.so* in onnxruntime-node@$ORT_VERSION ($ort_arch)"
  cp -a "$tmp/llama/package/bins/$rid"/lib*.so* "$tmp/native/" \
    || die "no llama.cpp libraries in @node-llama-cpp/$rid@$LLAMA_VERSION"
  [ -e "$tmp/native/libonnxruntime.so.1" ] || die "no libonnxruntime.so.1 in onnxruntime-node@$ORT_VERSION ($ort_arch)"
  [ -e "$tmp/native/libonnxruntime.so" ] || ln -s libonnxruntime.so.1 "$tmp/native/libonnxruntime.so"
  # The package names its libraries by llama.cpp release (libllama.v0.5.0.so, SONAME the same); the plain
  # names let bindings and dlopen find them without knowing that release tag. The originals stay, since
  # libllama's NEEDED entries name them.
  for base in llama ggml; do
    versioned=$(cd "$tmp/native" && ls lib$base.v*.so 2>/dev/null | head -1)
    [ -n "$versioned" ] && [ ! -e "$tmp/native/lib$base.so" ] && ln -s "$versioned" "$tmp/native/lib$base.so"
  done
  [ -e "$tmp/native/libllama.so" ] || die "no libllama*.so in @node-llama-cpp/$rid@$LLAMA_VERSION"
  [ -e "$tmp/native/libggml-base.so" ] || die "no libggml-base.so in @node-llama-cpp/$rid@$LLAMA_VERSION"
  echo "$want_stamp" > "$tmp/native/.edgequant-stamp"
  rm -rf "$native"
  mkdir -p "$(dirname "$native")"
  mv "$tmp/native" "$native"
  rm -rf "$tmp"; trap - EXIT
fi

ggml_cpu=$(cd "$native" && ls libggml-cpu-*.so 2>/dev/null | sed 's/^libggml-cpu-//; s/\.so$//' | tr '\n' ' ')
echo "onnxruntime       $ORT_VERSION  runtimes/$rid/native/libonnxruntime.so.1"
echo "llama.cpp         $LLAMA_VERSION ($src_rev)  runtimes/$rid/native/libllama.so  cpu variants: ${ggml_cpu:-none}"
