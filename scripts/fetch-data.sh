#!/usr/bin/env bash
# Fetches the public traces and kernel profiles the docs, examples and sweeps use, from their original publishers,
# pinned to a commit, into one data folder: $DUET_DATA (default data/ in the project root, gitignored), laid out
# as data/traces/... and data/kernel-profiles/vidur/.... Each file's size and SHA-256 are checked (recorded from
# the copies the project was developed with); a file already present with the right checksum is kept. Prints each
# file's licence and citation.
#
# Usage: scripts/fetch-data.sh [--list] [NAME...]     (no NAME: all of them)
#   DUET_DATA=DIR          where the files go (default: data)
#   DUET_DATA_MIRROR=URL   fetch from URL/<path in the data folder> instead (e.g. file:///path/to/mirror)
#   DUET_DATA_MANIFEST=F   another manifest (tests), same tab-separated columns as MANIFEST below
# Exit status: 0 when every requested file is present and verified; 1 otherwise (each failure named).
# Uses the system's curl (no TLS crate in the build).
set -uo pipefail
cd "$(dirname "$0")/.."

# name, path in the data folder, URL, bytes, sha256, licence and citation
MANIFEST=$(cat <<'EOF'
azure-conv	traces/azure2023/AzureLLMInferenceTrace_conv.csv	https://raw.githubusercontent.com/Azure/AzurePublicDataset/b469a113cedca53ddc3bdea71a143dc4b7d8700c/data/AzureLLMInferenceTrace_conv.csv	719188	2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8	CC BY 4.0, (c) Microsoft. Cite: Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024
azure-code	traces/azure2023/AzureLLMInferenceTrace_code.csv	https://raw.githubusercontent.com/Azure/AzurePublicDataset/b469a113cedca53ddc3bdea71a143dc4b7d8700c/data/AzureLLMInferenceTrace_code.csv	320117	54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6	CC BY 4.0, (c) Microsoft. Cite: Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024
mooncake-conv	traces/mooncake/conversation_trace.jsonl	https://raw.githubusercontent.com/kvcache-ai/Mooncake/3b5a594133958449a1feaf1c9e0fc1b553e34a28/FAST25-release/traces/conversation_trace.jsonl	3029533	b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df	Apache-2.0. Cite: Qin et al., "Mooncake: Trading More Storage for Less Computation - A KVCache-centric Architecture for Serving LLM Chatbot", FAST 2025
sharegpt-lengths	traces/sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv	https://raw.githubusercontent.com/microsoft/sarathi-serve/72339db5b120614033b317880ad3a05a5e4c9415/data/processed_traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv	949600	6d6c296302a853e2669a674a96f269283e60c57e60363bd450588a1066919f9f	Apache-2.0, (c) Microsoft (Sarathi-Serve). ShareGPT length statistics, Llama-2 tokenizer. Cite: Agrawal et al., "Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve", OSDI 2024
vidur-h100-llama2-7b	kernel-profiles/vidur/h100/Llama-2-7b-hf.mlp.csv	https://raw.githubusercontent.com/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv	715469	b1a2def08857d10e5f66c3b5b2d046b6e8caed5c30b2bc920a0462598e3b2a59	MIT, (c) Microsoft. Cite: Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024
vidur-h100-codellama-34b	kernel-profiles/vidur/h100/CodeLlama-34b-Instruct-hf.mlp.csv	https://raw.githubusercontent.com/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/profiling/compute/h100/codellama/CodeLlama-34b-Instruct-hf/mlp.csv	693809	f5ddfd2ab5a8342c34866f53214a4a4f8f535369c29159da0be2d524bcaf00a5	MIT, (c) Microsoft. Cite: Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024
vidur-h100-allreduce	kernel-profiles/vidur/h100/all_reduce.pairwise_nvlink.csv	https://raw.githubusercontent.com/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/profiling/network/h100_pairwise_nvlink/all_reduce.csv	179908	8d68ee6979682726cd7c1d06b8a3656dea5bf53d074d62b3e080ed306b03c155	MIT, (c) Microsoft. Cite: Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024
vidur-a100-llama3-8b	kernel-profiles/vidur/a100/Meta-Llama-3-8B.mlp.csv	https://raw.githubusercontent.com/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/profiling/compute/a100/meta-llama/Meta-Llama-3-8B/mlp.csv	1204856	98c26488298e324e89db7349e213f75c856ae83dc6b17548a68636d2cb5efff0	MIT, (c) Microsoft. Cite: Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024
vidur-a100-allreduce	kernel-profiles/vidur/a100/all_reduce.pairwise_nvlink.csv	https://raw.githubusercontent.com/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf/data/profiling/network/a100_pairwise_nvlink/all_reduce.csv	420449	27428d884ae095800e81366c7517af93fd7476633cfe5e55bdd155e004485dab	MIT, (c) Microsoft. Cite: Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys 2024
EOF
)
[ -n "${DUET_DATA_MANIFEST:-}" ] && MANIFEST=$(cat "$DUET_DATA_MANIFEST")
DATA=${DUET_DATA:-data}

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "$MANIFEST" | while IFS=$'\t' read -r name path url bytes sha lic; do
    printf '%-26s %-58s %9s bytes\n' "$name" "$DATA/$path" "$bytes"
  done
  exit 0
fi

want=("$@")
known=$(printf '%s\n' "$MANIFEST" | cut -f1)
for n in "${want[@]}"; do
  grep -qx "$n" <<<"$known" || { echo "error: unknown data set '$n'; known: $(tr '\n' ' ' <<<"$known")"; exit 1; }
done

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
failed=0
while IFS=$'\t' read -r name path url bytes sha lic; do
  [ -z "$name" ] && continue
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
  dest="$DATA/$path"
  if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
    echo "ok      $name: $dest (already present, SHA-256 verified)"
  else
    src=$url
    [ -n "${DUET_DATA_MIRROR:-}" ] && src="${DUET_DATA_MIRROR%/}/$path"
    mkdir -p "$(dirname "$dest")"
    tmp="$dest.part"
    if ! curl -fsSL --retry 2 -o "$tmp" "$src"; then
      echo "error   $name: could not fetch $src"
      rm -f "$tmp"
      failed=1
      continue
    fi
    got_bytes=$(stat -c %s "$tmp")
    got_sha=$(sha_of "$tmp")
    if [ "$got_bytes" != "$bytes" ] || [ "$got_sha" != "$sha" ]; then
      echo "error   $name: $src has $got_bytes bytes, SHA-256 $got_sha; expected $bytes bytes, $sha (not kept)"
      rm -f "$tmp"
      failed=1
      continue
    fi
    mv "$tmp" "$dest"
    echo "fetched $name: $dest ($bytes bytes, SHA-256 verified)"
  fi
  echo "        licence and citation: $lic"
done <<<"$MANIFEST"
exit $failed
