#!/usr/bin/env bash
# `make publish-runner`: the on-device verification runner, one folder (and tarball) per RID.
#
#   artifacts/runner/edgequant-linux-x64/     self-contained single-file `edgequant` (no .NET needed on the
#                                              machine) + runtimes/linux-x64/native (pinned llama.cpp, ONNX Runtime)
#   artifacts/runner/edgequant-linux-arm64/   framework-dependent edgequant.dll (+ `edgequant` wrapper) for a board
#                                              with the .NET 10 runtime + runtimes/linux-arm64/native
#   artifacts/runner/edgequant-<rid>.tar.gz   the same folders, symlinks kept
#
# Why framework-dependent on arm64: the NuGet mirror here serves no linux-arm64 runtime pack, so a self-contained
# arm64 build cannot be made; the portable IL build runs on any machine with the .NET 10 runtime.
#
#   RIDS="linux-x64" bash tools/publish-runner.sh     # only one RID
#   OUT=/tmp/runner bash tools/publish-runner.sh      # another output folder
#
# The native libraries are the pinned ones `tools/fetch-runtimes.sh` lays out (fetched here when missing); the
# runner finds them as runtimes/<rid>/native beside the executable (NativeLibraryResolver's bundled-folder rule).
# The build uses its own artifacts path, so it never touches (or races) the tree's bin/ and obj/.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
config=${CONFIG:-Release}
dotnet=${DOTNET:-dotnet}
out=${OUT:-$root/artifacts/runner}
rids=${RIDS:-linux-x64 linux-arm64}
build="$root/artifacts/publish-build"
project=src/EdgeQuant.Cli/EdgeQuant.Cli.csproj

die() { echo "publish-runner: $*" >&2; exit 1; }

mkdir -p "$out"
for rid in $rids; do
  case "$rid" in
    linux-x64|linux-arm64) ;;
    *) die "unsupported RID '$rid' (linux-x64, linux-arm64)" ;;
  esac
  native="$root/runtimes/$rid/native"
  if [ ! -e "$native/libllama.so" ] || [ ! -e "$native/libonnxruntime.so.1" ]; then
    RID=$rid bash tools/fetch-runtimes.sh >/dev/null
  fi

  dir="$out/edgequant-$rid"
  stage="$out/.stage-$rid"
  rm -rf "$stage"
  mkdir -p "$stage"
  if [ "$rid" = linux-x64 ]; then
    # Single file: the managed assemblies and the .NET host in one executable. DebugType=none keeps .pdb files out.
    "$dotnet" publish "$project" -c "$config" -r "$rid" --self-contained true \
      -p:PublishSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true -p:EnableCompressionInSingleFile=false \
      -p:DebugType=none -p:GenerateDocumentationFile=false \
      --artifacts-path "$build" -o "$stage" -nologo -clp:ErrorsOnly -v:q
    [ -x "$stage/edgequant" ] || die "dotnet publish produced no $stage/edgequant"
  else
    # Portable IL (no RID-specific pack needed): `dotnet edgequant.dll` on any .NET 10 runtime.
    "$dotnet" publish "$project" -c "$config" --self-contained false -p:UseAppHost=false \
      -p:DebugType=none -p:GenerateDocumentationFile=false \
      --artifacts-path "$build" -o "$stage" -nologo -clp:ErrorsOnly -v:q
    [ -f "$stage/edgequant.dll" ] || die "dotnet publish produced no $stage/edgequant.dll"
    cat > "$stage/edgequant" <<'WRAP'
#!/bin/sh
# Runs the framework-dependent edgequant with the .NET 10 runtime on PATH (or DOTNET_ROOT).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ -n "${DOTNET_ROOT:-}" ] && [ -x "$DOTNET_ROOT/dotnet" ]; then exec "$DOTNET_ROOT/dotnet" "$here/edgequant.dll" "$@"; fi
command -v dotnet >/dev/null 2>&1 || { echo "edgequant: the .NET 10 runtime is needed (dotnet on PATH or DOTNET_ROOT); see docs/publish-runner.md" >&2; exit 1; }
exec dotnet "$here/edgequant.dll" "$@"
WRAP
    chmod +x "$stage/edgequant"
  fi
  mkdir -p "$stage/runtimes/$rid"
  # -a keeps the symlinks (libllama.so -> libllama.v0.5.0.so ...) that the libraries' NEEDED entries rely on.
  cp -a "$native" "$stage/runtimes/$rid/native"
  if [ "$rid" = linux-x64 ]; then alt=""; needs="nothing else: the .NET runtime is inside the executable"
  else alt=" (or: dotnet edgequant.dll verify ...)"; needs="the .NET 10 runtime (dotnet on PATH or DOTNET_ROOT)"; fi
  cat > "$stage/README.txt" <<TXT
edgequant verification runner for $rid (built $(date -u +%Y-%m-%d) from $(git rev-parse --short HEAD 2>/dev/null || echo unknown))

Run:    ./edgequant verify MODEL --reference REF.eqref --report out/$alt
Needs:  $needs
Native: runtimes/$rid/native (pinned llama.cpp and ONNX Runtime); keep it beside the executable,
        or point EDGEQUANT_RUNTIMES at another copy. \`./edgequant runtimes\` shows what was found.
Docs:   docs/publish-runner.md in the EdgeQuant repository.
TXT

  rm -rf "$dir"
  mv "$stage" "$dir"
  tar -C "$out" -czf "$out/edgequant-$rid.tar.gz.tmp" "edgequant-$rid"
  mv "$out/edgequant-$rid.tar.gz.tmp" "$out/edgequant-$rid.tar.gz"
  size=$(du -sh "$dir" | cut -f1)
  tsize=$(du -h "$out/edgequant-$rid.tar.gz" | cut -f1)
  echo "publish-runner: $dir ($size; $(basename "$dir").tar.gz $tsize)"
done
