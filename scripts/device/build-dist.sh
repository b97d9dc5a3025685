#!/usr/bin/env bash
# Builds the duet-gpu binary the prepared device scripts carry (the device has no Rust toolchain): release build,
# stripped, into dist/ (gitignored), with the newest glibc symbol version it needs in dist/GLIBC_NEEDED; the
# device script's facts step compares that with the device's glibc. Then: device tool `run` with carry ["dist"].
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p duet-gpu
mkdir -p dist
cp target/release/duet-gpu dist/duet-gpu
strip dist/duet-gpu
objdump -T dist/duet-gpu | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 > dist/GLIBC_NEEDED
echo "dist/duet-gpu: $(du -h dist/duet-gpu | cut -f1), needs $(cat dist/GLIBC_NEEDED) (this machine: $(ldd --version | head -1))"
